// Package sqlserver is the SQL Server change source. It polls, for each
// configured table, either change tracking (CHANGETABLE(CHANGES …) joined
// to the table for current values) or the CDC change functions of the
// table's capture instance, and emits the changes as records in commit
// order per table.
//
// Change tracking mode (the default) reads each poll in one snapshot
// transaction, so the database must allow snapshot isolation. Change
// tracking keeps net changes: several updates of a row between two polls
// arrive as one record with the row's values at the poll, and an insert
// followed by a delete arrives as nothing, or as a delete. Changes whose
// SYS_CHANGE_CONTEXT equals Config.Context (dvsync's own SQL Server sink
// writes under it) are skipped, so a two-way sync does not echo them.
//
// CDC mode reads every change with its before image: updates carry Before
// and After, deletes carry Before, in __$start_lsn, __$seqval and
// __$operation order. An update that changed the key becomes a delete of
// the old key and an insert of the new one. A capture instance is fixed
// when it is created; when the table's columns no longer match it, the
// source logs a warning naming the difference.
//
// Either way, a saved position older than the changes SQL Server still
// holds (the table's CHANGE_TRACKING_MIN_VALID_VERSION, the instance's
// minimum LSN) does not silently skip what was cleaned up: the table is
// read whole again, as change.OpRead records, and streams from the
// version or LSN taken before that read.
//
// Polling adapts: PollInterval after a poll that found changes,
// doubling up to MaxPollInterval while polls find none.
package sqlserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/source"
)

// maxBatch caps the records one Read returns; bufferSize caps the records
// polled ahead of Read.
const (
	maxBatch   = 1024
	bufferSize = 1024
)

// Source is a source.Source over SQL Server change tracking or CDC.
//
// Its methods follow the source.Source contract: Open, then Read from one
// goroutine and Ack from another, then Close; it may be opened again
// after Close. Positions are opaque: per table, the change tracking
// version or CDC LSN delivered up to, or the key reached by a whole-table
// read. A Snapshot's positions resume here, and the other way round.
type Source struct {
	cfg    Config
	logger *slog.Logger
	open   opener
	run    *running
	// health is what Healthy returns.
	health atomic.Pointer[error]
}

var (
	_ source.Source         = (*Source)(nil)
	_ source.HealthReporter = (*Source)(nil)
)

var errNotOpen = errors.New("sqlserver: source not open")

// New returns an unopened source. It validates cfg (after defaults) and
// does not connect. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sqlserver: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg.withDefaults(), logger: logger, open: openSQL}
	s.setHealth(errNotOpen)
	return s, nil
}

// Healthy returns nil while the source is open and polling, and the
// error that stopped polling (or that it is not open) otherwise.
func (s *Source) Healthy() error { return *s.health.Load() }

func (s *Source) setHealth(err error) { s.health.Store(&err) }

// Open connects, checks the database and tables, and starts polling
// just after from. A nil from, and a table from does not mention, start
// at the current change tracking version or maximum LSN: changes before
// Open are not read (run a Snapshot for those).
//
// Open fails, naming the table and the statement that fixes it, when a
// table does not exist, has no key, is not tracked or captured, or when
// the database does not allow snapshot isolation in change tracking mode.
func (s *Source) Open(ctx context.Context, from change.Position) error {
	if s.run != nil {
		return errors.New("sqlserver: source already open")
	}
	st, err := prepare(ctx, s.open, s.cfg, s.logger, from, false)
	if err != nil {
		return err
	}
	s.logger.Info("sqlserver: polling", "mode", string(s.cfg.Mode), "tables", len(st.tables))
	s.setHealth(nil)
	s.run = start(st, true, nil, s.setHealth)
	return nil
}

// Read blocks until a record is available, then returns it with whatever
// else is buffered (at most 1024 records). After polling fails, Read
// returns the records polled before the failure, then the error.
func (s *Source) Read(ctx context.Context) ([]change.Record, error) {
	if s.run == nil {
		return nil, errNotOpen
	}
	return s.run.read(ctx)
}

// Ack records that the records up to pos are durable. SQL Server keeps
// changes for its retention period whatever the reader, so there is
// nothing to release upstream: the position saved by the engine is the
// whole of the source's progress.
func (s *Source) Ack(_ context.Context, pos change.Position) error {
	if s.run == nil {
		return errNotOpen
	}
	if _, err := decodePosition(pos); err != nil {
		return err
	}
	return nil
}

// Close stops polling and closes the connections.
func (s *Source) Close(_ context.Context) error {
	if s.run == nil {
		return nil
	}
	err := s.run.stop()
	s.run = nil
	s.setHealth(errNotOpen)
	return err
}

// running is an opened streamer's goroutine and its output.
type running struct {
	st      *streamer
	records chan change.Record
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // set before records is closed
}

// start runs st in a goroutine until it fails, is stopped, or (with
// streaming false) has read every table; then it calls finished, if set.
// A failure is also passed to failed, if set.
func start(st *streamer, streaming bool, finished func(), failed func(error)) *running {
	r := &running{st: st, records: make(chan change.Record, bufferSize), done: make(chan struct{})}
	st.out = r.records
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		err := st.run(ctx, streaming)
		if err == nil && finished != nil {
			finished()
			return // a finished snapshot keeps records open: Read waits
		}
		if ctx.Err() == nil {
			if failed != nil {
				failed(err)
			}
			r.err = err
			close(r.records)
		}
	}()
	return r
}

func (r *running) read(ctx context.Context) ([]change.Record, error) {
	var batch []change.Record
	select {
	case rec, ok := <-r.records:
		if !ok {
			return nil, r.err
		}
		batch = append(make([]change.Record, 0, min(len(r.records)+1, maxBatch)), rec)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(batch) < maxBatch {
		select {
		case rec, ok := <-r.records:
			if !ok {
				return batch, nil
			}
			batch = append(batch, rec)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

func (r *running) stop() error {
	r.cancel()
	<-r.done
	return r.st.db.close()
}
