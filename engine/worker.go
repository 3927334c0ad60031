package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/dvsync/dvsync/change"
)

// inbox is a worker's queue: the reader pushes, the worker takes what its
// next batch needs. It is unbounded by itself; the tracker's MaxInFlight
// bounds it, so that one slow worker never stalls the reader while the
// others have work to do.
type inbox struct {
	mu    sync.Mutex
	items []item // items[head:] are queued; those before head were taken
	head  int
	// closed says no more items will come.
	closed bool
	// want is how many queued items the worker waits for: 1 when it
	// waits for anything, more while a partial batch waits for its
	// timer, so that the pushes that do not fill the batch do not wake
	// it for nothing. The worker sets it in sleep.
	want int
	wake chan struct{} // holds at most one token
}

// push queues a copy of items and wakes the worker if they make the count
// it waits for. It returns items emptied, for the caller's next ones.
func (b *inbox) push(items []item) []item {
	b.mu.Lock()
	before := len(b.items) - b.head
	if len(b.items)+len(items) > cap(b.items) {
		// Double, where append would grow a long queue by a quarter at a
		// time, copying it each time, while a backlog builds up.
		b.items = slices.Grow(b.items, max(len(items), len(b.items)))
	}
	b.items = append(b.items, items...)
	wake := before < b.want && before+len(items) >= b.want
	b.mu.Unlock()
	if wake {
		b.signal()
	}
	clear(items)
	return items[:0]
}

// peek returns how many items are queued, the arrival time of the first
// of them (when there is one) and whether the inbox is closed.
func (b *inbox) peek() (n int, first int64, closed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.items) > b.head {
		first = b.items[b.head].at
	}
	return len(b.items) - b.head, first, b.closed
}

// sleep sets the count of queued items that wakes the worker, and
// reports whether the worker may wait: false if that many are queued
// already or the inbox is closed.
func (b *inbox) sleep(want int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.want = want
	return len(b.items)-b.head < want && !b.closed
}

// close tells the worker no more items will come.
func (b *inbox) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal()
}

func (b *inbox) signal() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// take appends up to limit of the queued items, the oldest first, to dst,
// and reports whether the inbox is closed. Taking only what a batch needs
// copies each item once, however long the queue grows while a write is
// under way, and keeps the worker's buffer the size of a batch.
func (b *inbox) take(dst []item, limit int) ([]item, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := min(max(limit, 0), len(b.items)-b.head)
	dst = append(dst, b.items[b.head:b.head+n]...)
	clear(b.items[b.head : b.head+n])
	b.head += n
	switch {
	case b.head == len(b.items):
		b.items, b.head = b.items[:0], 0
	case b.head >= len(b.items)/2:
		// Compact once half is taken, so copying stays O(1) per item.
		k := copy(b.items, b.items[b.head:])
		clear(b.items[k:])
		b.items, b.head = b.items[:k], 0
	}
	return dst, b.closed
}

// worker writes the records routed to it, one batch at a time, so that
// changes to one key are written in order and never by two writes at once.
type worker struct {
	p       *Pipeline
	inbox   inbox
	co      *coalescer
	idx     []int           // indexes into co.out of a whole batch, reused
	batch   []change.Record // records of a partial retry, reused
	seqs    []uint64        // sequence numbers to mark done, reused
	items   []item          // the batch being flushed, which co.owners index
	pairBuf []Pair          // the resolver's view of a batch, reused
	// written and failed count records by source table and operation.
	written, failed *counterCache
	// parked holds, by key, records whose writes were deferred, with the
	// later changes to their keys; retrying the deferral counts of the
	// keys being retried now. Only the worker's goroutine uses them.
	parked   map[string]*parkedKey
	retrying map[string]int
}

func newWorker(p *Pipeline) *worker {
	return &worker{
		p:        p,
		inbox:    inbox{want: 1, wake: make(chan struct{}, 1)},
		co:       newCoalescer(p.cfg.BatchSize),
		written:  newCounterCache(p.metrics.written),
		failed:   newCounterCache(p.metrics.failed),
		parked:   map[string]*parkedKey{},
		retrying: map[string]int{},
	}
}

// errAbandoned means a write was cancelled by shutdown: its records are
// not done and will be replayed, which is no failure of theirs.
var errAbandoned = errors.New("engine: write abandoned at shutdown")

// run gathers batches and writes them until the inbox is closed and
// empty, or ctx, which shutdown cancels when it stops waiting, ends. A
// batch is written when it holds BatchSize records, when its oldest record
// is BatchWait old, or at once when the inbox is closed. Parked keys are
// tried again as they fall due, after any batch that is ready, and not
// once the inbox is closed: at shutdown they are left to be replayed.
func (w *worker) run(ctx context.Context) {
	cfg := &w.p.cfg
	var pending []item // in emission order; pending[start:] is unwritten
	start := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if start > 0 && start >= len(pending)/2 {
			// Compact once half is written, so copying stays O(1) per record.
			n := copy(pending, pending[start:])
			clear(pending[n:])
			pending, start = pending[:n], 0
		}
		// Queued items stay in the inbox until a batch is due, so that
		// pushes meanwhile need not wake the worker.
		queued, first, closed := w.inbox.peek()
		held := len(pending) - start
		n := held + queued
		if n == 0 && closed {
			return
		}
		now := w.p.now()
		var wait time.Duration = -1
		worked := false
		if n > 0 {
			oldest := first
			if held > 0 {
				oldest = pending[start].at
			}
			age := time.Duration(now - oldest)
			if n >= cfg.BatchSize || closed || age >= cfg.BatchWait {
				pending, _ = w.inbox.take(pending, cfg.BatchSize-held)
				n = len(pending) - start
				batch := pending[start : start+min(n, cfg.BatchSize)]
				if err := w.flushErr(w.flush(ctx, w.divert(batch))); err != nil {
					return
				}
				clear(batch)
				start += len(batch)
				worked = true
			} else {
				wait = cfg.BatchWait - age
			}
		}
		if due, ok := w.nextDue(); ok && !closed {
			if due <= now {
				if err := w.flushErr(w.retryParked(ctx)); err != nil {
					return
				}
				worked = true
			} else if d := time.Duration(due - now); wait < 0 || d < wait {
				wait = d
			}
		}
		if worked {
			continue
		}
		want := 1
		if n > 0 {
			want = cfg.BatchSize - held
		}
		if !w.inbox.sleep(want) {
			continue
		}
		var timeout <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			timeout = timer.C
		}
		select {
		case <-w.inbox.wake:
		case <-timeout:
		case <-ctx.Done():
			return
		}
	}
}

// flushErr stops the pipeline with err unless it is nil or the write was
// abandoned at shutdown, and returns err.
func (w *worker) flushErr(err error) error {
	if err != nil && !errors.Is(err, errAbandoned) {
		w.p.fail(err)
	}
	return err
}

// flush folds batch to one record per key and writes it until every
// record is durable or dead-lettered. It returns errAbandoned if shutdown
// cancelled it, or an error that stops the pipeline.
func (w *worker) flush(ctx context.Context, batch []item) error {
	if len(batch) == 0 {
		return nil
	}
	w.co.fold(batch)
	w.items = batch
	defer func() {
		w.co.reset()
		w.items = nil
	}()
	w.idx = w.idx[:0]
	for i := range w.co.out {
		w.idx = append(w.idx, i)
	}
	if w.p.cfg.Resolver != nil {
		idx, err := w.prepare(ctx, w.idx)
		if err != nil || len(idx) == 0 {
			return err
		}
		w.idx = idx
	}
	return w.write(ctx, w.idx)
}
