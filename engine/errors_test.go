package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func TestRetryAfterIsHonoured(t *testing.T) {
	e := newEnv(t)
	var fails atomic.Int64
	e.dst.hook = func(context.Context, []change.Record) error {
		if fails.Add(1) <= 3 {
			return change.Retryable(errors.New("throttled"), time.Millisecond)
		}
		return nil
	}
	e.src.add(row(change.OpInsert, 1))
	cfg := testConfig()
	// Were Retry-After ignored, the backoff would wait an hour and the
	// test would time out.
	cfg.RetryBackoff = Backoff{Min: time.Hour, Max: time.Hour}
	cfg.MaxRetries = 5
	e.start(cfg)

	eventually(t, "the record acked", func() bool { return e.src.lastAck() == 1 })
	if st := e.p.Stats(); st.Retries != 3 || st.Written != 1 {
		t.Errorf("Retries, Written = %d, %d; want 3, 1", st.Retries, st.Written)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestUnclassifiedErrorsAreRetriedWithBackoff(t *testing.T) {
	e := newEnv(t)
	var fails atomic.Int64
	e.dst.hook = func(context.Context, []change.Record) error {
		if fails.Add(1) <= 2 {
			return errors.New("connection reset")
		}
		return nil
	}
	e.src.add(row(change.OpInsert, 1), row(change.OpInsert, 2))
	cfg := testConfig()
	cfg.Workers = 1
	cfg.BatchSize = 2
	e.start(cfg)
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 2 })
	if st := e.p.Stats(); st.Retries != 2 || st.Written != 2 {
		t.Errorf("Retries, Written = %d, %d; want 2, 2", st.Retries, st.Written)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestBatchErrorRetriesOnlyRetryableFailures(t *testing.T) {
	e := newEnv(t)
	var once sync.Once
	e.dst.hook = func(_ context.Context, batch []change.Record) error {
		var err error
		once.Do(func() {
			be := &change.BatchError{Failed: map[int]error{}}
			for i, r := range batch {
				switch r.Key[0].Value.Int() {
				case 3:
					be.Failed[i] = change.Retryable(errors.New("locked"), time.Millisecond)
				case 5:
					be.Failed[i] = change.Retryable(errors.New("timeout"), 0)
				case 4:
					be.Failed[i] = change.Permanent(errors.New("no such column"))
				}
			}
			err = be
		})
		return err
	}
	for i := range 6 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize = 1, 6
	// The longest wait a failure asked for must win over the backoff.
	cfg.RetryBackoff = Backoff{Min: time.Hour, Max: time.Hour}
	e.src.readSize = 6
	e.start(cfg)

	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 6 })
	e.dst.mu.Lock()
	batches := slices.Clone(e.dst.batches)
	e.dst.mu.Unlock()
	if len(batches) != 2 || len(batches[0]) != 6 || len(batches[1]) != 2 ||
		batches[1][0].Key[0].Value.Int() != 3 || batches[1][1].Key[0].Value.Int() != 5 {
		t.Fatalf("batches = %v, want all six then records 3 and 5", batches)
	}
	for i := int64(1); i <= 6; i++ {
		if _, ok := e.dst.row(i); ok != (i != 4) {
			t.Errorf("row %d written: %v", i, ok)
		}
	}
	letters := e.st.deadLetters()
	if len(letters) != 1 || letters[0].Stage != "write" || letters[0].Record.Key[0].Value.Int() != 4 ||
		!strings.Contains(letters[0].Reason, "no such column") || letters[0].Pipeline != testPipeline {
		t.Fatalf("dead letters = %+v", letters)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestPermanentFailuresAreDeadLetteredAndThePipelineGoesOn(t *testing.T) {
	e := newEnv(t)
	bad := map[int64]bool{13: true, 57: true, 58: true}
	e.dst.hook = func(_ context.Context, batch []change.Record) error {
		for _, r := range batch {
			if bad[r.Key[0].Value.Int()] {
				// The sink cannot say which record is at fault.
				return change.Permanent(fmt.Errorf("constraint violated"))
			}
		}
		return nil
	}
	for i := range 100 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize = 2, 50
	cfg.StopAfterFailures = 3 // never reached: at most two fail in a row
	e.start(cfg)

	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 100 })
	var dead []int64
	for _, l := range e.st.deadLetters() {
		if l.Stage != "write" || l.Reason != "constraint violated" {
			t.Errorf("dead letter %+v", l)
		}
		dead = append(dead, l.Record.Key[0].Value.Int())
	}
	slices.Sort(dead)
	if !slices.Equal(dead, []int64{13, 57, 58}) {
		t.Errorf("dead-lettered %v, want 13, 57, 58", dead)
	}
	for i := int64(1); i <= 100; i++ {
		if _, ok := e.dst.row(i); ok == bad[i] {
			t.Errorf("row %d written: %v", i, ok)
		}
	}
	if st := e.p.Stats(); !st.Running || st.DeadLettered != 3 || st.Written != 97 {
		t.Errorf("stats = %+v", st)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestStopAfterFailures(t *testing.T) {
	e := newEnv(t)
	e.dst.hook = func(context.Context, []change.Record) error {
		return change.Permanent(errors.New("rejected"))
	}
	for i := range 20 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize, cfg.StopAfterFailures = 1, 1, 5
	e.start(cfg)

	err := e.wait()
	if err == nil || !strings.Contains(err.Error(), "records in a row were dead-lettered") {
		t.Fatalf("Run = %v, want a StopAfterFailures error", err)
	}
	// Once stopped, the pipeline dead-letters nothing more: the rest is
	// replayed after a restart.
	if n := len(e.st.deadLetters()); n != 5 {
		t.Errorf("%d dead letters, want 5", n)
	}
	// Dead letters are done: the watermark passed them.
	if got := e.src.lastAck(); got != 5 {
		t.Errorf("acked %d, want 5", got)
	}
	if !e.src.isClosed() || !e.dst.isClosed() {
		t.Error("source or sink not closed")
	}
}

func TestMaxRetriesStopsThePipeline(t *testing.T) {
	e := newEnv(t)
	errDown := errors.New("service unavailable")
	e.dst.hook = func(context.Context, []change.Record) error { return change.Retryable(errDown, 0) }
	e.src.add(row(change.OpInsert, 1))
	cfg := testConfig()
	cfg.MaxRetries = 3
	e.start(cfg)

	err := e.wait()
	if !errors.Is(err, errDown) {
		t.Fatalf("Run = %v, want the sink's error", err)
	}
	if st := e.p.Stats(); st.Retries != 3 || st.Written != 0 || st.Acked != nil {
		t.Errorf("stats = %+v", st)
	}
	if e.st.saved() != 0 || e.src.lastAck() != 0 {
		t.Error("a failed record was acked")
	}
}

func TestMappingFailuresAreDeadLettered(t *testing.T) {
	e := newEnv(t)
	e.mapFn = MapperFunc(func(r *change.Record) (change.Record, bool, error) {
		id := r.Key[0].Value.Int()
		switch {
		case id%10 == 0:
			return change.Record{}, false, fmt.Errorf("column x: not a number")
		case id%10 == 5:
			return change.Record{}, false, nil
		case id == 7:
			out := *r
			out.Key = nil
			return out, true, nil
		case id == 17:
			out := *r
			out.Op = 0
			return out, true, nil
		case id == 27:
			out := *r
			out.Table = ""
			return out, true, nil
		}
		out := *r
		out.Table = "dest"
		return out, true, nil
	})
	for i := range 100 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	e.start(testConfig())

	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 100 })
	letters := e.st.deadLetters()
	if len(letters) != 13 {
		t.Fatalf("%d dead letters, want 13", len(letters))
	}
	for _, l := range letters {
		id := l.Record.Key[0].Value.Int()
		if l.Stage != "map" || l.Record.Table != "t" || indexOf(l.Record.Position) != int(id) ||
			(id%10 == 0) != (l.Reason == "column x: not a number") ||
			(id == 7) != strings.Contains(l.Reason, "no key") ||
			(id == 17) != strings.Contains(l.Reason, "invalid operation") ||
			(id == 27) != strings.Contains(l.Reason, "no table") {
			t.Errorf("dead letter %+v", l)
		}
	}
	st := e.p.Stats()
	if st.Read != 100 || st.Mapped != 77 || st.Skipped != 10 || st.DeadLettered != 13 || st.Written != 77 {
		t.Errorf("stats = %+v", st)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLettersAreStoredBeforeTheirRecordsAreDone(t *testing.T) {
	e := newEnv(t)
	var putFails atomic.Int64
	e.st.putHook = func() error {
		if putFails.Add(1) <= 2 {
			return errors.New("disk busy")
		}
		return nil
	}
	e.dst.hook = func(_ context.Context, batch []change.Record) error {
		return change.Permanent(errors.New("rejected"))
	}
	e.src.onAck = func(change.Position) {
		if len(e.st.deadLetters()) == 0 {
			t.Error("acked before the dead letter was stored")
		}
	}
	e.src.add(row(change.OpInsert, 1))
	e.start(testConfig())
	eventually(t, "the record acked", func() bool { return e.src.lastAck() == 1 })
	if n := len(e.st.deadLetters()); n != 1 || putFails.Load() != 3 {
		t.Errorf("%d dead letters after %d attempts; want 1 after 3", n, putFails.Load())
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestSourceFailureStopsThePipelineAfterDraining(t *testing.T) {
	e := newEnv(t)
	errGone := errors.New("replication slot dropped")
	for i := range 30 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	e.src.failWith = errGone
	cfg := testConfig()
	cfg.BatchWait = 1 << 40 // only the drain writes the last partial batches
	e.start(cfg)

	err := e.wait()
	if !errors.Is(err, errGone) {
		t.Fatalf("Run = %v, want the source's error", err)
	}
	if got := e.src.lastAck(); got != 30 {
		t.Errorf("final ack %d, want 30", got)
	}
	if !e.src.isClosed() || !e.dst.isClosed() {
		t.Error("source or sink not closed")
	}
}

func TestAckFailures(t *testing.T) {
	t.Run("retryable: tried again at the next interval", func(t *testing.T) {
		e := newEnv(t)
		var fails atomic.Int64
		e.src.ackErr = func() error {
			if fails.Add(1) <= 2 {
				return change.Retryable(errors.New("group rebalancing"), 0)
			}
			return nil
		}
		e.src.add(row(change.OpInsert, 1))
		e.start(testConfig())
		eventually(t, "the record acked", func() bool { return e.src.lastAck() == 1 })
		if n := fails.Load(); n != 3 {
			t.Errorf("%d ack attempts, want 3", n)
		}
		if err := e.shutdown(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unclassified: stops the pipeline", func(t *testing.T) {
		e := newEnv(t)
		errConn := errors.New("connection closed")
		e.src.ackErr = func() error { return errConn }
		e.src.add(row(change.OpInsert, 1))
		e.start(testConfig())
		if err := e.wait(); !errors.Is(err, errConn) {
			t.Fatalf("Run = %v, want the ack error", err)
		}
	})
}
