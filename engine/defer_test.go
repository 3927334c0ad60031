package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// child is an insert into table "t" of row id whose lookup column "parent"
// refers to row parent of table "p".
func child(id, parent int64, cols ...change.Column) change.Record {
	return row(change.OpInsert, id, append([]change.Column{col("parent", change.Int(parent))}, cols...)...)
}

// referential makes s behave like Dataverse with lookups: a record whose
// "parent" column names a row of table "p" that is neither written nor
// earlier in the same batch is deferred, and an update of a row that is
// not there is a test failure (the engine wrote a key's changes out of
// order). deferred, if set, is called with each deferred record's id.
func referential(t *testing.T, s *memSink, deferred func(id int64)) func(context.Context, []change.Record) error {
	return func(_ context.Context, batch []change.Record) error {
		failed := map[int]error{}
		inBatch := map[string]bool{}
		for i := range batch {
			r := &batch[i]
			if pv, ok := r.After.Get("parent"); ok && !pv.IsNull() {
				pid := pv.Int()
				if !s.has("p", pid) && !inBatch[fmt.Sprintf("p/id=%d", pid)] {
					failed[i] = change.Deferred(fmt.Errorf("parent p/id=%d not found", pid))
					if deferred != nil {
						deferred(r.Key[0].Value.Int())
					}
					continue
				}
			}
			if r.Op == change.OpUpdate && !s.hasKey(rowKey(r)) && !inBatch[rowKey(r)] {
				t.Errorf("update of %s written before its insert", rowKey(r))
			}
			inBatch[rowKey(r)] = true
		}
		if len(failed) > 0 {
			return &change.BatchError{Failed: failed}
		}
		return nil
	}
}

func (s *memSink) hasKey(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rows[key]
	return ok
}

// workerIDs returns two ids of table t, and an id of table p, such that
// the parent's worker is (same) or is not (!same) the children's.
func workerIDs(t *testing.T, p *Pipeline, same bool) (childID, parentID int64) {
	t.Helper()
	of := func(r change.Record) int { return p.workerOf(appendRouteKey(nil, &r)) }
	c := row(change.OpInsert, 1)
	for id := int64(1); id < 1000; id++ {
		if (of(inTable("p", change.OpInsert, id)) == of(c)) == same {
			return 1, id
		}
	}
	t.Fatal("no parent id routes as wanted")
	return 0, 0
}

func deferConfig() Config {
	cfg := testConfig()
	cfg.MaxDeferrals = 100_000 // the tests decide when the parent comes
	return cfg
}

func TestDeferredChildIsWrittenAfterItsParentOnAnotherWorker(t *testing.T) {
	e := newEnv(t)
	p := e.start(deferConfig())
	cid, pid := workerIDs(t, p, false)
	deferredOnce := make(chan struct{})
	var once sync.Once
	ref := referential(t, e.dst, func(int64) { once.Do(func() { close(deferredOnce) }) })
	e.dst.hook = func(ctx context.Context, batch []change.Record) error {
		for i := range batch {
			if batch[i].Table == "p" {
				// Hold the parent back until the child was deferred, so
				// the child is certainly written first.
				select {
				case <-deferredOnce:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		return ref(ctx, batch)
	}
	e.src.add(child(cid, pid), inTable("p", change.OpInsert, pid))
	eventually(t, "both records acked", func() bool { return e.src.lastAck() == 2 })
	if !e.dst.has("t", cid) || !e.dst.has("p", pid) {
		t.Fatal("child or parent missing")
	}
	st := p.Stats()
	if st.Deferred == 0 || st.Parked != 0 || st.DeadLettered != 0 {
		t.Errorf("Stats: deferred %d, parked %d, dead-lettered %d; want >0, 0, 0", st.Deferred, st.Parked, st.DeadLettered)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestDeferredChildIsWrittenAfterItsParentOnTheSameWorker(t *testing.T) {
	e := newEnv(t)
	p := e.start(deferConfig())
	cid, pid := workerIDs(t, p, true)
	e.dst.hook = referential(t, e.dst, nil)
	// Child first: in one batch or two, the child's write comes first and
	// finds no parent.
	e.src.add(child(cid, pid), inTable("p", change.OpInsert, pid), inTable("u", change.OpInsert, 9))
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 3 })
	if !e.dst.has("t", cid) || !e.dst.has("p", pid) {
		t.Fatal("child or parent missing")
	}
	if st := p.Stats(); st.Deferred == 0 || st.Parked != 0 {
		t.Errorf("Stats: deferred %d, parked %d; want >0, 0", st.Deferred, st.Parked)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestChangesToAParkedKeyWaitBehindIt(t *testing.T) {
	e := newEnv(t)
	p := e.start(deferConfig())
	e.dst.hook = referential(t, e.dst, nil)
	e.src.add(child(1, 7))
	eventually(t, "child deferred", func() bool { return p.Stats().Deferred > 0 })
	// Later changes to the parked key join it; other keys flow on.
	e.src.add(row(change.OpUpdate, 1, col("name", change.Text("a"))), row(change.OpInsert, 2),
		row(change.OpUpdate, 1, col("name", change.Text("b"))))
	eventually(t, "other key written", func() bool { return e.dst.has("t", 2) })
	eventually(t, "updates parked", func() bool { return p.Stats().Parked == 3 })
	if e.dst.has("t", 1) {
		t.Fatal("parked key written before its parent exists")
	}
	if n := e.src.lastAck(); n != 0 {
		t.Errorf("acked up to %d past a parked record", n)
	}

	e.src.add(inTable("p", change.OpInsert, 7))
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 5 })
	r, _ := e.dst.row(1)
	if got := rowText(r); got != "id=1,parent=7,name=b" {
		t.Errorf("row 1 = %s, want the insert then both updates in order", got)
	}
	if w := e.dst.writesOf(1); len(w) != 1 || w[0].Op != change.OpInsert {
		t.Errorf("row 1 written %d times (first %v), want once, as one folded insert", len(w), w)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestRecordDeferredTooOftenIsDeadLettered(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig()
	cfg.MaxDeferrals = 2
	p := e.start(cfg)
	var mu sync.Mutex
	tries := 0
	e.dst.hook = referential(t, e.dst, func(int64) { mu.Lock(); tries++; mu.Unlock() })
	e.src.add(child(1, 7), row(change.OpUpdate, 1, col("name", change.Text("a"))), row(change.OpInsert, 2))
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 3 })
	letters := e.st.deadLetters()
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(letters))
	}
	dl := letters[0]
	if !strings.Contains(dl.Reason, "still deferred after 3 tries") || !strings.Contains(dl.Reason, "parent p/id=7 not found") {
		t.Errorf("reason %q", dl.Reason)
	}
	if dl.Stage != stageWrite || len(dl.Sources) == 0 || dl.Sources[0].Op != change.OpInsert {
		t.Errorf("letter stage %q with %d sources, want write and the child's insert first", dl.Stage, len(dl.Sources))
	}
	mu.Lock()
	if tries != 3 {
		t.Errorf("child tried %d times, want 3 (MaxDeferrals 2 retries)", tries)
	}
	mu.Unlock()
	if st := p.Stats(); st.Deferred != 2 || st.Parked != 0 || st.DeadLettered != 1 {
		t.Errorf("Stats: deferred %d, parked %d, dead-lettered %d; want 2, 0, 1", st.Deferred, st.Parked, st.DeadLettered)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestParkedRecordsAreReplayedAfterAStop(t *testing.T) {
	e := newEnv(t)
	p := e.start(deferConfig())
	e.dst.hook = referential(t, e.dst, nil)
	e.src.add(child(1, 7), row(change.OpInsert, 2))
	eventually(t, "child parked, other row written", func() bool {
		return p.Stats().Parked == 1 && e.dst.has("t", 2)
	})
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if got := e.st.saved(); got != 0 {
		t.Errorf("saved position %d past the parked record", got)
	}
	if n := len(e.st.deadLetters()); n != 0 {
		t.Errorf("%d dead letters; a parked record is neither done nor dead", n)
	}

	// A restart reads the parked record again; this time its parent comes.
	again := &env{t: t, src: newFakeSource(t, e.st), dst: newMemSink(t), st: e.st, mapFn: passThrough}
	again.dst.hook = referential(t, again.dst, nil)
	again.start(deferConfig())
	again.src.add(child(1, 7), row(change.OpInsert, 2), inTable("p", change.OpInsert, 7))
	eventually(t, "replayed records acked", func() bool { return again.src.lastAck() == 3 })
	if !again.dst.has("t", 1) {
		t.Error("parked record not written after the restart")
	}
	if err := again.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestWholeBatchDeferralIsSplitUntilTheDeferredStandAlone(t *testing.T) {
	e := newEnv(t)
	cfg := deferConfig()
	cfg.Workers = 1
	cfg.BatchWait = time.Hour // write only full batches, or at shutdown
	cfg.BatchSize = 4
	p := e.start(cfg)
	ref := referential(t, e.dst, nil)
	e.dst.hook = func(ctx context.Context, batch []change.Record) error {
		var be *change.BatchError
		if err := ref(ctx, batch); errors.As(err, &be) {
			// Like a sink that cannot tell which record failed.
			for _, ferr := range be.Failed {
				return ferr
			}
		}
		return nil
	}
	e.src.add(row(change.OpInsert, 1), child(2, 7), row(change.OpInsert, 3), row(change.OpInsert, 4))
	eventually(t, "child parked, the others written", func() bool {
		return p.Stats().Parked == 1 && e.dst.has("t", 1) && e.dst.has("t", 3) && e.dst.has("t", 4)
	})
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if got := e.st.saved(); got != 1 {
		t.Errorf("saved position %d, want 1 (before the parked child)", got)
	}
}

func TestFatalWriteErrorStopsThePipelineAtOnce(t *testing.T) {
	e := newEnv(t)
	p := e.start(testConfig())
	e.dst.hook = func(context.Context, []change.Record) error {
		return change.Fatal(errors.New("token refused"))
	}
	e.src.add(row(change.OpInsert, 1))
	err := e.wait()
	if !change.IsFatal(err) || !strings.Contains(err.Error(), "token refused") {
		t.Fatalf("Run = %v, want the fatal write error", err)
	}
	if st := p.Stats(); st.Retries != 0 || st.DeadLettered != 0 || e.src.lastAck() != 0 {
		t.Errorf("retries %d, dead letters %d, acked %d; want none", st.Retries, st.DeadLettered, e.src.lastAck())
	}
}
