package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/state"
)

// write writes the folded records co.out[idx] until each one is durable or
// dead-lettered, acting on the sink's error as it was classified:
//
//   - nil: all are durable;
//   - a *change.BatchError: those not named are durable, permanent
//     failures are dead-lettered, deferred ones are parked (see park), and
//     retryable ones are retried alone;
//   - a permanent or deferred error for the whole batch: a single record
//     is dead-lettered or parked; a larger batch is split in halves, each
//     written on its own, until the failing records stand alone;
//   - a fatal error (change.FatalError): the pipeline stops at once;
//   - anything else: the whole set is retried after a wait, up to
//     MaxRetries times, after which the error stops the pipeline.
//
// It returns errAbandoned when shutdown cancels ctx, leaving the records
// that are not done to be replayed.
func (w *worker) write(ctx context.Context, idx []int) error {
	p := w.p
	for attempt := 1; ; attempt++ {
		batch := w.gather(idx)
		began := time.Now()
		err := p.dst.Write(ctx, batch)
		p.metrics.writeSeconds.Observe(time.Since(began).Seconds())
		p.metrics.batchSize.Observe(float64(len(batch)))
		if err == nil {
			if err := w.synced(ctx, idx); err != nil {
				return err
			}
			w.durable(idx)
			return nil
		}
		if ctx.Err() != nil {
			return errAbandoned
		}
		w.countFailed(idx, err)
		if change.IsFatal(err) {
			return fmt.Errorf("engine: write of %d record(s) failed: %w", len(idx), err)
		}

		retry := idx
		var be *change.BatchError
		switch {
		case errors.As(err, &be):
			var durable, dead, deferred, conflicted []int
			var reasons, deferReasons []error
			var conflicts []*change.ConflictError
			retry, err = nil, nil
			for k, i := range idx {
				ferr, failed := be.Failed[k]
				switch {
				case !failed:
					durable = append(durable, i)
				case p.cfg.Resolver != nil && change.AsConflict(ferr) != nil:
					conflicted = append(conflicted, i)
					conflicts = append(conflicts, change.AsConflict(ferr))
				case change.IsPermanent(ferr) || change.AsConflict(ferr) != nil:
					dead = append(dead, i)
					reasons = append(reasons, ferr)
				case change.IsDeferred(ferr):
					deferred = append(deferred, i)
					deferReasons = append(deferReasons, ferr)
				default:
					retry = append(retry, i)
					err = longerWait(err, ferr)
				}
			}
			if err == nil {
				err = be
			}
			if err := w.synced(ctx, durable); err != nil {
				return err
			}
			w.durable(durable)
			if err := w.resolveConflicts(ctx, conflicted, conflicts); err != nil {
				return err
			}
			if err := w.deadLetter(ctx, dead, reasons); err != nil {
				return err
			}
			if err := w.park(ctx, deferred, deferReasons); err != nil {
				return err
			}
			if len(retry) == 0 {
				return nil
			}
		case len(idx) == 1 && p.cfg.Resolver != nil && change.AsConflict(err) != nil:
			return w.resolveConflicts(ctx, idx, []*change.ConflictError{change.AsConflict(err)})
		case change.IsPermanent(err) || change.IsDeferred(err) || change.AsConflict(err) != nil:
			if len(idx) == 1 && change.IsDeferred(err) {
				return w.park(ctx, idx, []error{err})
			}
			if len(idx) == 1 {
				return w.deadLetter(ctx, idx, []error{err})
			}
			// The sink could not tell which record failed: write each half
			// on its own until the bad ones stand alone. Records of one
			// batch have distinct keys, so their order does not matter.
			half := len(idx) / 2
			if err := w.write(ctx, idx[:half]); err != nil {
				return err
			}
			return w.write(ctx, idx[half:])
		}

		if limit := p.cfg.MaxRetries; limit > 0 && attempt > limit {
			return fmt.Errorf("engine: write of %d record(s) failed %d times: %w", len(retry), attempt, err)
		}
		p.nRetries.Add(1)
		p.metrics.retries.Inc()
		wait := p.retryDelay(err, attempt)
		p.log.Warn("write failed; retrying", "records", len(retry), "attempt", attempt, "wait", wait, "err", err)
		if sleep(ctx, wait) != nil {
			return errAbandoned
		}
		idx = retry
	}
}

// gather returns the records co.out[idx], without copying when idx is the
// whole batch (idx is always in increasing order, so equal length means
// equal).
func (w *worker) gather(idx []int) []change.Record {
	if len(idx) == len(w.co.out) {
		return w.co.out
	}
	clear(w.batch)
	w.batch = w.batch[:0]
	for _, i := range idx {
		w.batch = append(w.batch, w.co.out[i])
	}
	return w.batch
}

// durable marks the source records folded into co.out[idx] done.
func (w *worker) durable(idx []int) {
	if len(idx) == 0 {
		return
	}
	w.seqs = w.seqs[:0]
	for _, i := range idx {
		w.seqs = w.co.owners[i].appendTo(w.seqs)
	}
	w.p.tracker.done(w.seqs...)
	w.p.nWritten.Add(uint64(len(idx)))
	// Count runs of one table and operation at once: batches rarely mix.
	var newest time.Time
	var run tableOp
	n := 0
	for _, i := range idx {
		rec := &w.co.out[i]
		if k := (tableOp{w.items[w.co.owners[i].item].table, rec.Op}); k != run {
			if n > 0 {
				w.written.add(run.table, run.op, n)
			}
			run, n = k, 0
		}
		n++
		if rec.CommitTime.After(newest) {
			newest = rec.CommitTime
		}
	}
	w.written.add(run.table, run.op, n)
	w.p.metrics.observeLag(newest)
	w.p.consecutiveDead.Store(0)
}

// countFailed counts the records co.out[idx] of a write that failed with
// err: all of them, or those a *change.BatchError names.
func (w *worker) countFailed(idx []int, err error) {
	var be *change.BatchError
	isBatch := errors.As(err, &be)
	for k, i := range idx {
		if isBatch {
			if _, failed := be.Failed[k]; !failed {
				continue
			}
		}
		w.failed.add(w.items[w.co.owners[i].item].table, w.co.out[i].Op, 1)
	}
}

// sourcesOf returns copies of the source records folded into co.out[i],
// in emission order.
func (w *worker) sourcesOf(i int) []change.Record {
	o := &w.co.owners[i]
	out := []change.Record{*w.items[o.item].src}
	if len(o.more) == 0 {
		return out
	}
	// Folding is rare on this path; a scan of the batch finds the others.
	want := make(map[uint64]bool, len(o.more))
	for _, seq := range o.more {
		want[seq] = true
	}
	for j := o.item + 1; j < len(w.items); j++ {
		if want[w.items[j].seq] {
			out = append(out, *w.items[j].src)
		}
	}
	return out
}

// deadLetter stores co.out[idx] as dead letters with the matching reasons,
// and only then marks their source records done, so that a crash cannot
// lose them.
func (w *worker) deadLetter(ctx context.Context, idx []int, reasons []error) error {
	if len(idx) == 0 {
		return nil
	}
	if w.p.fatalErr() != nil {
		// The pipeline is stopping, perhaps because too many records
		// failed: leave these to be replayed rather than bury them.
		return errAbandoned
	}
	now := time.Now()
	letters := make([]state.DeadLetter, len(idx))
	for k, i := range idx {
		letters[k] = state.DeadLetter{
			Pipeline: w.p.cfg.Name, Stage: stageWrite, Reason: reasons[k].Error(), Time: now,
			Record: w.co.out[i], Sources: w.sourcesOf(i),
		}
	}
	if err := w.p.putDeadLetters(ctx, letters); err != nil {
		if ctx.Err() != nil {
			return errAbandoned
		}
		return err
	}
	w.seqs = w.seqs[:0]
	for _, i := range idx {
		w.seqs = w.co.owners[i].appendTo(w.seqs)
	}
	w.p.tracker.done(w.seqs...)
	w.p.deadLettered(stageWrite, letters)
	return nil
}

// longerWait returns whichever of two retryable errors asks for the longer
// wait; a nil a loses.
func longerWait(a, b error) error {
	if a == nil {
		return b
	}
	wa, _ := change.RetryWait(a)
	wb, _ := change.RetryWait(b)
	if wb > wa {
		return b
	}
	return a
}

// retryDelay is how long to wait before retry number attempt after err:
// what the other side asked for, or else the backoff.
func (p *Pipeline) retryDelay(err error, attempt int) time.Duration {
	if d, ok := change.RetryWait(err); ok && d > 0 {
		return d
	}
	return p.cfg.RetryBackoff.Wait(attempt)
}

// sleep waits for d, or returns ctx's error if ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
