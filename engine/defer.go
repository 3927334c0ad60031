package engine

import (
	"context"
	"fmt"
)

// A write the sink classified as deferred (change.DeferredError) failed
// because of ordering, not because of the record: it refers to a row, such
// as a lookup's parent, that a later record will create. Its worker parks
// it, by key, and goes on with other records; later changes to a parked
// key join it, so that one key's changes are still written in order, and
// the whole set is tried again, folded, once a backoff has passed. A key
// deferred more than MaxDeferrals times is dead-lettered with the last
// reason. Parked records are not done, so the ack watermark stays behind
// them and a restart replays them.

// parkedKey holds the items of one parked destination key.
type parkedKey struct {
	// items are the deferred record's items and those of later changes to
	// its key, in emission order.
	items []item
	// deferrals counts the writes of this key deferred so far.
	deferrals int
	// due is when to try again, on the clock of Pipeline.now.
	due int64
}

// divert moves the items of batch whose key is parked behind that key, in
// order, and returns the others, compacted in place at the front of batch.
func (w *worker) divert(batch []item) []item {
	if len(w.parked) == 0 {
		return batch
	}
	kept := batch[:0]
	moved := 0
	for i := range batch {
		if pk, ok := w.parked[batch[i].key]; ok {
			pk.items = append(pk.items, batch[i])
			moved++
			continue
		}
		kept = append(kept, batch[i])
	}
	w.p.nParked.Add(int64(moved))
	return kept
}

// nextDue returns the earliest time a parked key is due, and false when
// none is parked.
func (w *worker) nextDue() (int64, bool) {
	var due int64
	found := false
	for _, pk := range w.parked {
		if !found || pk.due < due {
			due, found = pk.due, true
		}
	}
	return due, found
}

// retryParked writes the parked keys that are due, up to BatchSize items,
// as one batch. Those deferred again are parked again with a longer
// backoff. It returns what flush returns.
func (w *worker) retryParked(ctx context.Context) error {
	now := w.p.now()
	var batch []item
	for key, pk := range w.parked {
		if pk.due > now {
			continue
		}
		if len(batch) > 0 && len(batch)+len(pk.items) > w.p.cfg.BatchSize {
			break
		}
		batch = append(batch, pk.items...)
		w.retrying[key] = pk.deferrals
		delete(w.parked, key)
	}
	if len(batch) == 0 {
		return nil
	}
	w.p.nParked.Add(-int64(len(batch)))
	defer clear(w.retrying)
	return w.flush(ctx, batch)
}

// park parks the folded records co.out[idx], whose writes were deferred
// for the matching reasons, and dead-letters those deferred more than
// MaxDeferrals times.
func (w *worker) park(ctx context.Context, idx []int, reasons []error) error {
	if len(idx) == 0 {
		return nil
	}
	p := w.p
	now := p.now()
	var over []int
	var overReasons []error
	parked := 0
	for k, i := range idx {
		key := w.items[w.co.owners[i].item].key
		n := w.retrying[key] + 1
		if n > p.cfg.MaxDeferrals {
			over = append(over, i)
			overReasons = append(overReasons, fmt.Errorf("engine: write still deferred after %d tries: %w", n, reasons[k]))
			continue
		}
		its := w.itemsOf(i)
		w.parked[key] = &parkedKey{items: its, deferrals: n, due: now + int64(p.cfg.RetryBackoff.Wait(n))}
		parked += len(its)
	}
	if parked > 0 {
		p.nParked.Add(int64(parked))
		p.nDeferred.Add(uint64(len(idx) - len(over)))
		p.metrics.deferred.Add(float64(len(idx) - len(over)))
		p.log.Info("writes deferred until the rows they refer to exist; parked", "records", len(idx)-len(over))
	}
	return w.deadLetter(ctx, over, overReasons)
}

// itemsOf returns copies of the items folded into co.out[i], in emission
// order.
func (w *worker) itemsOf(i int) []item {
	o := &w.co.owners[i]
	out := make([]item, 0, o.count())
	out = append(out, w.items[o.item])
	if len(o.more) == 0 {
		return out
	}
	want := make(map[uint64]bool, len(o.more))
	for _, seq := range o.more {
		want[seq] = true
	}
	for j := o.item + 1; j < len(w.items); j++ {
		if want[w.items[j].seq] {
			out = append(out, w.items[j])
		}
	}
	return out
}
