// Package dataverse captures changes made in Microsoft Dataverse, from two
// feeds that may run alone or together:
//
//   - a webhook receiver, an HTTP(S) endpoint that accepts the
//     RemoteExecutionContext Dataverse posts when a registered step runs
//     (Create, Update, Delete, Assign, SetState, Merge);
//   - a change-tracking poller that runs delta queries per table and
//     fills whatever the webhooks missed (a failed delivery, downtime).
//
// Both feeds write into a durable inbox in the state store before they
// acknowledge anything: the receiver answers 2xx only once the event is
// stored, and the poller stores a table's delta link in the same
// transaction as the changes read with it. Read returns the inbox in
// order; Ack removes what the pipeline has made durable; after a restart
// the un-acked entries are returned again.
//
// Each change is applied once and in Dataverse's order: the inbox keeps,
// per row, the last versionnumber it accepted, and a change at or below it
// (a retried delivery, the poller seeing what a webhook brought, a late
// asynchronous delivery) is dropped. A delete outranks the version it
// deleted. Changes made by dvsync's own user, or carrying its tag, are
// not stored, so a two-way sync does not echo its own writes; they move
// the row's version on all the same. A change by someone else that was
// overtaken by one of dvsync's own, and arrives after it, is still
// applied if it is later than every other change applied to the row: it
// is how the pipeline of a two-way mapping learns that dvsync's write
// decided a conflict over it.
package dataverse

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/state"
)

// Store is the durable storage the source keeps its inbox in; the bbolt
// and PostgreSQL state stores implement it (see state.InboxWrite for the
// contract).
type Store interface {
	InboxAppend(ctx context.Context, inbox string, w state.InboxWrite) (first uint64, err error)
	InboxEntries(ctx context.Context, inbox string, after uint64, limit int) ([]state.InboxEntry, error)
	InboxAck(ctx context.Context, inbox string, through uint64) error
	InboxMarks(ctx context.Context, inbox string) ([]state.InboxMark, error)
	InboxPruneMarks(ctx context.Context, inbox, table string, below int64) error
	InboxCursor(ctx context.Context, inbox, name string) ([]byte, error)
	InboxKeep(ctx context.Context, inbox string, k state.KeptBody) error
}

var (
	_ Store                 = (*state.Bolt)(nil)
	_ Store                 = (*state.Postgres)(nil)
	_ source.Source         = (*Source)(nil)
	_ source.HealthReporter = (*Source)(nil)
)

// opTable is the mark table under which deliveries without a
// versionnumber are remembered by request or operation id; their Version
// is the Unix time they arrived, so old ones can be pruned.
const opTable = "$op"

// opMarkRetention is how long a delivery id is remembered. Dataverse
// retries an asynchronous step for far less.
const opMarkRetention = 7 * 24 * time.Hour

// Source is a source.Source of Dataverse changes. Open, Read, Ack and
// Close follow the source.Source contract; Healthy may be called at any
// time.
type Source struct {
	cfg    Config
	client *odataclient.Client
	store  Store
	log    *slog.Logger
	own    map[string]bool
	meta   *odataclient.MetadataCache

	// mu serializes admissions (webhook requests and poller pages) and
	// guards marks, which mirror the stored marks.
	mu    sync.Mutex
	marks map[string]state.InboxMark

	// hooksQ groups concurrent webhook requests into one inbox write.
	hooksQ hookQueue

	notify  chan struct{} // signalled after each admission that stored entries
	readSeq uint64        // last sequence number returned by Read; Read's goroutine only
	pruned  atomic.Int64  // Unix time of the last prune of delivery marks

	// tables are the polled tables of the current Open, for Healthy.
	tables atomic.Pointer[[]*polledTable]
	// rounds and hooks count finished poll rounds and answered webhook
	// requests, for tests that must know a feed has caught up.
	rounds, hooks atomic.Int64

	cancel context.CancelFunc
	wg     sync.WaitGroup
	hook   *receiver
	failed chan error // a background part that cannot go on
}

// New validates cfg and returns a Source that keeps its inbox in store
// under cfg.Name. client is required when cfg.Poll is set; logger may be
// nil. New does no I/O.
func New(cfg Config, client *odataclient.Client, store Store, logger *slog.Logger) (*Source, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if store == nil {
		return nil, errors.New("dataverse source: a state store is required")
	}
	if cfg.Poll != nil && client == nil {
		return nil, errors.New("dataverse source: poll needs a Dataverse client")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{
		cfg:    cfg,
		client: client,
		store:  store,
		log:    logger.With("source", "dataverse", "name", cfg.Name),
		own:    map[string]bool{},
	}
	for _, id := range cfg.OwnUserIDs {
		v, err := change.ParseUUID(id)
		if err != nil {
			return nil, fmt.Errorf("dataverse source: own_user_ids: %q is not a GUID", id)
		}
		s.own[v.String()] = true
	}
	if client != nil {
		s.meta = odataclient.NewMetadataCache(client)
	}
	return s, nil
}

// Open loads the inbox's marks, drops entries at or before from (acked
// downstream but not yet removed when the process stopped), resolves the
// polled tables' metadata, binds the webhook listener and starts the
// poller. A nil from returns every entry still in the inbox.
func (s *Source) Open(ctx context.Context, from change.Position) error {
	var after uint64
	if from != nil {
		seq, err := decodePosition(from)
		if err != nil {
			return err
		}
		after = seq
		if err := s.store.InboxAck(ctx, s.cfg.Name, seq); err != nil {
			return fmt.Errorf("dataverse source: %w", err)
		}
	}
	marks, err := s.store.InboxMarks(ctx, s.cfg.Name)
	if err != nil {
		return fmt.Errorf("dataverse source: %w", err)
	}
	s.marks = make(map[string]state.InboxMark, len(marks))
	for _, m := range marks {
		s.marks[markKey(m.Table, m.ID)] = m
	}
	s.readSeq = after
	s.notify = make(chan struct{}, 1)
	s.failed = make(chan error, 1)

	var tables []*polledTable
	if s.cfg.Poll != nil {
		for _, t := range s.cfg.Poll.Tables {
			pt, err := s.resolveTable(ctx, t)
			if err != nil {
				return err
			}
			tables = append(tables, pt)
		}
	}
	s.tables.Store(&tables)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	if s.cfg.Webhook != nil {
		h, err := s.startReceiver()
		if err != nil {
			cancel()
			return err
		}
		s.hook = h
	}
	for _, pt := range tables {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.poll(bg, pt)
		}()
	}
	return nil
}

// Read returns the next inbox entries as records, waiting until there is
// at least one. Each record's Position is its entry's sequence number.
func (s *Source) Read(ctx context.Context) ([]change.Record, error) {
	for {
		entries, err := s.store.InboxEntries(ctx, s.cfg.Name, s.readSeq, s.cfg.MaxBatch)
		if err != nil {
			return nil, fmt.Errorf("dataverse source: %w", err)
		}
		if len(entries) > 0 {
			out := make([]change.Record, 0, len(entries))
			for _, e := range entries {
				rec, err := decodeRecord(e.Data)
				if err != nil {
					return nil, fmt.Errorf("dataverse source: entry %d: %w", e.Seq, err)
				}
				rec.Position = encodePosition(e.Seq)
				out = append(out, rec)
			}
			s.readSeq = entries[len(entries)-1].Seq
			return out, nil
		}
		select {
		case <-s.notify:
		case err := <-s.failed:
			return nil, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ack removes the inbox entries up to pos, and now and then forgets
// delivery ids older than Dataverse retries.
func (s *Source) Ack(ctx context.Context, pos change.Position) error {
	seq, err := decodePosition(pos)
	if err != nil {
		return err
	}
	if err := s.store.InboxAck(ctx, s.cfg.Name, seq); err != nil {
		return fmt.Errorf("dataverse source: %w", err)
	}
	now := time.Now()
	if last := s.pruned.Load(); now.Unix()-last >= int64(time.Hour/time.Second) && s.pruned.CompareAndSwap(last, now.Unix()) {
		s.mu.Lock()
		defer s.mu.Unlock()
		below := now.Add(-opMarkRetention).Unix()
		if err := s.store.InboxPruneMarks(ctx, s.cfg.Name, opTable, below); err != nil {
			return fmt.Errorf("dataverse source: %w", err)
		}
		for k, m := range s.marks {
			if m.Table == opTable && m.Version < below {
				delete(s.marks, k)
			}
		}
	}
	return nil
}

// Close stops the receiver (letting requests in flight finish their
// store write, within ctx) and the poller. It acks nothing.
func (s *Source) Close(ctx context.Context) error {
	var err error
	if s.hook != nil {
		err = s.hook.shutdown(ctx)
		s.hook = nil
	}
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
		s.cancel = nil
	}
	if err != nil {
		return fmt.Errorf("dataverse source: stop webhook receiver: %w", err)
	}
	return nil
}

// Healthy returns the failure of the last round of each polled table
// whose last round failed, or nil. The webhook receiver reports nothing
// here: it only answers, and a receiver that stops serving ends Read.
func (s *Source) Healthy() error {
	tables := s.tables.Load()
	if tables == nil {
		return nil
	}
	var errs []error
	for _, pt := range *tables {
		if p := pt.failure.Load(); p != nil && *p != nil {
			errs = append(errs, *p)
		}
	}
	return errors.Join(errs...)
}

// fail hands a background failure that no retry fixes to Read.
func (s *Source) fail(err error) {
	select {
	case s.failed <- err:
	default:
	}
}

func encodePosition(seq uint64) change.Position {
	return binary.BigEndian.AppendUint64(nil, seq)
}

func decodePosition(pos change.Position) (uint64, error) {
	if len(pos) != 8 {
		return 0, fmt.Errorf("dataverse source: position %x is not one of this source's", []byte(pos))
	}
	return binary.BigEndian.Uint64(pos), nil
}

func markKey(table, id string) string { return table + "\x00" + id }

// candidate is one candidate for the inbox, from either feed.
type candidate struct {
	rec change.Record
	id  string // the row id, canonical
	// version is the row's versionnumber after the change; hasVersion is
	// false when the feed did not carry one.
	version    int64
	hasVersion bool
	// delivery identifies a webhook delivery (request or operation id) for
	// changes without a version.
	delivery string
	// echo marks dvsync's own change: remembered, not stored.
	echo bool
	// upsert says the feed cannot tell a new row from a changed one (a
	// delta query): the op follows from whether the row is known.
	upsert bool
	// baseline marks a row read by a full read of the table: it becomes
	// an OpRead, dropped like any other when its version is the one
	// already accepted.
	baseline bool
}

// admit decides, under s.mu, which candidates are new, and stores them
// with their marks and cursors in one write. It returns how many entries
// it stored. Marks in memory change only once the write succeeded.
func (s *Source) admit(ctx context.Context, cands []candidate, cursors map[string][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var w state.InboxWrite
	w.Cursors = cursors
	pending := map[string]state.InboxMark{}
	current := func(k string) (state.InboxMark, bool) {
		if m, ok := pending[k]; ok {
			return m, true
		}
		m, ok := s.marks[k]
		return m, ok
	}
	for i := range cands {
		c := &cands[i]
		k := markKey(c.rec.Table, c.id)
		mark, known := current(k)
		deleted := c.rec.Op == change.OpDelete
		next := state.InboxMark{Table: c.rec.Table, ID: c.id, Version: mark.Version, Deleted: deleted, Foreign: mark.Foreign}
		if c.hasVersion && !c.echo {
			next.Foreign = max(mark.Foreign, c.version)
		}
		switch {
		case deleted && known && mark.Deleted:
			// Deleting a deleted row changes nothing; a later date for
			// the delete still fences off older deliveries.
			if c.hasVersion && c.version > mark.Version {
				next.Version = c.version
				pending[k] = next
			}
			continue
		case c.hasVersion && known && overtaken(c, mark):
			// Applied late, under dvsync's own newer version, which the
			// mark keeps.
			next.Version, next.Deleted = mark.Version, mark.Deleted
		case c.hasVersion:
			// A delete outranks the version it deleted: order by
			// (version, deleted).
			if known && rank(c.version, deleted) <= rank(mark.Version, mark.Deleted) {
				continue
			}
			next.Version = c.version
		case deleted:
			// An undated delete of a live or unknown row is applied; the
			// mark keeps the version it deleted.
		default:
			if c.delivery != "" {
				dk := markKey(opTable, c.delivery)
				if _, seen := current(dk); seen {
					continue
				}
				pending[dk] = state.InboxMark{Table: opTable, ID: c.delivery, Version: time.Now().Unix()}
			}
			if known && !mark.Deleted {
				next.Version = mark.Version
			}
		}
		pending[k] = next
		if c.echo {
			continue
		}
		switch {
		case c.baseline:
			c.rec.Op = change.OpRead
		case c.upsert && known && !mark.Deleted:
			c.rec.Op = change.OpUpdate
		case c.upsert:
			c.rec.Op = change.OpInsert
		}
		data, err := encodeRecord(&c.rec)
		if err != nil {
			return 0, fmt.Errorf("encode %s: %w", c.rec.String(), err)
		}
		w.Entries = append(w.Entries, data)
	}
	for _, m := range pending {
		w.Marks = append(w.Marks, m)
	}
	if len(w.Entries) == 0 && len(w.Marks) == 0 && len(w.Cursors) == 0 {
		return 0, nil
	}
	if _, err := s.store.InboxAppend(ctx, s.cfg.Name, w); err != nil {
		return 0, err
	}
	for k, m := range pending {
		s.marks[k] = m
	}
	if len(w.Entries) > 0 {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return len(w.Entries), nil
}

// overtaken reports whether c, a change by someone other than dvsync, is
// older than the row's mark only because dvsync's own writes came after
// it: it is later than the last change applied that was not dvsync's own,
// and earlier than dvsync's latest version. Dataverse posts webhooks
// concurrently, so the webhook of dvsync's write of a conflict decided
// over a person's edit can arrive before the edit's: the edit is still a
// change to apply, in order after every other change applied, and the
// pipeline reading it recognises it as overtaken by dvsync's decision. A
// delete is not: dvsync can write a row after a delete only by creating
// it anew, under another id.
func overtaken(c *candidate, mark state.InboxMark) bool {
	return !c.echo && c.rec.Op != change.OpDelete && c.version > mark.Foreign && c.version < mark.Version
}

func rank(version int64, deleted bool) int64 {
	r := version * 2
	if deleted {
		r++
	}
	return r
}

// known returns the ids of table's rows the inbox holds as live, with
// their marks.
func (s *Source) known(table string) map[string]state.InboxMark {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]state.InboxMark{}
	for _, m := range s.marks {
		if m.Table == table && !m.Deleted {
			out[m.ID] = m
		}
	}
	return out
}

// mark returns the current mark of a row.
func (s *Source) mark(table, id string) (state.InboxMark, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.marks[markKey(table, id)]
	return m, ok
}

// isOwn reports whether a Dataverse user id is one of dvsync's.
func (s *Source) isOwn(id string) bool {
	return id != "" && s.own[strings.ToLower(id)]
}

func formatVersion(v int64) string { return strconv.FormatInt(v, 10) }
