package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/dvsync/dvsync/change"
)

func records(from, n int) []change.Record {
	recs := make([]change.Record, n)
	for i := range recs {
		recs[i].Position = posOf(from + i)
	}
	return recs
}

func TestTrackerWatermarkIsContiguous(t *testing.T) {
	tr := newTracker(100)
	first, n, err := tr.add(context.Background(), records(1, 5))
	if err != nil || first != 0 || n != 5 {
		t.Fatalf("add = %d, %d, %v; want 0, 5, nil", first, n, err)
	}
	check := func(wantPassed int) {
		t.Helper()
		passed, pos := tr.watermark()
		if int(passed) != wantPassed || indexOf(pos) != wantPassed {
			t.Fatalf("watermark = %d at position %d, want %d", passed, indexOf(pos), wantPassed)
		}
	}
	tr.done(1, 2, 4) // the first record is slow
	check(0)
	if got := tr.inFlight(); got != 5 {
		t.Errorf("inFlight = %d, want 5", got)
	}
	tr.done(0)
	check(3)
	tr.done(3)
	check(5)
	tr.done(3, 99) // repeated and unknown sequence numbers are ignored
	check(5)
	if got := tr.inFlight(); got != 0 {
		t.Errorf("inFlight = %d, want 0", got)
	}
}

func TestTrackerWrapsAndBlocksWhenFull(t *testing.T) {
	const limit, total = 5, 1000
	tr := newTracker(limit)
	ctx := context.Background()
	var pending []uint64
	next := 1
	for next <= total {
		first, n, err := tr.add(ctx, records(next, total-next+1))
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 || tr.inFlight() > limit {
			t.Fatalf("add registered %d with %d in flight (limit %d)", n, tr.inFlight(), limit)
		}
		for i := range n {
			pending = append(pending, first+uint64(i))
		}
		next += n
		// Finish a random one, in no particular order; the ring is full
		// until the head is done.
		k := rand.IntN(len(pending))
		tr.done(pending[k])
		pending = append(pending[:k], pending[k+1:]...)
		if tr.inFlight() == limit {
			tr.done(pending...)
			pending = pending[:0]
		}
	}
	tr.done(pending...)
	passed, pos := tr.watermark()
	if passed != total || indexOf(pos) != total {
		t.Fatalf("watermark = %d at %d, want %d", passed, indexOf(pos), total)
	}
}

func TestTrackerAddWaitsForSpace(t *testing.T) {
	tr := newTracker(2)
	ctx := context.Background()
	if _, n, _ := tr.add(ctx, records(1, 3)); n != 2 {
		t.Fatalf("registered %d, want 2", n)
	}
	got := make(chan int)
	go func() {
		_, n, err := tr.add(ctx, records(3, 1))
		if err != nil {
			n = -1
		}
		got <- n
	}()
	eventually(t, "add to wait for space", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.waiting
	})
	tr.done(1) // not the head: no space yet
	select {
	case n := <-got:
		t.Fatalf("add returned %d while the ring was full", n)
	default:
	}
	tr.done(0)
	if n := <-got; n != 1 {
		t.Fatalf("add after space = %d, want 1", n)
	}

	if _, n, _ := tr.add(ctx, records(4, 1)); n != 1 || tr.inFlight() != 2 {
		t.Fatalf("registered %d, in flight %d; want 1 and 2", n, tr.inFlight())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := tr.add(cctx, records(5, 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("add on a full ring with a cancelled context = %v", err)
	}
}
