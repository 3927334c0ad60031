package sqlserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	// Earlier counts the rows read by the runs this one resumes.
	Earlier int64
	// Began is when this run read the table's first page; zero before,
	// and for a table an earlier run finished.
	Began time.Time
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
	reading  map[string]bool // tables not done when this run opened
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
	s.reading = map[string]bool{}
	for _, t := range st.tables {
		c := st.pos.Tables[t.name]
		p := TableProgress{Table: t.name, Done: c.Snap == nil}
		if c.Snap != nil {
			p.Read, p.Earlier = c.Snap.Rows, c.Snap.Rows
			s.reading[t.name] = true
		}
		s.progress[t.name] = p
		s.logger.Info("sqlserver: backfill table", "table", t.name, "rows_done", p.Read, "finished_earlier", p.Done)
	}
	s.final, s.last = nil, nil
	s.mu.Unlock()
	st.progress = func(table string, rows int64, done bool) {
		s.mu.Lock()
		p := s.progress[table]
		if p.Began.IsZero() {
			// The first page of this run, or its only one.
			p.Began = time.Now()
		}
		p.Read, p.Done = rows, done
		s.progress[table] = p
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

// Ack records that the records up to pos are durable, and logs at debug
// level how far each table's read now resumes; when pos is that of the
// last record, Done is closed.
func (s *Snapshot) Ack(ctx context.Context, pos change.Position) error {
	if s.run == nil {
		return errNotOpen
	}
	p, err := decodePosition(pos)
	if err != nil {
		return err
	}
	if s.logger.Enabled(ctx, slog.LevelDebug) {
		// Acks follow saves: this is how far a killed backfill resumes.
		for _, name := range s.cfg.Tables {
			if c, ok := p.Tables[name]; ok && c.Snap != nil {
				s.logger.Debug("sqlserver: backfill progress saved", "table", name, "rows", c.Snap.Rows)
			}
		}
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

// StreamPosition returns the position a Source of the same tables should
// stream from after this backfill, given the Source's saved position
// stream (nil when it has none): stream, with the cursor Complete records
// for each table that stream does not mention or that this run read.
// Tables an earlier run of the backfill finished and stream already
// mentions keep stream's cursor, so running a finished backfill again
// does not move streaming back. It fails before every row has been
// read.
func (s *Snapshot) StreamPosition(stream change.Position) (change.Position, error) {
	s.mu.Lock()
	final, reading := s.final, s.reading
	s.mu.Unlock()
	if final == nil {
		return nil, errors.New("sqlserver: the backfill has not read every row yet")
	}
	done, err := decodePosition(final)
	if err != nil {
		return nil, err
	}
	out, err := decodePosition(stream)
	if err != nil {
		return nil, fmt.Errorf("streaming position: %w", err)
	}
	for name, c := range done.Tables {
		if _, ok := out.Tables[name]; !ok || reading[name] {
			out.Tables[name] = c
		}
	}
	return out.encode(), nil
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
