package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
	"github.com/dvsync/dvsync/state"
)

// syncResolver is one pipeline's view of a Sync. side is the side whose
// changes the pipeline reads; it writes to side.Other().
type syncResolver struct {
	s    *Sync
	side conflict.Side
	// writing remembers, per record being written, the canonical version
	// it carries, for Synced. Keys are pointers into a worker's batch,
	// valid from Prepare or Conflict to Synced of the same write; the
	// entry of a record that is never synced (dead-lettered, say) is
	// replaced when its slot of the batch is used again.
	mu      sync.Mutex
	writing map[*change.Record]written
}

// written is what a record being written carries.
type written struct {
	key []byte // the row's sync key
	v   conflict.Version
	// in is the change read, as it was before any rewrite of the record.
	in incoming
	// carried is true when the record carries over to this pipeline's
	// target a decision already synced on the other side.
	carried bool
	// decision is set when the record writes a conflict's decision,
	// which becomes the synced state only once it is durable: with the
	// sides that will still lack it then, and the source version it is
	// to replace there.
	decision                  bool
	owedSource, owedDataverse bool
	sourceBefore              conflict.Version
	// against is the target's version the decision was made against.
	against conflict.Version
	// decisions is the row's count of decided conflicts when the write
	// was prepared (state.SyncEntry.Decisions).
	decisions uint64
}

// incoming is a record in the canonical space.
type incoming struct {
	key     []byte
	v       conflict.Version
	fp      uint64
	version string    // for changes read from Dataverse: the row's ETag
	commit  time.Time // the source's commit time
}

// deletedPrint stands for a deleted row where a fingerprint is expected;
// a row of values hashes to it with a chance of one in 2^64.
const deletedPrint = 1

func versionPrint(v conflict.Version) uint64 {
	if v.Deleted {
		return deletedPrint
	}
	return conflict.Fingerprint(v.Row)
}

// syncKey is the address of a row's sync state: its key by canonical
// values (conflict.KeyBytes), with text that spells an integer in its
// shortest form read as that integer. A source key column of numbers
// mapped to a Dataverse string attribute comes back as text, and both
// pipelines must address the row alike. A key column has one type, so the
// text "7" and the number 7 never name two rows of one table; "07" stays
// text.
func syncKey(key change.Key) []byte {
	norm := key
	for i, c := range key {
		if c.Value.Kind() != change.KindText {
			continue
		}
		s := c.Value.Str()
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != s {
			continue
		}
		if &norm[0] == &key[0] {
			norm = slices.Clone(key)
		}
		norm[i].Value = change.Int(n)
	}
	return conflict.KeyBytes(norm)
}

// canonical returns p's change as the version of the side it was read
// from, in the source table's names.
func (r *syncResolver) canonical(p Pair) incoming {
	cfg := &r.s.cfg
	rec := p.Source // pipeline A: the source row before mapping
	if r.side == conflict.Dataverse {
		rec = p.Out // pipeline B: the row mapped back to source names
	}
	in := incoming{key: syncKey(rec.Key), commit: p.Source.CommitTime}
	in.v.Deleted = rec.Op == change.OpDelete
	if !in.v.Deleted {
		in.v.Row = conflict.Project(rec.After, cfg.Columns)
	}
	switch r.side {
	case conflict.Source:
		in.v.Time = p.Source.CommitTime
		if cfg.TimestampColumn != "" {
			if ts, ok := p.Source.After.Get(cfg.TimestampColumn); ok && ts.Kind() == change.KindTimestamp {
				in.v.Time = ts.Time()
			}
		}
	case conflict.Dataverse:
		in.v.Time = p.Source.CommitTime
		if ts, ok := p.Source.After.Get("modifiedon"); ok && ts.Kind() == change.KindTimestamp {
			in.v.Time = ts.Time()
		}
		if n := p.Source.Meta["versionnumber"]; n != "" {
			in.version = `W/"` + n + `"`
		}
	}
	in.fp = versionPrint(in.v)
	return in
}

func (r *syncResolver) remember(out *change.Record, w written) {
	r.mu.Lock()
	if r.writing == nil {
		r.writing = map[*change.Record]written{}
	}
	if old, ok := r.writing[out]; ok && r.side == conflict.Source {
		r.s.inFlight(old.key, old.v, true)
	}
	r.writing[out] = w
	r.mu.Unlock()
	if r.side == conflict.Source {
		r.s.inFlight(w.key, w.v, false)
	}
}

// recall returns what out carries; with forget, it is forgotten.
func (r *syncResolver) recall(out *change.Record, forget bool) (written, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.writing[out]
	if ok && forget {
		delete(r.writing, out)
		if r.side == conflict.Source {
			r.s.inFlight(w.key, w.v, true)
		}
	}
	return w, ok
}

// entryVersion is the last synced version an entry holds.
func entryVersion(e *state.SyncEntry) conflict.Version {
	return conflict.Version{Row: e.Values, Deleted: e.Deleted}
}

// seen returns the fingerprint of side's version that was decided in a
// conflict by the other pipeline and that side's own pipeline has not yet
// read; zero when none is pending.
func seen(e *state.SyncEntry, side conflict.Side) uint64 {
	if side == conflict.Source {
		return e.SourceSeen
	}
	return e.DataverseSeen
}

func setSeen(e *state.SyncEntry, side conflict.Side, fp uint64) {
	if side == conflict.Source {
		e.SourceSeen = fp
	} else {
		e.DataverseSeen = fp
	}
}

// owed reports whether side still has to be given e.Values.
func owed(e *state.SyncEntry, side conflict.Side) bool {
	if side == conflict.Source {
		return e.SourceOwed
	}
	return e.DataverseOwed
}

// Prepare drops echoes and changes already decided in a conflict, and
// makes every other write conditional on the target's last known version.
func (r *syncResolver) Prepare(ctx context.Context, m Mapper, pairs []Pair, verdicts []Verdict) error {
	ins := make([]incoming, len(pairs))
	keys := make([][]byte, len(pairs))
	for i := range pairs {
		ins[i] = r.canonical(pairs[i])
		keys[i] = ins[i].key
	}
	unlock := r.s.lock(keys)
	defer unlock()
	entries, found, err := r.s.load(ctx, keys)
	if err != nil {
		return err
	}
	var dirty [][]byte
	var dirtyEntries []state.SyncEntry
	for i := range pairs {
		e, in, out := &entries[i], &ins[i], pairs[i].Out
		if r.side == conflict.Dataverse && r.s.writingToDataverse(in.key, in.v) {
			// Pipeline A's own write, read back before A recorded it.
			verdicts[i] = Done
			r.trace("settle in-flight echo", out, in, e)
			continue
		}
		if !found[i] || !r.decided(e, in) {
			r.expect(out, e, found[i])
			r.remember(out, written{key: in.key, v: in.v, in: *in, decisions: e.Decisions})
			r.trace("write", out, in, e)
			continue
		}
		verdict, changed, err := r.carryOver(m, pairs[i], e, in)
		if err != nil {
			return err
		}
		verdicts[i] = verdict
		r.trace(map[Verdict]string{Done: "settle", Write: "carry over"}[verdict], out, in, e)
		if changed {
			dirty, dirtyEntries = append(dirty, keys[i]), append(dirtyEntries, *e)
		}
	}
	return r.s.save(ctx, dirty, dirtyEntries)
}

// pending compares in with the version of its side that the other
// pipeline decided a conflict against, if one is pending: match when in
// is that version, stale when in is older. Dataverse versions are ordered
// by versionnumber. Source versions are recognised by fingerprint; a
// source change is older if it committed before the conflict was decided,
// since the source delivers its changes in commit order.
func (r *syncResolver) pending(e *state.SyncEntry, in *incoming) (match, stale bool) {
	want := seen(e, r.side)
	if want == 0 {
		return false, false
	}
	if r.side == conflict.Dataverse {
		n := versionNumber(in.version)
		if n < 0 {
			return false, false
		}
		return uint64(n) == want, uint64(n) < want
	}
	if in.fp == want {
		return true, false
	}
	return false, in.commit.IsZero() || !in.commit.After(e.SourceTime)
}

// decided reports whether in needs no decision of its own: it is the same
// as what was synced (an echo, or a change to columns the mapping does not
// sync), a version of Dataverse's row no later than one dvsync wrote or
// read, or the version the other pipeline met in a conflict, or an older
// one.
func (r *syncResolver) decided(e *state.SyncEntry, in *incoming) bool {
	if in.v.Same(entryVersion(e)) {
		return true
	}
	if match, stale := r.pending(e, in); match || stale {
		return true
	}
	if r.side == conflict.Dataverse {
		n := versionNumber(in.version)
		return n >= 0 && n <= versionNumber(e.DataverseVersion)
	}
	return false
}

// carryOver handles a decided change: nothing is written, unless this
// pipeline's target still lacks the synced values, which are then written
// instead. It clears the pending decided version; changed says whether e
// was modified.
func (r *syncResolver) carryOver(m Mapper, p Pair, e *state.SyncEntry, in *incoming) (Verdict, bool, error) {
	changed := false
	if match, _ := r.pending(e, in); match || r.side == conflict.Dataverse && seen(e, r.side) != 0 &&
		versionNumber(in.version) >= int64(seen(e, r.side)) {
		// This pipeline has now read the decided version, or a later one.
		setSeen(e, r.side, 0)
		changed = true
	}
	synced := entryVersion(e)
	targetOwed := owed(e, r.side.Other())
	// What the target held when the conflict was decided: the write is
	// conditional on it still holding that.
	dvVersion := e.DataverseVersion
	if e.Deleted {
		dvVersion = "" // a write that recreates the row expects none
	}
	sourceBefore := conflict.Version{Row: e.SourceBefore, Deleted: e.SourceBeforeDeleted}
	if d, ok := r.s.decidingFor(in.key); ok {
		// The other pipeline's decision is being written: it is what
		// this side is to get. The state records neither the version
		// it was decided against nor the one it replaces until that
		// write is durable, so they come from the decision itself.
		synced = d.v
		targetOwed = r.side == conflict.Source && d.owedDataverse || r.side == conflict.Dataverse && d.owedSource
		if d.in.version != "" && (d.in.v.Deleted || newerVersion(d.in.version, dvVersion)) {
			// Decided by pipeline B against the Dataverse version it read.
			dvVersion = d.in.version
			if d.in.v.Deleted {
				dvVersion = ""
			}
		}
		if d.sourceBefore.Row != nil || d.sourceBefore.Deleted {
			sourceBefore = d.sourceBefore
		}
	}
	if !targetOwed {
		return Done, changed, nil
	}
	out := p.Out
	if err := r.rewrite(m, p, synced); err != nil {
		return Write, changed, err
	}
	meta := cloneMeta(out.Meta)
	if r.side == conflict.Source {
		meta[change.MetaExpectedVersion] = dvVersion
	} else {
		// The source row must still be the version the conflict was
		// decided against; unknown, the write is unconditional.
		out.Before = nil
		if sourceBefore.Row != nil || sourceBefore.Deleted {
			expectRow(out, meta, sourceBefore)
		}
	}
	out.Meta = meta
	r.remember(out, written{key: in.key, v: synced, in: *in, carried: true, decisions: e.Decisions})
	return Write, changed, nil
}

// expect makes out conditional on the target's version recorded in e.
func (r *syncResolver) expect(out *change.Record, e *state.SyncEntry, found bool) {
	meta := cloneMeta(out.Meta)
	switch {
	case r.side == conflict.Source:
		// Writing to Dataverse: If-Match the ETag; empty (unconditional,
		// version still reported) for a row never synced.
		if found && !e.Deleted {
			meta[change.MetaExpectedVersion] = e.DataverseVersion
		} else {
			meta[change.MetaExpectedVersion] = ""
		}
	case found && e.SourceOwed && (e.SourceBefore != nil || e.SourceBeforeDeleted):
		// The source table has not been given the synced values yet: it
		// must still hold the version they are to replace.
		expectRow(out, meta, conflict.Version{Row: e.SourceBefore, Deleted: e.SourceBeforeDeleted})
	case found:
		// Writing to the source table: the row must still hold the last
		// synced values, or still be absent. A row never synced is
		// written unconditionally, so that rows loaded on both sides
		// before the sync state existed are not all conflicts.
		expectRow(out, meta, entryVersion(e))
	}
	out.Meta = meta
}

// expectRow makes out, a write to the source table, conditional on the
// row being at version v.
func expectRow(out *change.Record, meta map[string]string, v conflict.Version) {
	if v.Deleted {
		meta[change.MetaExpectedVersion] = change.ExpectedAbsent
		out.Before = nil
		return
	}
	meta[change.MetaExpectedVersion] = change.ExpectedRow
	out.Before = v.Row
}

// rewrite turns p.Out into a write of v, the decided version, to the
// target side.
func (r *syncResolver) rewrite(m Mapper, p Pair, v conflict.Version) error {
	out := p.Out
	if r.side == conflict.Dataverse {
		// Pipeline B writes source rows: v is already in their names.
		if v.Deleted {
			out.Op, out.After = change.OpDelete, nil
		} else {
			out.Op, out.After = change.OpUpdate, v.Row.Clone()
		}
		return nil
	}
	// Pipeline A maps a source row: lay v over the source's full row, so
	// that columns the mapping reads but does not sync keep their values.
	src := *p.Source
	src.Before = nil
	if v.Deleted {
		src.Op, src.After = change.OpDelete, nil
	} else {
		src.Op, src.After = change.OpUpdate, change.Merge(p.Source.After, v.Row)
	}
	mapped, ok, err := m.Map(&src)
	if err != nil || !ok {
		return fmt.Errorf("map the decided version of %s: ok=%v: %w", out, ok, err)
	}
	meta := out.Meta
	*out = mapped
	out.Meta = meta
	return nil
}

// Conflict decides a conflict the sink found, and rewrites the record to
// write the decision when the target does not hold it already.
func (r *syncResolver) Conflict(ctx context.Context, m Mapper, p Pair, cerr *change.ConflictError) (Verdict, error) {
	// The table's version found is told from later edits by commit time
	// (pending): the earliest time known to follow the refused write's
	// read of the row is now, before the work below, during which further
	// edits can commit.
	refusedAt := time.Now()
	in := r.canonical(p)
	var refused written // the decision this write carried, if it did
	if w, ok := r.recall(p.Out, true); ok {
		if w.carried {
			return r.carryRefused(ctx, m, p, w.in, cerr)
		}
		in = w.in // the record may have been rewritten since it was read
		if w.decision {
			r.s.doneDeciding(in.key, w.decisions)
			refused = w
		}
	}
	cur, err := r.current(p, cerr)
	if err != nil {
		return Write, err
	}
	keys := [][]byte{in.key}
	unlock := r.s.lock(keys)
	defer unlock()
	entries, found, err := r.s.load(ctx, keys)
	if err != nil {
		return Write, err
	}
	e := &entries[0]
	if match, stale := r.pending(e, &in); found[0] && (match || stale) {
		// The other pipeline decided a conflict over this row meanwhile.
		verdict, _, err := r.carryOver(m, p, e, &in)
		if err != nil {
			return Write, err
		}
		return verdict, r.s.save(ctx, keys, entries)
	}
	if found[0] && cur.Same(entryVersion(e)) {
		// The target changed only in its version, not in the values
		// synced (a write of the same values, or a version dvsync
		// learnt late): no conflict. Write again, conditional on what
		// the target holds now.
		meta := cloneMeta(p.Out.Meta)
		if r.side == conflict.Source {
			e.DataverseVersion = cerr.Version
			meta[change.MetaExpectedVersion] = cerr.Version
		} else {
			expectRow(p.Out, meta, cur)
		}
		p.Out.Meta = meta
		r.remember(p.Out, written{key: in.key, v: in.v, in: in, decisions: e.Decisions})
		return Write, r.s.save(ctx, keys, entries)
	}
	if cur.Same(in.v) {
		// Both sides made the same change: nothing to decide or write.
		e.Values, e.Deleted = in.v.Row, in.v.Deleted
		e.SourceOwed, e.DataverseOwed = false, false
		if r.side == conflict.Source {
			e.DataverseVersion, e.DataverseTime = cerr.Version, cerr.Time
		}
		return Done, r.s.save(ctx, keys, entries)
	}
	c := conflict.Case{Base: entryVersion(e), Known: found[0], Source: in.v, Dataverse: cur}
	if r.side == conflict.Dataverse {
		c.Source, c.Dataverse = cur, in.v
		if e.SourceOwed && cur.Same(conflict.Version{Row: e.SourceBefore, Deleted: e.SourceBeforeDeleted}) {
			// The source row is still the version an earlier decision
			// is to replace: it has not changed since the base.
			c.Source = entryVersion(e)
		}
	}
	if refused.decision && found[0] && e.Decisions == refused.decisions && !owed(e, r.side) && entryVersion(e).Same(refused.v) {
		// The other pipeline carried this refused decision over to its
		// side and recorded it: that side holds the decision now, not
		// the change read. What the target changed since is measured
		// from the version the decision was made against.
		c.Base, c.Known = refused.against, true
		if r.side == conflict.Source {
			c.Source = refused.v
		} else {
			c.Source, c.Dataverse = cur, refused.v
		}
	}
	decision := conflict.Decide(r.s.cfg.Rules, c)
	r.s.record(p, c, decision)
	e.Decisions++
	// The target's version will reach its own pipeline later, which must
	// recognise it as decided (and not count the conflict again); this
	// pipeline's version is dealt with now.
	setSeen(e, r.side, 0)
	if r.side == conflict.Source {
		if n := versionNumber(cerr.Version); n >= 0 {
			e.DataverseSeen = uint64(n)
		}
	} else {
		e.SourceSeen, e.SourceTime = versionPrint(cur), refusedAt
	}
	if decision.Outcome == conflict.Park {
		if _, err := r.s.cfg.Store.ParkConflict(ctx, r.s.parked(r.side, p, in.key, c, cerr.Version)); err != nil {
			return Write, err
		}
		// Neither side is written until an operator settles it. The
		// state stays at the base, Dataverse's version included, so that
		// later changes on either side conflict (and are parked) too.
		return Done, r.s.save(ctx, keys, entries)
	}
	w := written{key: in.key, v: decision.Result, in: in, decision: true, decisions: e.Decisions, against: cur,
		owedSource: !decision.Result.Same(c.Source), owedDataverse: !decision.Result.Same(c.Dataverse)}
	if w.owedSource && r.side == conflict.Source {
		// Pipeline B will carry the decision over: it replaces this.
		w.sourceBefore = c.Source
	}
	if (r.side == conflict.Source && !w.owedDataverse) || (r.side == conflict.Dataverse && !w.owedSource) {
		// The target holds the decided version already.
		r.settleDecision(e, w, &in)
		if r.side == conflict.Source {
			e.DataverseVersion, e.DataverseTime = cerr.Version, cerr.Time
		}
		return Done, r.s.save(ctx, keys, entries)
	}
	// The decision becomes the synced state once written (Synced); if the
	// target changes again first, the next conflict is decided from the
	// same base.
	if err := r.s.save(ctx, keys, entries); err != nil {
		return Write, err
	}
	if err := r.rewrite(m, p, decision.Result); err != nil {
		return Write, err
	}
	meta := cloneMeta(p.Out.Meta)
	if r.side == conflict.Source {
		meta[change.MetaExpectedVersion] = cerr.Version
	} else {
		expectRow(p.Out, meta, cur)
	}
	p.Out.Meta = meta
	r.remember(p.Out, w)
	r.s.setDeciding(in.key, &w)
	return Write, nil
}

// carryRefused handles the refusal of a write that carried over the
// other pipeline's decision: the target changed after that decision.
func (r *syncResolver) carryRefused(ctx context.Context, m Mapper, p Pair, in incoming, cerr *change.ConflictError) (Verdict, error) {
	target := r.side.Other()
	token, ok := r.s.supersededWrite(target, in.key)
	if !ok {
		// That change reaches the other pipeline, which syncs it as a
		// change made after the decision; writing the decision now could
		// only overwrite it.
		return Done, nil
	}
	cur, err := r.current(p, cerr)
	if err != nil {
		return Write, err
	}
	if r.targetToken(cur, cerr) != token {
		return Done, nil
	}
	// The target holds only dvsync's own write of an earlier decision,
	// which the one carried here replaced: no change will reach the other
	// pipeline, and this decision is still owed. It is carried over again,
	// on condition that the target still holds that write.
	keys := [][]byte{in.key}
	unlock := r.s.lock(keys)
	defer unlock()
	entries, _, err := r.s.load(ctx, keys)
	if err != nil {
		return Write, err
	}
	r.s.supersede(target, in.key, "")
	verdict, changed, err := r.carryOver(m, p, &entries[0], &in)
	if err != nil {
		return Write, err
	}
	if verdict == Write {
		if r.side == conflict.Source {
			p.Out.Meta[change.MetaExpectedVersion] = cerr.Version
		} else {
			expectRow(p.Out, p.Out.Meta, cur)
		}
	}
	r.trace("carry over again", p.Out, &in, &entries[0])
	if changed {
		return verdict, r.s.save(ctx, keys, entries)
	}
	return verdict, nil
}

// targetToken identifies the version of this pipeline's target found by
// a refused write, as supersede records dvsync's own writes: by ETag in
// Dataverse, by fingerprint in the table.
func (r *syncResolver) targetToken(cur conflict.Version, cerr *change.ConflictError) string {
	if r.side == conflict.Source {
		return cerr.Version
	}
	return strconv.FormatUint(versionPrint(cur), 16)
}

// settleDecision makes w, a decision, the synced state of e: the values,
// the sides that still lack them, and the source version they replace.
// in is the change this pipeline read.
func (r *syncResolver) settleDecision(e *state.SyncEntry, w written, in *incoming) {
	e.Values, e.Deleted = w.v.Row, w.v.Deleted
	e.SourceOwed, e.DataverseOwed = w.owedSource, w.owedDataverse
	e.SourceBefore, e.SourceBeforeDeleted = w.sourceBefore.Row, w.sourceBefore.Deleted
	if r.side == conflict.Dataverse {
		r.dataverseRead(e, in)
	}
}

// dataverseRead records the Dataverse version pipeline B read.
func (r *syncResolver) dataverseRead(e *state.SyncEntry, in *incoming) {
	switch {
	case in.v.Deleted:
		// Dataverse's row is gone: a write that recreates it can expect
		// no version.
		e.DataverseVersion = ""
	case newerVersion(in.version, e.DataverseVersion):
		e.DataverseVersion, e.DataverseTime = in.version, in.v.Time
	}
}

// current returns the target's version the sink found, in source names.
func (r *syncResolver) current(p Pair, cerr *change.ConflictError) (conflict.Version, error) {
	v := conflict.Version{Deleted: cerr.Deleted || cerr.Current == nil, Time: cerr.Time}
	if v.Deleted {
		return v, nil
	}
	if r.side == conflict.Dataverse {
		v.Row = conflict.Project(cerr.Current, r.s.cfg.Columns)
		if ts, ok := cerr.Current.Get(r.s.cfg.TimestampColumn); ok && ts.Kind() == change.KindTimestamp {
			v.Time = ts.Time()
		}
		return v, nil
	}
	back, ok, err := r.s.cfg.Reverse(&change.Record{Op: change.OpUpdate, Table: p.Out.Table, Key: p.Out.Key, After: cerr.Current})
	if err != nil || !ok {
		return v, fmt.Errorf("map the Dataverse version of %s back: ok=%v: %w", p.Out, ok, err)
	}
	v.Row = conflict.Project(back.After, r.s.cfg.Columns)
	if v.Time.IsZero() {
		if ts, ok := cerr.Current.Get("modifiedon"); ok && ts.Kind() == change.KindTimestamp {
			v.Time = ts.Time()
		}
	}
	return v, nil
}

// Synced records the written versions as the last synced state.
func (r *syncResolver) Synced(ctx context.Context, pairs []Pair) error {
	keys := make([][]byte, 0, len(pairs))
	ins := make([]incoming, 0, len(pairs))
	ws := make([]written, 0, len(pairs))
	outs := make([]*change.Record, 0, len(pairs))
	for _, p := range pairs {
		// Forgotten only once recorded: until then, the write is in
		// flight for the other pipeline's echo check.
		w, ok := r.recall(p.Out, false)
		if !ok {
			continue
		}
		defer r.recall(p.Out, true)
		in := w.in
		keys, ins, ws, outs = append(keys, in.key), append(ins, in), append(ws, w), append(outs, p.Out)
	}
	if len(keys) == 0 {
		return nil
	}
	unlock := r.s.lock(keys)
	defer unlock()
	entries, _, err := r.s.load(ctx, keys)
	if err != nil {
		return err
	}
	for i := range keys {
		e, in, w := &entries[i], &ins[i], ws[i]
		if w.decision {
			defer r.s.doneDeciding(in.key, w.decisions) // once recorded
		}
		if e.Decisions != w.decisions {
			// A conflict was decided over the row while this write was
			// in flight, against the state it found: the values written
			// here were that decision's to weigh, and the state it left
			// (what each side is owed, the versions pending) stands.
			r.trace("synced after a later decision", outs[i], in, e)
			if w.carried {
				// The later decision's carry-over will find this
				// write in the target, and may replace it.
				token := strconv.FormatUint(versionPrint(w.v), 16)
				if r.side == conflict.Source {
					token = outs[i].Meta[change.MetaVersion]
				}
				r.s.supersede(r.side.Other(), in.key, token)
			}
			continue
		}
		r.s.supersede(r.side.Other(), in.key, "")
		switch {
		case w.decision:
			r.settleDecision(e, w, in)
			// The target now holds the decision.
			if r.side == conflict.Source {
				e.DataverseOwed = false
			} else {
				e.SourceOwed = false
				e.SourceBefore, e.SourceBeforeDeleted = nil, false
			}
		default:
			e.Values, e.Deleted = w.v.Row, w.v.Deleted
			if r.side == conflict.Source {
				e.DataverseOwed = false
			} else {
				e.SourceOwed = false
				e.SourceBefore, e.SourceBeforeDeleted = nil, false
				r.dataverseRead(e, in)
			}
			if w.v.Same(in.v) {
				// The change read was written as it was: both sides hold
				// it, whatever an earlier conflict left owed.
				e.SourceOwed, e.DataverseOwed = false, false
				e.SourceBefore, e.SourceBeforeDeleted = nil, false
			}
		}
		r.readPast(e, in)
		if r.side == conflict.Source {
			if v := outs[i].Meta[change.MetaVersion]; v != "" {
				// A delete reports no version: the last one stays, so
				// that change tracking's older versions of the row are
				// recognised as such.
				e.DataverseVersion = v
			}
		}
	}
	return r.s.save(ctx, keys, entries)
}

// readPast clears the version of this pipeline's side that the other
// pipeline decided a conflict against, once in, a change this pipeline
// wrote, is that version or a later one. Either side's changes can be
// read older than that version, and written as a carry-over of the
// decision: Dataverse's (an edit made before it, delivered late) and the
// table's (an edit committed before it, read before it). The version
// itself is still to be read then, and must still be recognised as
// decided.
func (r *syncResolver) readPast(e *state.SyncEntry, in *incoming) {
	if r.side == conflict.Dataverse {
		if n := versionNumber(in.version); n < 0 || uint64(n) < e.DataverseSeen {
			return
		}
	} else if match, stale := r.pending(e, in); stale && !match {
		return
	}
	setSeen(e, r.side, 0)
}

// trace logs, at debug level, what the resolver does with a change.
func (r *syncResolver) trace(what string, out *change.Record, in *incoming, e *state.SyncEntry) {
	if !r.s.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	r.s.log.Debug("sync "+what, "side", r.side.String(), "key", out.Key.String(), "in", versionText(in.v),
		"version", in.version, "base", versionText(entryVersion(e)), "dv_version", e.DataverseVersion,
		"pending_source", e.SourceSeen, "pending_dataverse", e.DataverseSeen,
		"owed_source", e.SourceOwed, "owed_dataverse", e.DataverseOwed, "expect", out.Meta[change.MetaExpectedVersion])
}
