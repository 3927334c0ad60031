// Package sourcetest is the conformance suite every source.Source runs
// against a real upstream: changes arrive with the right operation and key
// in commit order, a restart from an acked position neither loses nor
// repeats anything, a restart without acks repeats, and Close leaves no
// goroutine behind.
//
// An adapter's test provides a Harness and calls Run:
//
//	func TestConformance(t *testing.T) { sourcetest.Run(t, &harness{...}) }
package sourcetest

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/source"
)

// Harness connects the suite to one upstream (a database, a topic) and the
// source under test.
//
// The suite calls its methods from the test goroutine only. Sources from
// NewSource share one upstream and its stored progress (a replication
// slot, a consumer group), so a second source resumes where the first one
// was acked; the suite closes each source before it opens the next.
// Records of other tables or topics may appear (leftovers of earlier
// cases); the suite ignores records whose key it did not create in the
// current case.
type Harness interface {
	// NewSource returns a new, unopened source over the upstream.
	NewSource(t *testing.T) source.Source
	// Insert commits n new rows upstream, in one transaction where the
	// upstream has transactions, and returns their keys in commit order.
	// Keys are never reused across calls.
	Insert(t *testing.T, n int) []change.Key
	// Update commits a change to the row with that key.
	Update(t *testing.T, key change.Key)
	// Delete commits the removal of the row with that key.
	Delete(t *testing.T, key change.Key)
}

// Timeout bounds each wait for records, generously: the suite runs on busy
// machines, and a correct source never comes close to it.
var Timeout = 60 * time.Second

// Run runs every case of the suite as a subtest of t.
func Run(t *testing.T, h Harness) {
	t.Run("ChangesArriveInCommitOrder", func(t *testing.T) { testChanges(t, h) })
	t.Run("AckThenResume", func(t *testing.T) { testAckThenResume(t, h) })
	t.Run("RestartWithoutAckRedelivers", func(t *testing.T) { testRedelivery(t, h) })
	t.Run("CloseReleasesEverything", func(t *testing.T) { testClose(t, h) })
}

// want is an expected change: an op on a key.
type want struct {
	op  change.Op
	key change.Key
}

func (w want) String() string { return fmt.Sprintf("%s %s", w.op, w.key) }

func testChanges(t *testing.T, h Harness) {
	src := open(t, h, nil)
	keys := h.Insert(t, 3)
	h.Update(t, keys[0])
	h.Delete(t, keys[1])
	h.Update(t, keys[2])
	h.Delete(t, keys[0])
	got := read(t, src, keys, 7)
	expect(t, got, []want{
		{change.OpInsert, keys[0]}, {change.OpInsert, keys[1]}, {change.OpInsert, keys[2]},
		{change.OpUpdate, keys[0]}, {change.OpDelete, keys[1]},
		{change.OpUpdate, keys[2]}, {change.OpDelete, keys[0]},
	})
	for _, r := range got {
		switch {
		case r.Table == "":
			t.Errorf("%s: empty Table", r.String())
		case r.Op == change.OpDelete && r.After != nil:
			t.Errorf("%s: a delete has an After row", r.String())
		case r.Op != change.OpDelete && r.After == nil:
			t.Errorf("%s: no After row", r.String())
		}
	}
	distinctPositions(t, got)
}

func testAckThenResume(t *testing.T, h Harness) {
	src := open(t, h, nil)
	keys := h.Insert(t, 5)
	got := read(t, src, keys, 5)
	expect(t, got, inserts(keys))
	acked := got[2].Position
	ack(t, src, acked)
	closeSource(t, src)

	// Restarting from the acked position continues right after it: the
	// first two unacked inserts, then what was committed meanwhile.
	more := h.Insert(t, 2)
	src = open(t, h, acked)
	all := append(append([]change.Key(nil), keys...), more...)
	got = read(t, src, all, 4)
	// Records already acked (keys[0:3]) would come first: had any been
	// delivered again, it would be among these four.
	expect(t, got, inserts(append(keys[3:5:5], more...)))
	// Acking the last record of a transaction and restarting from it
	// resumes with the next transaction.
	last := got[len(got)-1].Position
	ack(t, src, last)
	closeSource(t, src)
	next := h.Insert(t, 1)
	src = open(t, h, last)
	all = append(all, next...)
	expect(t, read(t, src, all, 1), inserts(next))
}

func testRedelivery(t *testing.T, h Harness) {
	src := open(t, h, nil)
	keys := h.Insert(t, 3)
	h.Update(t, keys[1])
	wants := append(inserts(keys), want{change.OpUpdate, keys[1]})
	expect(t, read(t, src, keys, 4), wants)
	closeSource(t, src)

	// Nothing was acked, so a new source delivers the same changes again.
	src = open(t, h, nil)
	again := read(t, src, keys, 4)
	expect(t, again, wants)
}

func testClose(t *testing.T, h Harness) {
	h.Insert(t, 1) // lets the harness set up whatever it keeps for itself
	before := runtime.NumGoroutine()
	src := open(t, h, nil)
	keys := h.Insert(t, 2)
	got := read(t, src, keys, 2)
	ack(t, src, got[1].Position)
	closeSource(t, src)
	// Goroutines end asynchronously (a connection's reader, a timer):
	// poll until the count is back where it was.
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > before {
		select {
		case <-deadline.C:
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines before Open, %d after Close:\n%s", before, runtime.NumGoroutine(), buf)
		case <-tick.C:
		}
	}
}

// opened is a source the suite has opened; it is closed at most once,
// explicitly or when the test ends.
type opened struct {
	source.Source
	once sync.Once
}

// open returns an opened source that is closed at the end of the test.
func open(t *testing.T, h Harness, from change.Position) *opened {
	t.Helper()
	src := &opened{Source: h.NewSource(t)}
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := src.Open(ctx, from); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeSource(t, src) })
	return src
}

func closeSource(t *testing.T, src *opened) {
	t.Helper()
	src.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		if err := src.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

func ack(t *testing.T, src source.Source, pos change.Position) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := src.Ack(ctx, pos); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

// read returns the next n records whose keys are among keys, ignoring
// others, and fails the test if they do not arrive within Timeout.
func read(t *testing.T, src source.Source, keys []change.Key, n int) []change.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var got []change.Record
	for len(got) < n {
		recs, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d of %d records: %v", len(got), n, err)
		}
		for _, r := range recs {
			if hasKey(keys, r.Key) {
				got = append(got, r)
			}
		}
	}
	if len(got) > n {
		t.Fatalf("wanted %d records, got %d: the extra one is %s", n, len(got), got[n].String())
	}
	return got
}

func hasKey(keys []change.Key, k change.Key) bool {
	for _, key := range keys {
		if key.Equal(k) {
			return true
		}
	}
	return false
}

func inserts(keys []change.Key) []want {
	w := make([]want, len(keys))
	for i, k := range keys {
		w[i] = want{change.OpInsert, k}
	}
	return w
}

// expect checks that got holds exactly the wanted changes, in the wanted
// order for each key. Changes to different keys may interleave
// differently: sources promise order per key only.
func expect(t *testing.T, got []change.Record, wants []want) {
	t.Helper()
	perKey := func(ws []want) map[string][]string {
		m := map[string][]string{}
		for _, w := range ws {
			m[w.key.String()] = append(m[w.key.String()], w.op.String())
		}
		return m
	}
	var gw []want
	for _, r := range got {
		gw = append(gw, want{r.Op, r.Key})
	}
	g, w := perKey(gw), perKey(wants)
	same := len(g) == len(w)
	for k := range w {
		same = same && strings.Join(g[k], ",") == strings.Join(w[k], ",")
	}
	if !same {
		t.Fatalf("got records\n  %s\nwant (in this order per key)\n  %s", join(gw), join(wants))
	}
}

func join(ws []want) string {
	s := make([]string, len(ws))
	for i, w := range ws {
		s[i] = w.String()
	}
	return strings.Join(s, "\n  ")
}

func distinctPositions(t *testing.T, recs []change.Record) {
	t.Helper()
	seen := map[string]string{}
	for _, r := range recs {
		if len(r.Position) == 0 {
			t.Errorf("%s: empty Position", r.String())
			continue
		}
		if other, dup := seen[string(r.Position)]; dup {
			t.Errorf("%s and %s share a Position", other, r.String())
		}
		seen[string(r.Position)] = r.String()
	}
}
