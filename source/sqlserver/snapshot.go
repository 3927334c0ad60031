package sqlserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/source"
)

// SnapshotOptions tunes a Snapshot. The zero value of every field selects
// its default.
type SnapshotOptions struct {
	// PageSize is how many rows one query reads (default
	// Config.PageSize, itself 2000 by default).
	PageSize int
}

// TableProgress is how far a Snapshot has read one table.
type TableProgress struct {
	// Table is the table's name as configured and as records carry it.
	Table string
	// Read counts the rows read, in this run and the runs it resumes.
	Read int64
	// Done is set once every row has been read.
	Done bool
}

// Snapshot is a source.Source that reads every row of the configured
// tables once, as change.OpRead records, and then has nothing more to
// give: Done is closed when the last record has been acked.
//
// Before reading a table it records where streaming must resume: the
// current change tracking version, or the maximum LSN. Rows are read in
// key order, a page per query, outside any long transaction; a change
// committed during the read is then streamed again from the recorded
// point, which converges because sinks upsert by key. Positions record,
// per table, the key of the last row read, so a backfill reopened at an
// acked position goes on after the last durable key; Complete, saved as
// a Source's position, streams every table from its recorded point.
//
// The methods follow the source.Source contract. Progress, Done and
// Complete may be called from any goroutine at any time.
type Snapshot struct {
	cfg    Config
	logger *slog.Logger
	open   opener
	run    *running

	mu       sync.Mutex
	tables   []string
	progress map[string]TableProgress
	final    change.Position // every table done; nil before the read ends
	last     change.Position // position of the last record, once the read has ended
	lastAck  change.Position
	done     chan struct{}
	doneOnce sync.Once
}

var _ source.Source = (*Snapshot)(nil)

// NewSnapshot returns an unopened backfill of cfg.Tables. It validates
// cfg and opts and does not connect. A nil logger discards logs.
func NewSnapshot(cfg Config, opts SnapshotOptions, logger *slog.Logger) (*Snapshot, error) {
	if opts.PageSize < 0 {
		return nil, errors.New("sqlserver: invalid backfill config: page size: must not be negative")
	}
	if opts.PageSize > 0 {
		cfg.PageSize = opts.PageSize
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sqlserver: invalid backfill config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Snapshot{cfg: cfg.withDefaults(), logger: logger, open: openSQL, done: make(chan struct{})}, nil
}

// Open checks the database and tables, records the streaming start
// point of every table from does not mention, and starts reading the
// tables not done at from. A nil from reads every table from its first
// row.
func (s *Snapshot) Open(ctx context.Context, from change.Position) error {
	if s.run != nil {
		return errors.New("sqlserver: backfill already open")
	}
	st, err := prepare(ctx, s.open, s.cfg, s.logger, from, true)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.tables = s.cfg.Tables
	s.progress = map[string]TableProgress{}
	for _, t := range st.tables {
		c := st.pos.Tables[t.name]
		p := TableProgress{Table: t.name, Done: c.Snap == nil}
		if c.Snap != nil {
			p.Read = c.Snap.Rows
		}
		s.progress[t.name] = p
	}
	s.final, s.last = nil, nil
	s.mu.Unlock()
	st.progress = func(table string, rows int64, done bool) {
		s.mu.Lock()
		s.progress[table] = TableProgress{Table: table, Read: rows, Done: done}
		s.mu.Unlock()
	}
	s.run = start(st, false, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.final, s.last = st.pos.encode(), st.lastPos
		if s.last == nil || bytes.Equal(s.lastAck, s.last) {
			s.finish()
		}
	}, nil)
	return nil
}

// finish closes Done once; s.mu is held.
func (s *Snapshot) finish() { s.doneOnce.Do(func() { close(s.done) }) }

// Read returns the next records read. Once every row has been returned it
// blocks until ctx is done.
func (s *Snapshot) Read(ctx context.Context) ([]change.Record, error) {
	if s.run == nil {
		return nil, errNotOpen
	}
	return s.run.read(ctx)
}

// Ack records that the records up to pos are durable; when pos is that
// of the last record, Done is closed.
func (s *Snapshot) Ack(_ context.Context, pos change.Position) error {
	if s.run == nil {
		return errNotOpen
	}
	if _, err := decodePosition(pos); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAck = bytes.Clone(pos)
	if s.last != nil && bytes.Equal(pos, s.last) {
		s.finish()
	}
	return nil
}

// Done is closed when every row has been read and acked.
func (s *Snapshot) Done() <-chan struct{} { return s.done }

// Complete returns the position after the last record, in which every
// table streams from the point recorded before its read. Saved as a
// Source's position, it starts streaming without a gap. It is nil until
// every row has been read.
func (s *Snapshot) Complete() change.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.final
}

// Progress returns how far each table has been read, in configured
// order. It is empty before Open.
func (s *Snapshot) Progress() []TableProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TableProgress, 0, len(s.tables))
	for _, name := range s.tables {
		if p, ok := s.progress[name]; ok {
			out = append(out, p)
		}
	}
	return out
}

// Close stops reading and closes the connections. Rows read and not
// acked are read again by the next Open.
func (s *Snapshot) Close(_ context.Context) error {
	if s.run == nil {
		return nil
	}
	err := s.run.stop()
	s.run = nil
	return err
}
