package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
	"github.com/dvsync/dvsync/state"
)

// DefaultSyncCacheSize is how many rows' sync state a Sync keeps in
// memory when SyncConfig.CacheSize is zero.
const DefaultSyncCacheSize = 10_000

// SyncConfig configures the bidirectional sync of one mapping.
type SyncConfig struct {
	// Mapping names the mapping: its sync state is stored under it, and it
	// labels metrics and logs. Required.
	Mapping string
	// Rules decide conflicts.
	Rules conflict.Rules
	// Columns are the source columns the mapping syncs both ways (those
	// the from-dataverse direction writes): the last synced values are
	// kept for them only, so that a change to any other column of the
	// source table is not a change to sync. Required.
	Columns []string
	// TimestampColumn, when set, is the source column that tells when a
	// source row last changed, for NewestWins; otherwise the source's
	// commit time is used.
	TimestampColumn string
	// Reverse maps a Dataverse row, as a record of the Dataverse table
	// (the mapping's from-dataverse direction), to the source table's
	// names. Pipeline A uses it to compare the version a refused write
	// found in Dataverse. Required.
	Reverse func(rec *change.Record) (change.Record, bool, error)
	// Store keeps the sync state. Required.
	Store state.SyncStore
	// CacheSize is how many rows' state are kept in memory in front of
	// Store (default DefaultSyncCacheSize).
	CacheSize int
	// Logger receives conflict logs; nil means slog.Default(). At info
	// level a conflict is logged with the names of the columns each side
	// changed and the decision; the values and the key are logged at debug
	// level only, since they are user data.
	Logger *slog.Logger
	// Metrics registers dvsync_conflicts_total; nil registers nothing.
	// Several Syncs may share one registry.
	Metrics prometheus.Registerer
}

// Sync is the bidirectional sync of one mapping: the state both of its
// pipelines share, and the Resolver each of them is given. Pipeline A
// (source → Dataverse) gets Resolver(conflict.Source), pipeline B
// (Dataverse → source) Resolver(conflict.Dataverse).
//
// A Sync is safe for concurrent use. Changes to one row are serialised:
// each step that reads and updates a row's state holds that row's lock,
// so the two pipelines never lose each other's updates, and a conflict
// both of them notice is decided the same way by both and counted once.
type Sync struct {
	cfg       SyncConfig
	log       *slog.Logger
	cache     *lru.Cache[string, state.SyncEntry]
	locks     [64]sync.Mutex
	seed      maphash.Seed
	conflicts *prometheus.CounterVec

	// toDataverse holds, by row key, the versions pipeline A is writing
	// to Dataverse and has not yet recorded as synced: change tracking
	// can deliver such a write to pipeline B before A's Synced runs, and
	// B must know it for an echo.
	flightMu    sync.Mutex
	toDataverse map[string][]conflict.Version
	// deciding holds, by row key, a conflict's decision being written by
	// one pipeline and not yet recorded as synced, for the other
	// pipeline to carry over meanwhile.
	deciding map[string]written
	// superseded holds, by side and row key, dvsync's own write to that
	// side that carried over a decision a later one replaced before the
	// write was recorded: Dataverse's ETag after it, or the fingerprint of
	// the table row it wrote. A side holding exactly that write holds
	// nothing of anyone else's, and the later decision may be written
	// over it.
	superseded map[ownWrite]string
}

// ownWrite addresses a row of one side.
type ownWrite struct {
	side conflict.Side
	key  string
}

// supersede records token as dvsync's own write of a since replaced
// decision to side's row key; an empty token forgets the one recorded.
func (s *Sync) supersede(side conflict.Side, key []byte, token string) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	k := ownWrite{side, string(key)}
	if token == "" {
		delete(s.superseded, k)
		return
	}
	if s.superseded == nil {
		s.superseded = map[ownWrite]string{}
	}
	s.superseded[k] = token
}

// supersededWrite returns the token recorded for side's row key, if any.
func (s *Sync) supersededWrite(side conflict.Side, key []byte) (string, bool) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	token, ok := s.superseded[ownWrite{side, string(key)}]
	return token, ok
}

// setDeciding records w, a decision being written.
func (s *Sync) setDeciding(key []byte, w *written) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if s.deciding == nil {
		s.deciding = map[string]written{}
	}
	s.deciding[string(key)] = *w
}

// doneDeciding forgets the decision being written for key, if it is
// still the one made as the row's decisions-th.
func (s *Sync) doneDeciding(key []byte, decisions uint64) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if w, ok := s.deciding[string(key)]; ok && w.decisions == decisions {
		delete(s.deciding, string(key))
	}
}

func (s *Sync) decidingFor(key []byte) (written, bool) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	w, ok := s.deciding[string(key)]
	return w, ok
}

// inFlight adds (or with remove, removes) v as a version being written
// to Dataverse for key.
func (s *Sync) inFlight(key []byte, v conflict.Version, remove bool) {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	if s.toDataverse == nil {
		s.toDataverse = map[string][]conflict.Version{}
	}
	vs := s.toDataverse[string(key)]
	if !remove {
		s.toDataverse[string(key)] = append(vs, v)
		return
	}
	for i := range vs {
		if vs[i].Same(v) {
			vs = slices.Delete(vs, i, i+1)
			break
		}
	}
	if len(vs) == 0 {
		delete(s.toDataverse, string(key))
	} else {
		s.toDataverse[string(key)] = vs
	}
}

// writingToDataverse reports whether v is a version pipeline A is writing
// to Dataverse for key.
func (s *Sync) writingToDataverse(key []byte, v conflict.Version) bool {
	s.flightMu.Lock()
	defer s.flightMu.Unlock()
	for _, w := range s.toDataverse[string(key)] {
		if w.Same(v) {
			return true
		}
	}
	return false
}

func newConflictsTotal() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "dvsync", Name: "conflicts_total",
		Help: "Conflicts between the two sides of a bidirectional mapping, counted once each, by mapping, deciding policy and decision.",
	}, []string{"mapping", "policy", "decision"})
}

// NewSync checks cfg and returns the mapping's Sync.
func NewSync(cfg SyncConfig) (*Sync, error) {
	var errs []error
	check := func(bad bool, msg string) {
		if bad {
			errs = append(errs, errors.New(msg))
		}
	}
	check(cfg.Mapping == "", "Mapping: required")
	check(cfg.Store == nil, "Store: required")
	check(len(cfg.Columns) == 0, "Columns: required")
	check(cfg.Reverse == nil, "Reverse: required")
	check(cfg.CacheSize < 0, "CacheSize: must not be negative")
	errs = append(errs, cfg.Rules.Validate())
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("engine: invalid sync config: %w", err)
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultSyncCacheSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cache, err := lru.New[string, state.SyncEntry](cfg.CacheSize)
	if err != nil {
		return nil, fmt.Errorf("engine: sync cache: %w", err)
	}
	s := &Sync{cfg: cfg, log: cfg.Logger.With("mapping", cfg.Mapping), cache: cache,
		seed: maphash.MakeSeed(), conflicts: newConflictsTotal()}
	if cfg.Metrics != nil {
		// The Syncs of several mappings share the one counter of their
		// registry.
		if err := cfg.Metrics.Register(s.conflicts); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("engine: register conflict metrics: %w", err)
			}
			s.conflicts = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return s, nil
}

// Resolver returns the Resolver of the pipeline that reads side's changes
// and writes them to the other side.
func (s *Sync) Resolver(side conflict.Side) Resolver { return &syncResolver{s: s, side: side} }

// lock locks the stripes of keys in a fixed order, so that two batches
// never wait for each other in a cycle, and returns the unlock.
func (s *Sync) lock(keys [][]byte) func() {
	var stripes []int
	for _, k := range keys {
		stripes = append(stripes, int(maphash.Bytes(s.seed, k)%uint64(len(s.locks))))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		s.locks[i].Lock()
	}
	return func() {
		for _, i := range stripes {
			s.locks[i].Unlock()
		}
	}
}

// load returns the state of keys, from the cache or the store. The caller
// holds their locks.
func (s *Sync) load(ctx context.Context, keys [][]byte) ([]state.SyncEntry, []bool, error) {
	entries := make([]state.SyncEntry, len(keys))
	found := make([]bool, len(keys))
	var missing [][]byte
	var at []int
	for i, k := range keys {
		if e, ok := s.cache.Get(string(k)); ok {
			entries[i], found[i] = e, true
			continue
		}
		missing = append(missing, k)
		at = append(at, i)
	}
	if len(missing) == 0 {
		return entries, found, nil
	}
	got, ok, err := s.cfg.Store.SyncEntries(ctx, s.cfg.Mapping, missing)
	if err != nil {
		return nil, nil, err
	}
	for j, i := range at {
		entries[i], found[i] = got[j], ok[j]
		if ok[j] {
			s.cache.Add(string(missing[j]), got[j])
		}
	}
	return entries, found, nil
}

// save stores entries durably, then caches them. The caller holds their
// locks.
func (s *Sync) save(ctx context.Context, keys [][]byte, entries []state.SyncEntry) error {
	if len(keys) == 0 {
		return nil
	}
	now := time.Now()
	for i := range entries {
		entries[i].Updated = now
	}
	if err := s.cfg.Store.PutSyncEntries(ctx, s.cfg.Mapping, keys, entries); err != nil {
		// The cache may now be ahead of nothing: drop the keys so they
		// are read again from the store.
		for _, k := range keys {
			s.cache.Remove(string(k))
		}
		return err
	}
	for i, k := range keys {
		s.cache.Add(string(k), entries[i])
	}
	return nil
}

// record counts and logs a decided conflict.
func (s *Sync) record(p Pair, c conflict.Case, d conflict.Decision) {
	s.conflicts.WithLabelValues(s.cfg.Mapping, string(d.Policy), d.Outcome.String()).Inc()
	base := c.Base.Row
	if !c.Known {
		base = nil
	}
	s.log.Info("conflict", "table", p.Out.Table, "policy", d.Policy, "decision", d.Outcome.String(),
		"source_changed", changedNames(base, c.Source), "dataverse_changed", changedNames(base, c.Dataverse),
		"both_changed", strings.Join(d.Both, ","))
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("conflict versions", "table", p.Out.Table, "key", p.Out.Key.String(),
			"base", syncRowText(base), "source", versionText(c.Source), "dataverse", versionText(c.Dataverse),
			"result", versionText(d.Result))
	}
}

func changedNames(base change.Row, v conflict.Version) string {
	if v.Deleted {
		return "(deleted)"
	}
	return strings.Join(conflict.Changed(base, v.Row), ",")
}

func versionText(v conflict.Version) string {
	if v.Deleted {
		return "(deleted)"
	}
	return syncRowText(v.Row)
}

func syncRowText(r change.Row) string {
	var b strings.Builder
	for i, c := range r {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.Name)
		b.WriteByte('=')
		b.WriteString(c.Value.String())
	}
	return b.String()
}

// parked returns the conflict to park for an operator.
func (s *Sync) parked(side conflict.Side, p Pair, key []byte, c conflict.Case, dvVersion string) state.ParkedConflict {
	pc := state.ParkedConflict{
		Mapping: s.cfg.Mapping, SyncKey: key, Base: c.Base.Row, BaseKnown: c.Known,
		Source: c.Source.Row, SourceDeleted: c.Source.Deleted, SourceTime: c.Source.Time,
		Dataverse: c.Dataverse.Row, DataverseDeleted: c.Dataverse.Deleted, DataverseTime: c.Dataverse.Time,
		DataverseVersion: dvVersion, Detected: time.Now(),
	}
	if side == conflict.Source {
		pc.Key = p.Source.Key
	} else {
		pc.Key = p.Out.Key
	}
	return pc
}

// cloneMeta returns a copy of meta with room for the expectation: a
// record's Meta may be shared with its source record, so it is replaced,
// never written into.
func cloneMeta(meta map[string]string) map[string]string {
	out := make(map[string]string, len(meta)+2)
	for k, v := range meta {
		out[k] = v
	}
	return out
}

// versionNumber returns the number in a Dataverse ETag (W/"1234"), or -1.
func versionNumber(etag string) int64 {
	s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(etag, "W/"), `"`), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// newerVersion reports whether etag is a later version than known, or
// known is not a version at all.
func newerVersion(etag, known string) bool {
	return etag != "" && versionNumber(etag) >= versionNumber(known)
}

// Settle records the operator's answer to a parked conflict of the
// mapping: the row is synced at the version of side take, and the
// conflict is removed. The caller writes that version to the other side
// through that side's sink, whose writes do not come back as changes
// (cmd does); dataverseVersion is the Dataverse row's ETag after that
// write, or as it is when take is conflict.Dataverse; empty when unknown,
// which makes the next write to Dataverse unconditional. Settle returns
// the conflict it settled.
func (s *Sync) Settle(ctx context.Context, id uint64, take conflict.Side, dataverseVersion string) (state.ParkedConflict, error) {
	pc, err := s.cfg.Store.ParkedConflict(ctx, s.cfg.Mapping, id)
	if err != nil {
		return pc, err
	}
	keys := [][]byte{pc.SyncKey}
	unlock := s.lock(keys)
	defer unlock()
	entries, _, err := s.load(ctx, keys)
	if err != nil {
		return pc, err
	}
	e := &entries[0]
	if take == conflict.Source {
		e.Values, e.Deleted = pc.Source, pc.SourceDeleted
	} else {
		e.Values, e.Deleted = pc.Dataverse, pc.DataverseDeleted
	}
	e.SourceOwed, e.DataverseOwed = false, false
	e.SourceBefore, e.SourceBeforeDeleted = nil, false
	e.SourceSeen, e.DataverseSeen = 0, 0
	e.DataverseVersion = dataverseVersion
	e.Decisions++
	if err := s.save(ctx, keys, entries); err != nil {
		return pc, err
	}
	if err := s.cfg.Store.DeleteParkedConflict(ctx, s.cfg.Mapping, id); err != nil {
		return pc, err
	}
	s.log.Info("conflict settled", "id", id, "take", take.String())
	return pc, nil
}
