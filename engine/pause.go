package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/dvsync/dvsync/change"
)

// pauser holds the records of paused tables. Its mutex is held by the
// reader for the whole of each route and by Resume, so that a resumed
// table's held records are routed before any record read after them.
type pauser struct {
	mu sync.Mutex
	// tables holds, by paused source table, the records held since it
	// was paused, in emission order; a paused table with none held has
	// an empty entry.
	tables map[string][]heldRecord
	// reasons gives, by table, why the pipeline paused a table on its
	// own after a schema change; a table paused by Pause has none.
	reasons map[string]string
	// reader is the read loop's state while it runs, nil otherwise, and
	// readCtx the read loop's context.
	reader  *reader
	readCtx context.Context
	// held counts held records, for the metrics.
	held atomic.Int64
}

// heldRecord is a source record of a paused table and its sequence number.
type heldRecord struct {
	seq uint64
	rec change.Record
}

// Pause holds back the changes of one source table from now on: they are
// read and kept, unmapped, in memory while the pipeline's other tables
// flow on. Nothing is acked past the first held change, so a restart
// while paused (the pause is not remembered) reads them again.
//
// Held changes count toward MaxInFlight: when it is reached, reading
// stops for every table until Resume, and the source keeps the changes
// (for PostgreSQL, in the slot's WAL). Pausing a paused table does
// nothing. Pause is safe for concurrent use; it waits for the record
// batch being routed, if any.
func (p *Pipeline) Pause(table string) error {
	if table == "" {
		return errors.New("engine: Pause: empty table name")
	}
	p.pause.mu.Lock()
	defer p.pause.mu.Unlock()
	if _, ok := p.pause.tables[table]; !ok {
		p.pause.tables[table] = nil
		p.log.Info("table paused", "table", table)
	}
	return nil
}

// Resume lets a paused table's changes flow again: the held ones are
// mapped (by the mapper current now) and handed to the workers, in order,
// before any change read after them. It returns how many were held.
// Resuming a table that is not paused does nothing and returns 0.
//
// Held changes that fail to map are dead-lettered, as while reading. If
// that fails (the state store fails, or the pipeline is stopping), the
// pipeline stops, as it would while reading, and Resume returns the error.
func (p *Pipeline) Resume(table string) (int, error) {
	p.pause.mu.Lock()
	defer p.pause.mu.Unlock()
	held, ok := p.pause.tables[table]
	if !ok {
		return 0, nil
	}
	delete(p.pause.tables, table)
	delete(p.pause.reasons, table)
	p.pause.held.Add(-int64(len(held)))
	p.log.Info("table resumed", "table", table, "held", len(held))
	r := p.pause.reader
	if r == nil || len(held) == 0 {
		// Not running: nothing was acked past the held records, which a
		// restart reads again.
		return len(held), nil
	}
	mapper := p.mapper.Load().m
	at := p.now()
	for i := range held {
		r.mapOne(mapper, held[i].seq, at, &held[i].rec)
	}
	if err := r.dispatch(p.pause.readCtx); err != nil {
		if p.pause.readCtx.Err() == nil {
			p.fail(err)
		}
		return len(held), err
	}
	return len(held), nil
}

// Paused returns the paused tables with how many changes each holds. The
// map is the caller's.
func (p *Pipeline) Paused() map[string]int {
	p.pause.mu.Lock()
	defer p.pause.mu.Unlock()
	out := make(map[string]int, len(p.pause.tables))
	for t, held := range p.pause.tables {
		out[t] = len(held)
	}
	return out
}
