package sqlserver

import (
	"context"
	"log/slog"
	"time"

	"github.com/dvsync/dvsync/change"
)

// mismatchCheck is how often the CDC tables' columns are compared with
// their capture instances' after Open.
const mismatchCheck = time.Minute

// streamer polls the tables, one after the other, and emits their
// records with positions. It runs in one goroutine; pos is its own.
type streamer struct {
	cfg     Config
	db      database
	logger  *slog.Logger
	tables  []*table
	context []byte
	pos     *position
	out     chan<- change.Record
	// progress, when set, is told the rows read of a table in the
	// snapshot phase after every page.
	progress func(table string, rows int64, done bool)

	lastPos   change.Position   // position of the last record placed
	warned    map[string]string // the mismatch last warned about, by table
	lastCheck time.Time
}

// place sets t's cursor to at and gives rec the position after it.
func (s *streamer) place(rec *change.Record, t *table, at cursor) {
	s.pos.Tables[t.name] = at
	s.pos.Seq++
	rec.Position = s.pos.encode()
	s.lastPos = rec.Position
}

// emit hands records to Read, waiting while its buffer is full.
func (s *streamer) emit(ctx context.Context, recs ...change.Record) error {
	for _, r := range recs {
		select {
		case s.out <- r:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *streamer) rowsRead(table string, rows int64, done bool) {
	if s.progress != nil {
		s.progress(table, rows, done)
	}
}

// snapshotting reports whether some table is being read whole.
func (s *streamer) snapshotting() bool {
	for _, t := range s.tables {
		if s.pos.Tables[t.name].Snap != nil {
			return true
		}
	}
	return false
}

// pollOnce polls every table once: a page of a table being read whole,
// or the changes of a streaming one. It returns how many records it
// emitted.
func (s *streamer) pollOnce(ctx context.Context, streaming bool) (int, error) {
	if s.cfg.Mode == ModeCDC && streaming && time.Since(s.lastCheck) >= mismatchCheck {
		if err := s.checkCaptureInstances(ctx); err != nil {
			return 0, err
		}
	}
	total := 0
	for _, t := range s.tables {
		var n int
		var err error
		switch {
		case s.pos.Tables[t.name].Snap != nil:
			n, err = s.readPage(ctx, t)
		case !streaming:
			continue
		case s.cfg.Mode == ModeCDC:
			n, err = s.pollCDC(ctx, t)
		default:
			n, err = s.pollCT(ctx, t)
		}
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// checkCaptureInstances reads the columns of every CDC table and its
// capture instance again, and warns once about each new difference: a
// capture instance is fixed when created, so a column added to the table
// later is not captured until a new instance replaces it.
func (s *streamer) checkCaptureInstances(ctx context.Context) error {
	s.lastCheck = time.Now()
	for i, t := range s.tables {
		fresh, err := describeTable(ctx, s.db, s.cfg, t.name)
		if err != nil {
			return err
		}
		s.tables[i] = fresh
		s.warnMismatch(fresh)
	}
	return nil
}

// nextWait is the wait before the next poll, after a wait of last and a
// poll that emitted n records.
func nextWait(cfg Config, last time.Duration, n int, snapshotting bool) time.Duration {
	switch {
	case snapshotting:
		return 0 // the next page is there to read
	case n > 0:
		return cfg.PollInterval
	}
	return min(max(2*last, cfg.PollInterval), cfg.MaxPollInterval)
}

// warnMismatch warns when t's capture instance differs from its columns
// in a way it has not warned about yet.
func (s *streamer) warnMismatch(t *table) {
	m := t.mismatch()
	if m != "" && m != s.warned[t.name] {
		s.logger.Warn("sqlserver: the capture instance no longer matches the table's columns; create a new capture instance (sys.sp_cdc_enable_table with a new @capture_instance) and name it under capture_instances",
			"table", t.name, "capture_instance", t.instance, "difference", m)
	}
	s.warned[t.name] = m
}

// run polls until ctx is done or a poll fails, waiting PollInterval
// after a poll that found changes and doubling the wait, up to
// MaxPollInterval, after each that found none. With streaming false it
// returns nil as soon as no table is being read whole.
func (s *streamer) run(ctx context.Context, streaming bool) error {
	wait := s.cfg.PollInterval
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		if !streaming && !s.snapshotting() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		n, err := s.pollOnce(ctx, streaming)
		if err != nil {
			return err
		}
		wait = nextWait(s.cfg, wait, n, s.snapshotting())
		timer.Reset(wait)
	}
}
