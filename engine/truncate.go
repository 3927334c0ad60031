package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/state"
)

// A truncate that a mapping turns into a truncate of the destination table
// is a barrier across workers: every change read before it must be written
// before the table is emptied (or a row inserted before the TRUNCATE would
// survive it), and none read after it may be written until the table has
// been emptied (or a row inserted after it would be deleted). Truncates are
// rare, so the barrier is the simplest one: the reader stops, waits until
// the watermark has passed everything before the truncate, writes it
// alone, and goes on.

// firstTruncate returns the index of the first truncate in recs, or
// len(recs).
func firstTruncate(recs []change.Record) int {
	for i := range recs {
		if recs[i].Op == change.OpTruncate {
			return i
		}
	}
	return len(recs)
}

// truncate handles one truncate record read by the reader.
func (r *reader) truncate(ctx context.Context, rec []change.Record) error {
	p := r.p
	first, _, err := p.tracker.add(ctx, rec)
	if err != nil {
		return err
	}
	p.pause.mu.Lock()
	_, paused := p.pause.tables[rec[0].Table]
	mapper := p.mapper.Load().m
	p.pause.mu.Unlock()
	var out change.Record
	ok := false
	if !paused && schemaChange(mapper, &rec[0]) == "" {
		out, ok, err = mapper.Map(&rec[0])
	}
	if paused || err != nil || !ok || out.Op != change.OpTruncate {
		// Held, dropped, dead-lettered or mapped to something else: the
		// usual path does each of those.
		return r.route(ctx, first, rec)
	}
	if err := p.tracker.waitPassed(ctx, first); err != nil {
		return err
	}
	p.log.Warn("TRUNCATE: deleting every row of the destination table, as the mapping asks", "table", rec[0].Table, "destination", out.Table)
	err = p.writeAlone(ctx, out)
	var dead *deadTruncate
	switch {
	case errors.As(err, &dead):
		letter := state.DeadLetter{Pipeline: p.cfg.Name, Stage: stageWrite, Reason: dead.err.Error(), Time: time.Now(),
			Record: out, Sources: []change.Record{rec[0]}}
		if err := p.putDeadLetters(ctx, []state.DeadLetter{letter}); err != nil {
			return err
		}
		p.deadLettered(stageWrite, []state.DeadLetter{letter})
	case err != nil:
		return err
	}
	p.tracker.done(first)
	return nil
}

// deadTruncate is a truncate the sink refused for good.
type deadTruncate struct{ err error }

func (d *deadTruncate) Error() string { return d.err.Error() }

// writeAlone writes one record, retrying as a worker does; a permanent
// refusal is returned as *deadTruncate.
func (p *Pipeline) writeAlone(ctx context.Context, out change.Record) error {
	batch := []change.Record{out}
	for attempt := 1; ; attempt++ {
		err := p.dst.Write(ctx, batch)
		if err == nil {
			p.nWritten.Add(1)
			p.metrics.written.WithLabelValues(out.Table, opLabel(out.Op)).Inc()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var be *change.BatchError
		if errors.As(err, &be) {
			if ferr, ok := be.Failed[0]; ok {
				err = ferr
			}
		}
		switch {
		case change.IsFatal(err):
			return fmt.Errorf("engine: truncate of %s failed: %w", out.Table, err)
		case !isRetryable(err):
			return &deadTruncate{err}
		}
		if limit := p.cfg.MaxRetries; limit > 0 && attempt > limit {
			return fmt.Errorf("engine: truncate of %s failed %d times: %w", out.Table, attempt, err)
		}
		wait := p.retryDelay(err, attempt)
		p.log.Warn("truncate failed; retrying", "table", out.Table, "attempt", attempt, "wait", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// waitPassed blocks until the watermark has passed every record numbered
// below seq. Only the reader calls it, never while it is in add.
func (t *tracker) waitPassed(ctx context.Context, seq uint64) error {
	for {
		t.mu.Lock()
		if t.head >= seq {
			t.mu.Unlock()
			return nil
		}
		t.waiting = true
		t.mu.Unlock()
		select {
		case <-t.space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
