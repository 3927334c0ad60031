package engine

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/dvsync/dvsync/change"
)

// scriptedResolver answers Done for the ids in done, rewrites conflicts
// per onConflict, and records what it is told.
type scriptedResolver struct {
	done       map[int64]bool
	onConflict func(p Pair) Verdict
	syncFails  int // Synced fails this many times first

	mu        sync.Mutex
	prepared  []int64
	conflicts []int64
	synced    []int64
}

func idOf(r *change.Record) int64 { return r.Key[0].Value.Int() }

func (r *scriptedResolver) Prepare(_ context.Context, _ Mapper, pairs []Pair, verdicts []Verdict) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, p := range pairs {
		if p.Source == nil || !p.Source.Key.Equal(p.Out.Key) {
			return errors.New("pair without its source record")
		}
		r.prepared = append(r.prepared, idOf(p.Out))
		if r.done[idOf(p.Out)] {
			verdicts[i] = Done
		}
	}
	return nil
}

func (r *scriptedResolver) Conflict(_ context.Context, _ Mapper, p Pair, err *change.ConflictError) (Verdict, error) {
	r.mu.Lock()
	r.conflicts = append(r.conflicts, idOf(p.Out))
	r.mu.Unlock()
	return r.onConflict(p), nil
}

func (r *scriptedResolver) Synced(_ context.Context, pairs []Pair) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.syncFails > 0 {
		r.syncFails--
		return errors.New("state store unavailable")
	}
	for _, p := range pairs {
		r.synced = append(r.synced, idOf(p.Out))
	}
	return nil
}

func (r *scriptedResolver) snapshot() (prepared, conflicts, synced []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.prepared...), append([]int64(nil), r.conflicts...), append([]int64(nil), r.synced...)
}

// Records the resolver settles are acked without a write; the others are
// written, and reported to Synced only once durable (after a retried
// failure of Synced itself).
func TestResolverSettlesAndSyncs(t *testing.T) {
	e := newEnv(t)
	r := &scriptedResolver{done: map[int64]bool{2: true, 4: true}, syncFails: 2}
	cfg := testConfig()
	cfg.Resolver = r
	for id := int64(1); id <= 5; id++ {
		e.src.add(row(change.OpInsert, id, col("name", change.Text("n"))))
	}
	p := e.start(cfg)
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 5 })
	for id := int64(1); id <= 5; id++ {
		_, written := e.dst.row(id)
		if written == r.done[id] {
			t.Errorf("record %d written: %v", id, written)
		}
	}
	_, _, synced := r.snapshot()
	if len(synced) != 3 {
		t.Errorf("Synced told of %v, want 1, 3 and 5", synced)
	}
	if st := p.Stats(); st.Settled != 2 || st.Written != 3 {
		t.Errorf("Settled %d, Written %d; want 2 and 3", st.Settled, st.Written)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

// A conflict the sink reports goes to the resolver, which rewrites the
// record to be written again or settles it; without a resolver it is
// dead-lettered.
func TestConflictsGoToResolver(t *testing.T) {
	conflictOnce := func(dst *memSink) {
		var mu sync.Mutex
		seen := map[int64]bool{}
		dst.hook = func(_ context.Context, batch []change.Record) error {
			mu.Lock()
			defer mu.Unlock()
			failed := map[int]error{}
			for i := range batch {
				id := idOf(&batch[i])
				if id%2 == 0 && !seen[id] {
					seen[id] = true
					failed[i] = &change.ConflictError{Err: errors.New("changed"), Current: change.Row{col("name", change.Text("theirs"))}}
				}
			}
			if len(failed) == 0 {
				return nil
			}
			return &change.BatchError{Failed: failed}
		}
	}
	t.Run("resolver", func(t *testing.T) {
		e := newEnv(t)
		conflictOnce(e.dst)
		r := &scriptedResolver{onConflict: func(p Pair) Verdict {
			if idOf(p.Out) == 4 {
				return Done
			}
			p.Out.After = change.Row{col("id", change.Int(idOf(p.Out))), col("name", change.Text("decided"))}
			return Write
		}}
		cfg := testConfig()
		cfg.Resolver = r
		for id := int64(1); id <= 4; id++ {
			e.src.add(row(change.OpInsert, id, col("name", change.Text("ours"))))
		}
		e.start(cfg)
		eventually(t, "every record acked", func() bool { return e.src.lastAck() == 4 })
		want := map[int64]string{1: "ours", 2: "decided", 3: "ours"}
		for id := int64(1); id <= 4; id++ {
			got, ok := e.dst.row(id)
			v, _ := got.Get("name")
			if w, written := want[id]; ok != written || ok && v.Str() != w {
				t.Errorf("row %d: %v (written %v), want %q", id, got, ok, w)
			}
		}
		if _, conflicts, _ := r.snapshot(); len(conflicts) != 2 {
			t.Errorf("conflicts %v, want 2 and 4", conflicts)
		}
		if len(e.st.deadLetters()) != 0 {
			t.Errorf("dead letters: %v", e.st.deadLetters())
		}
	})
	t.Run("no resolver", func(t *testing.T) {
		e := newEnv(t)
		conflictOnce(e.dst)
		e.src.add(row(change.OpInsert, 1), row(change.OpInsert, 2))
		e.start(testConfig())
		eventually(t, "every record acked", func() bool { return e.src.lastAck() == 2 })
		if dl := e.st.deadLetters(); len(dl) != 1 || idOf(&dl[0].Record) != 2 {
			t.Errorf("dead letters %v, want record 2's", dl)
		}
	})
}
