package sinktest

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/sink"
)

// Each case writes its own range of row indexes, so that cases cannot
// see each other's rows.
const (
	baseWrite      = 0
	baseUpdate     = 100
	baseUnchanged  = 200
	baseDelete     = 300
	baseMissing    = 400
	baseReplay     = 500
	baseLarge      = 600
	baseConcurrent = 700
	baseClose      = 800
	baseLeak       = 900
)

func (s *suite) emptyBatch(t *testing.T) {
	sk := s.newSink(t)
	if err := sk.Write(t.Context(), nil); err != nil {
		t.Fatalf("Write(nil) = %v", err)
	}
	if err := sk.Write(t.Context(), []change.Record{}); err != nil {
		t.Fatalf("Write(empty) = %v", err)
	}
	s.close(t, sk)
}

func (s *suite) writeThenRead(t *testing.T) {
	sk := s.newSink(t)
	var batch []change.Record
	for i := baseWrite; i < baseWrite+6; i++ {
		op := change.OpInsert
		if i%2 == 1 {
			op = change.OpRead // snapshot rows are upserts too
		}
		batch = append(batch, s.upsert(op, i, 0))
	}
	s.write(t, sk, batch...)
	for i := baseWrite; i < baseWrite+6; i++ {
		s.wantRow(t, i, s.h.Row(i, 0))
	}
	s.close(t, sk)
}

func (s *suite) updateChangesValues(t *testing.T) {
	sk := s.newSink(t)
	for i := baseUpdate; i < baseUpdate+3; i++ {
		s.write(t, sk, s.upsert(change.OpInsert, i, 0))
	}
	var batch []change.Record
	for i := baseUpdate; i < baseUpdate+3; i++ {
		batch = append(batch, s.upsert(change.OpUpdate, i, 1))
	}
	s.write(t, sk, batch...)
	for i := baseUpdate; i < baseUpdate+3; i++ {
		s.wantRow(t, i, s.h.Row(i, 1))
	}
	// An update of a row the destination never had creates it: sinks
	// upsert, so a lost insert heals.
	i := baseUpdate + 3
	s.write(t, sk, s.upsert(change.OpUpdate, i, 1))
	s.wantRow(t, i, s.h.Row(i, 1))
	s.close(t, sk)
}

func (s *suite) unchangedColumnsLeftAlone(t *testing.T) {
	sk := s.newSink(t)
	i := baseUnchanged
	v0, v1 := s.h.Row(i, 0), s.h.Row(i, 1)
	keyCols := s.keyColumns(i)

	// Every other non-key column is Unchanged in the update, starting
	// with the first, so even a one-column row has an Unchanged column.
	update := v1.Clone()
	want := v1.Clone()
	n := 0
	for j, c := range update {
		if keyCols[c.Name] {
			continue
		}
		if n%2 == 0 {
			old, ok := v0.Get(c.Name)
			if !ok {
				t.Fatalf("harness: Row(%d, 1) has column %s that Row(%d, 0) lacks", i, c.Name, i)
			}
			if sameValue(old, c.Value) {
				t.Fatalf("harness: column %s has the same value in both versions: %v", c.Name, old)
			}
			update[j].Value = change.Unchanged()
			want = want.Set(c.Name, old)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("harness: Row(%d, 1) has no column besides the key", i)
	}
	s.write(t, sk, s.upsert(change.OpInsert, i, 0))
	rec := s.upsert(change.OpUpdate, i, 1)
	rec.After = update
	s.write(t, sk, rec)
	s.wantRow(t, i, want)
	s.close(t, sk)
}

func (s *suite) delete(t *testing.T) {
	sk := s.newSink(t)
	var batch []change.Record
	for i := baseDelete; i < baseDelete+3; i++ {
		batch = append(batch, s.upsert(change.OpInsert, i, 0))
	}
	s.write(t, sk, batch...)
	s.write(t, sk, s.del(baseDelete), s.del(baseDelete+1))
	s.wantAbsent(t, baseDelete)
	s.wantAbsent(t, baseDelete+1)
	s.wantRow(t, baseDelete+2, s.h.Row(baseDelete+2, 0))
	s.close(t, sk)
}

func (s *suite) deleteMissingRow(t *testing.T) {
	sk := s.newSink(t)
	i := baseMissing
	s.write(t, sk, s.del(i))
	s.wantAbsent(t, i)
	// And once more after a real delete.
	s.write(t, sk, s.upsert(change.OpInsert, i+1, 0))
	s.write(t, sk, s.del(i+1))
	s.write(t, sk, s.del(i+1))
	s.wantAbsent(t, i+1)
	s.close(t, sk)
}

func (s *suite) replayIsNoOp(t *testing.T) {
	sk := s.newSink(t)
	b := baseReplay
	first := []change.Record{s.upsert(change.OpInsert, b, 0), s.upsert(change.OpInsert, b+1, 0), s.upsert(change.OpInsert, b+2, 0)}
	second := []change.Record{s.upsert(change.OpUpdate, b, 1), s.del(b + 1), s.upsert(change.OpInsert, b+3, 1)}
	check := func(when string) {
		t.Helper()
		s.wantRowf(t, b, s.h.Row(b, 1), when)
		s.wantAbsentf(t, b+1, when)
		s.wantRowf(t, b+2, s.h.Row(b+2, 0), when)
		s.wantRowf(t, b+3, s.h.Row(b+3, 1), when)
	}
	s.write(t, sk, first...)
	s.write(t, sk, second...)
	check("after the first delivery")
	s.write(t, sk, second...)
	check("after replaying the last batch")
	s.write(t, sk, first...)
	s.write(t, sk, second...)
	check("after replaying both batches")
	s.close(t, sk)
}

func (s *suite) largeBatch(t *testing.T) {
	sk := s.newSink(t)
	var batch []change.Record
	for i := baseLarge; i < baseLarge+64; i++ {
		batch = append(batch, s.upsert(change.OpInsert, i, i%2))
	}
	s.write(t, sk, batch...)
	for i := baseLarge; i < baseLarge+64; i++ {
		s.wantRow(t, i, s.h.Row(i, i%2))
	}
	s.close(t, sk)
}

func (s *suite) concurrentWrites(t *testing.T) {
	sk := s.newSink(t)
	const writers, perWriter = 4, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			first := baseConcurrent + w*perWriter
			for v := range 2 {
				var batch []change.Record
				for i := first; i < first+perWriter; i++ {
					batch = append(batch, s.upsert(change.OpUpdate, i, v))
				}
				if err := sk.Write(t.Context(), batch); err != nil {
					t.Errorf("writer %d, version %d: %v", w, v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	for i := baseConcurrent; i < baseConcurrent+writers*perWriter; i++ {
		s.wantRow(t, i, s.h.Row(i, 1))
	}
	s.close(t, sk)
}

func (s *suite) closeAfterUse(t *testing.T) {
	sk := s.newSink(t)
	s.write(t, sk, s.upsert(change.OpInsert, baseClose, 0))
	s.close(t, sk)
	// What was written before Close stays written.
	s.wantRow(t, baseClose, s.h.Row(baseClose, 0))
	// A sink closed without ever writing closes cleanly too.
	s.close(t, s.newSink(t))
}

// noGoroutineLeak checks that a sink's goroutines, and those of the
// connections it opened, are gone once it is closed.
func (s *suite) noGoroutineLeak(t *testing.T) {
	// Warm up first, so that whatever the destination starts lazily on
	// first contact is part of the baseline.
	warm := s.newSink(t)
	s.write(t, warm, s.upsert(change.OpInsert, baseLeak, 0))
	s.close(t, warm)

	before := runtime.NumGoroutine()
	sk := s.newSink(t)
	var batch []change.Record
	for i := baseLeak + 1; i < baseLeak+33; i++ {
		batch = append(batch, s.upsert(change.OpInsert, i, 0))
	}
	s.write(t, sk, batch...)
	s.write(t, sk, s.del(baseLeak+1))
	s.close(t, sk)

	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines before the sink, %d ten seconds after Close:\n%s", before, n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// suite holds the harness and the helpers the cases share.
type suite struct{ h Harness }

// sinkUnderTest is a sink the suite closes exactly once: explicitly at the
// end of a case, or in cleanup when the case failed before that.
type sinkUnderTest struct {
	sink.Sink
	closed *closeResult
}

type closeResult struct {
	once sync.Once
	err  error
}

func (sk sinkUnderTest) closeOnce() error {
	sk.closed.once.Do(func() {
		// Not t.Context(): cleanup runs after it is cancelled.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sk.closed.err = sk.Close(ctx)
	})
	return sk.closed.err
}

func (s *suite) newSink(t *testing.T) sinkUnderTest {
	t.Helper()
	sk := sinkUnderTest{s.h.NewSink(t), &closeResult{}}
	t.Cleanup(func() {
		if err := sk.closeOnce(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return sk
}

func (s *suite) close(t *testing.T, sk sinkUnderTest) {
	t.Helper()
	if err := sk.closeOnce(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func (s *suite) upsert(op change.Op, i, version int) change.Record {
	return change.Record{
		Op:       op,
		Table:    s.h.Table(),
		Key:      s.h.Key(i),
		After:    s.h.Row(i, version),
		Position: change.Position(fmt.Sprintf("sinktest/%d/%d", i, version)),
	}
}

func (s *suite) del(i int) change.Record {
	return change.Record{
		Op:       change.OpDelete,
		Table:    s.h.Table(),
		Key:      s.h.Key(i),
		Position: change.Position(fmt.Sprintf("sinktest/%d/delete", i)),
	}
}

func (s *suite) write(t *testing.T, sk sinkUnderTest, batch ...change.Record) {
	t.Helper()
	if err := sk.Write(t.Context(), batch); err != nil {
		ops := make([]string, len(batch))
		for i := range batch {
			ops[i] = batch[i].String()
		}
		t.Fatalf("Write [%s]: %v", strings.Join(ops, "; "), err)
	}
}

func (s *suite) keyColumns(i int) map[string]bool {
	m := make(map[string]bool)
	for _, c := range s.h.Key(i) {
		m[c.Name] = true
	}
	return m
}

func (s *suite) wantRow(t *testing.T, i int, want change.Row) {
	t.Helper()
	s.wantRowf(t, i, want, "")
}

func (s *suite) wantRowf(t *testing.T, i int, want change.Row, when string) {
	t.Helper()
	key := s.h.Key(i)
	got, ok := s.h.Read(t, s.h.Table(), key)
	if !ok {
		t.Fatalf("row %s is absent %s", key, when)
	}
	var diffs []string
	for _, c := range want {
		if c.Value.IsUnchanged() {
			continue
		}
		g, ok := got.Get(c.Name)
		if !ok && c.Value.IsNull() {
			continue // a destination may leave nulls out
		}
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing, want %v", c.Name, c.Value))
			continue
		}
		if !sameValue(c.Value, g) {
			diffs = append(diffs, fmt.Sprintf("%s: got %v (%s), want %v (%s)", c.Name, g, g.Kind(), c.Value, c.Value.Kind()))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		t.Fatalf("row %s %s:\n\t%s", key, when, strings.Join(diffs, "\n\t"))
	}
}

func (s *suite) wantAbsent(t *testing.T, i int) {
	t.Helper()
	s.wantAbsentf(t, i, "")
}

func (s *suite) wantAbsentf(t *testing.T, i int, when string) {
	t.Helper()
	key := s.h.Key(i)
	if row, ok := s.h.Read(t, s.h.Table(), key); ok {
		t.Fatalf("row %s exists %s, want it absent: %v", key, when, row)
	}
}
