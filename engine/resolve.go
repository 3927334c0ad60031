package engine

import (
	"context"
	"fmt"

	"github.com/dvsync/dvsync/change"
)

// Resolver is the hook through which bidirectional sync sees a pipeline's
// writes: it drops echoes of dvsync's own writes, makes writes
// conditional on the version last synced, decides conflicts and records
// what was synced. A nil Config.Resolver leaves the pipeline one-way.
//
// A worker calls the hook for the folded records of one batch (at most
// one record per destination key) from its own goroutine: the methods
// may be called concurrently for different batches, never for two batches
// holding the same key, and for each key in the order of its changes.
type Resolver interface {
	// Prepare is called before a batch is written. It sets verdicts[i] for
	// pairs[i]: Write (the default) to write *pairs[i].Out, which it may
	// rewrite (values, operation, Meta: a new map, never a write into
	// the old one), or Done to write nothing and count the record done,
	// as for an echo or a parked conflict. An error stops the pipeline.
	Prepare(ctx context.Context, m Mapper, pairs []Pair, verdicts []Verdict) error
	// Conflict is called for a record the sink refused with err, because
	// the destination row changed since the version the write expected.
	// It returns Write after rewriting *p.Out into a write of the decided
	// version (conditional on the version the sink found, so that it may
	// conflict again if the row keeps changing), or Done when nothing is
	// to be written. An error stops the pipeline.
	Conflict(ctx context.Context, m Mapper, p Pair, err *change.ConflictError) (Verdict, error)
	// Synced is called once the records *pairs[i].Out are durable, before
	// their source records count as done: a crash between the write and
	// Synced replays them. An error is retried like a failed write.
	Synced(ctx context.Context, pairs []Pair) error
}

// Pair is a record on its way to the sink, with the source record it was
// mapped from.
type Pair struct {
	// Source is the source record, or the changes of one key folded into
	// one record when several were. The Resolver must not modify it.
	Source *change.Record
	// Out is the mapped record to write.
	Out *change.Record
}

// Verdict is a Resolver's answer for one record.
type Verdict uint8

const (
	// Write writes the record (again).
	Write Verdict = iota
	// Done writes nothing: the record's source changes count as done.
	Done
)

// pairs returns the pairs of co.out[idx], reusing the worker's slice.
func (w *worker) pairs(idx []int) []Pair {
	w.pairBuf = w.pairBuf[:0]
	for _, i := range idx {
		w.pairBuf = append(w.pairBuf, Pair{Source: w.sourceOf(i), Out: &w.co.out[i]})
	}
	return w.pairBuf
}

// sourceOf returns the source record of co.out[i]: the one source record,
// or the fold of all of them.
func (w *worker) sourceOf(i int) *change.Record {
	if len(w.co.owners[i].more) == 0 {
		return w.items[w.co.owners[i].item].src
	}
	srcs := w.sourcesOf(i)
	rec := srcs[0]
	for j := 1; j < len(srcs); j++ {
		rec = fold(&rec, &srcs[j])
	}
	return &rec
}

// prepare hands co.out[idx] to the resolver and returns the indexes to
// write. Records it answers Done for are counted done.
func (w *worker) prepare(ctx context.Context, idx []int) ([]int, error) {
	r := w.p.cfg.Resolver
	pairs := w.pairs(idx)
	verdicts := make([]Verdict, len(pairs))
	if err := r.Prepare(ctx, w.p.mapper.Load().m, pairs, verdicts); err != nil {
		if ctx.Err() != nil {
			return nil, errAbandoned
		}
		return nil, fmt.Errorf("engine: conflict resolver: %w", err)
	}
	keep := idx[:0:0]
	var done []int
	for k, i := range idx {
		if verdicts[k] == Done {
			done = append(done, i)
		} else {
			keep = append(keep, i)
		}
	}
	w.settled(done)
	return keep, nil
}

// settled counts co.out[idx] done without a write.
func (w *worker) settled(idx []int) {
	if len(idx) == 0 {
		return
	}
	w.seqs = w.seqs[:0]
	for _, i := range idx {
		w.seqs = w.co.owners[i].appendTo(w.seqs)
	}
	w.p.tracker.done(w.seqs...)
	w.p.nSettled.Add(uint64(len(idx)))
}

// resolveConflicts asks the resolver about co.out[idx], refused with the
// matching conflict errors, and writes again those it rewrote.
func (w *worker) resolveConflicts(ctx context.Context, idx []int, errs []*change.ConflictError) error {
	if len(idx) == 0 {
		return nil
	}
	r := w.p.cfg.Resolver
	m := w.p.mapper.Load().m
	var again, done []int
	for k, i := range idx {
		v, err := r.Conflict(ctx, m, Pair{Source: w.sourceOf(i), Out: &w.co.out[i]}, errs[k])
		if err != nil {
			if ctx.Err() != nil {
				return errAbandoned
			}
			return fmt.Errorf("engine: conflict resolver: %w", err)
		}
		if v == Done {
			done = append(done, i)
		} else {
			again = append(again, i)
		}
	}
	w.settled(done)
	if len(again) == 0 {
		return nil
	}
	return w.write(ctx, again)
}

// synced tells the resolver that co.out[idx] are durable, retrying a
// failure like a write.
func (w *worker) synced(ctx context.Context, idx []int) error {
	r := w.p.cfg.Resolver
	if r == nil || len(idx) == 0 {
		return nil
	}
	p := w.p
	for attempt := 1; ; attempt++ {
		err := r.Synced(ctx, w.pairs(idx))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errAbandoned
		}
		if change.IsPermanent(err) || (p.cfg.MaxRetries > 0 && attempt > p.cfg.MaxRetries) {
			return fmt.Errorf("engine: record sync state of %d record(s): %w", len(idx), err)
		}
		wait := p.retryDelay(err, attempt)
		p.log.Warn("recording sync state failed; retrying", "records", len(idx), "attempt", attempt, "wait", wait, "err", err)
		if sleep(ctx, wait) != nil {
			return errAbandoned
		}
	}
}
