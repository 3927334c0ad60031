package engine

import "testing"

// take hands out the queued items oldest first, no more than asked for,
// however pushes and takes interleave.
func TestInboxTakesInOrderUpToTheLimit(t *testing.T) {
	b := &inbox{want: 1, wake: make(chan struct{}, 1)}
	var buf []item
	next, want := uint64(0), uint64(0)
	pushN := func(n int) {
		for range n {
			buf = append(buf, item{seq: next})
			next++
		}
		buf = b.push(buf)
		if len(buf) != 0 {
			t.Fatalf("push returned %d items, want none", len(buf))
		}
	}
	takeN := func(limit int) {
		t.Helper()
		queued, _, _ := b.peek()
		got, _ := b.take(nil, limit)
		if wantN := min(limit, queued); len(got) != wantN {
			t.Fatalf("took %d items of %d queued with limit %d, want %d", len(got), queued, limit, wantN)
		}
		for _, it := range got {
			if it.seq != want {
				t.Fatalf("took item %d, want %d", it.seq, want)
			}
			want++
		}
	}
	pushN(10)
	takeN(3)
	pushN(5)
	takeN(4) // compacts: more than half of the queue is taken
	takeN(100)
	takeN(1)
	pushN(7)
	takeN(0)
	takeN(7)
	if n, _, _ := b.peek(); n != 0 || want != next {
		t.Fatalf("%d items left, took %d of %d", n, want, next)
	}
}
