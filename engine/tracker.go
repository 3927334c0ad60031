package engine

import (
	"context"
	"math/bits"
	"sync"

	"github.com/dvsync/dvsync/change"
)

// tracker numbers records in emission order and keeps the contiguous
// watermark: the highest sequence number below which every record is done.
//
// It is a ring buffer of at most limit slots, one per record read and not
// yet passed by the watermark. Registering and marking done are O(1) per
// record and the watermark advances over each slot once, so the cost does
// not grow with the number of records in flight. The reader registers;
// workers mark done; the acker reads the watermark. All methods are safe
// for concurrent use.
type tracker struct {
	mu    sync.Mutex
	ring  []slot
	mask  uint64
	limit uint64
	head  uint64          // lowest sequence number not yet done-and-passed
	next  uint64          // sequence number the next registered record gets
	pos   change.Position // position of record head-1: the watermark
	// space wakes a reader blocked in add when the watermark moves; it
	// holds at most one token.
	space   chan struct{}
	waiting bool
	// idle receives a token, at most one waiting, when the watermark
	// catches up with every record registered: nothing is in flight.
	idle chan struct{}
}

type slot struct {
	pos  change.Position
	done bool
}

func newTracker(limit int) *tracker {
	n := uint64(1) << bits.Len64(uint64(limit-1))
	return &tracker{
		ring:  make([]slot, n),
		mask:  n - 1,
		limit: uint64(limit),
		space: make(chan struct{}, 1),
		idle:  make(chan struct{}, 1),
	}
}

// add registers records from the front of recs, blocking while the ring
// is full, and returns the sequence number of the first one and how many
// were registered (at least one when err is nil). It returns ctx's error
// if ctx ends while it waits. Only one goroutine may call add.
func (t *tracker) add(ctx context.Context, recs []change.Record) (first uint64, n int, err error) {
	for {
		t.mu.Lock()
		free := t.limit - (t.next - t.head)
		if free > 0 {
			first = t.next
			n = int(min(free, uint64(len(recs))))
			for i := range n {
				t.ring[(first+uint64(i))&t.mask] = slot{pos: recs[i].Position}
			}
			t.next += uint64(n)
			t.mu.Unlock()
			return first, n, nil
		}
		t.waiting = true
		t.mu.Unlock()
		select {
		case <-t.space:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
}

// done marks the given registered records done and moves the watermark
// over every done record at its head.
func (t *tracker) done(seqs ...uint64) {
	if len(seqs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range seqs {
		if s >= t.head && s < t.next {
			t.ring[s&t.mask].done = true
		}
	}
	moved := false
	// The watermark passes a record only when it and every record emitted
	// before it are done: stopping at the first record not done is what
	// keeps a later position from being acked before an earlier record is
	// durable.
	for t.head < t.next {
		s := &t.ring[t.head&t.mask]
		if !s.done {
			break
		}
		t.pos = s.pos
		*s = slot{} // drop the position so the ring holds no garbage
		t.head++
		moved = true
	}
	if moved && t.waiting {
		t.waiting = false
		select {
		case t.space <- struct{}{}:
		default:
		}
	}
	if moved && t.head == t.next {
		select {
		case t.idle <- struct{}{}:
		default:
		}
	}
}

// watermark returns the number of records passed so far and the position
// of the last of them (nil when none).
func (t *tracker) watermark() (passed uint64, pos change.Position) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.head, t.pos
}

// inFlight returns how many records are registered and not yet passed by
// the watermark.
func (t *tracker) inFlight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(t.next - t.head)
}
