package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/dvsync/dvsync/change"
)

func openTemp(t *testing.T) (*Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func letter(pipeline string, i int) DeadLetter {
	return DeadLetter{
		Pipeline: pipeline,
		Stage:    "write",
		Reason:   fmt.Sprintf("reason %d", i),
		Time:     time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC),
		Record: change.Record{
			Op:       change.OpInsert,
			Table:    "public.t",
			Key:      change.Key{{Name: "id", Value: change.Int(int64(i))}},
			After:    change.Row{{Name: "id", Value: change.Int(int64(i))}, {Name: "n", Value: change.MustDecimal("1.50")}},
			Position: change.Position(fmt.Sprint(i)),
		},
	}
}

func TestStorePersistsAcrossReopen(t *testing.T) {
	eachStore(t, testPersistsAcrossReopen)
}

func testPersistsAcrossReopen(t *testing.T, open opener) {
	ctx := context.Background()
	s := open.must(t)
	if err := s.SavePosition(ctx, "app", change.Position("lsn-1")); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePosition(ctx, "app", change.Position("lsn-2")); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDeadLetters(ctx, []DeadLetter{letter("app", 1), letter("app", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open.must(t)
	pos, err := s.Position(ctx, "app")
	if err != nil || string(pos) != "lsn-2" {
		t.Errorf("Position = %q, %v", pos, err)
	}
	dls, err := s.DeadLetters(ctx, "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 {
		t.Fatalf("got %d dead letters", len(dls))
	}
	want := letter("app", 2)
	if got := dls[1]; got.Pipeline != want.Pipeline || got.Stage != want.Stage || got.Reason != want.Reason ||
		!got.Time.Equal(want.Time) || !recordsEqual(&got.Record, &want.Record) {
		t.Errorf("dead letter changed on disk:\n got %#v\nwant %#v", got, want)
	}
	// A later write continues the sequence instead of restarting it.
	if err := s.PutDeadLetters(ctx, []DeadLetter{letter("app", 3)}); err != nil {
		t.Fatal(err)
	}
	assertReasons(t, s, "app", 0, "reason 1", "reason 2", "reason 3")
}

func TestBoltFileMode(t *testing.T) {
	_, path := openTemp(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestStorePosition(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		testPosition(t, open.must(t))
	})
}

func testPosition(t *testing.T, s Store) {
	ctx := context.Background()
	pos, err := s.Position(ctx, "never")
	if err != nil || pos != nil {
		t.Errorf("unsaved Position = %#v, %v; want nil", pos, err)
	}
	if err := s.SavePosition(ctx, "empty", change.Position{}); err != nil {
		t.Fatal(err)
	}
	pos, err = s.Position(ctx, "empty")
	if err != nil || pos == nil || len(pos) != 0 {
		t.Errorf("empty Position = %#v, %v; want empty, not nil", pos, err)
	}
	buf := change.Position("abc")
	if err := s.SavePosition(ctx, "p", buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X' // the store must not keep the caller's slice
	if pos, _ := s.Position(ctx, "p"); string(pos) != "abc" {
		t.Errorf("Position = %q", pos)
	}
}

func TestStoreDeadLettersOrderAndLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		testDeadLettersOrderAndLimit(t, open.must(t))
	})
}

func testDeadLettersOrderAndLimit(t *testing.T, s Store) {
	ctx := context.Background()
	// Pipelines whose names are prefixes of each other, or hold odd bytes,
	// must not see each other's letters.
	pipelines := []string{"a", "ab", "a\x00", "b"}
	for batch := range 3 {
		var dls []DeadLetter
		for _, p := range pipelines {
			for j := range 2 {
				dls = append(dls, letter(p, batch*2+j))
			}
		}
		if err := s.PutDeadLetters(ctx, dls); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range pipelines {
		assertReasons(t, s, p, 0, "reason 0", "reason 1", "reason 2", "reason 3", "reason 4", "reason 5")
		assertReasons(t, s, p, 2, "reason 0", "reason 1")
		assertReasons(t, s, p, 100, "reason 0", "reason 1", "reason 2", "reason 3", "reason 4", "reason 5")
	}
	assertReasons(t, s, "none", 0)
	if err := s.PutDeadLetters(ctx, nil); err != nil {
		t.Errorf("empty put: %v", err)
	}
}

func assertReasons(t *testing.T, s Store, pipeline string, limit int, want ...string) {
	t.Helper()
	dls, err := s.DeadLetters(context.Background(), pipeline, limit)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, dl := range dls {
		if dl.Pipeline != pipeline {
			t.Errorf("DeadLetters(%q) returned a letter of %q", pipeline, dl.Pipeline)
		}
		got = append(got, dl.Reason)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("DeadLetters(%q, %d) = %q, want %q", pipeline, limit, got, want)
	}
}

func TestStoreConcurrentUse(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		testConcurrentUse(t, open.must(t))
	})
}

func testConcurrentUse(t *testing.T, s Store) {
	ctx := context.Background()
	const writers, rounds = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		pipeline := fmt.Sprintf("p%d", w)
		wg.Go(func() {
			for i := range rounds {
				if err := s.PutDeadLetters(ctx, []DeadLetter{letter(pipeline, i)}); err != nil {
					t.Error(err)
					return
				}
				if err := s.SavePosition(ctx, pipeline, change.Position(fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for range rounds {
				if _, err := s.Position(ctx, pipeline); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.DeadLetters(ctx, pipeline, 5); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for w := range writers {
		pipeline := fmt.Sprintf("p%d", w)
		dls, err := s.DeadLetters(ctx, pipeline, 0)
		if err != nil || len(dls) != rounds {
			t.Fatalf("%s: %d dead letters, %v", pipeline, len(dls), err)
		}
		for i, dl := range dls {
			if dl.Reason != fmt.Sprintf("reason %d", i) {
				t.Errorf("%s: letter %d is %q; a writer's letters must stay in order", pipeline, i, dl.Reason)
			}
		}
		if pos, _ := s.Position(ctx, pipeline); string(pos) != fmt.Sprint(rounds-1) {
			t.Errorf("%s: position %q", pipeline, pos)
		}
	}
}

func TestStoreSecondOpenFailsFast(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		first := open.must(t)
		start := time.Now()
		second, err := open()
		if err == nil {
			second.Close()
			t.Fatal("a second open of a store in use succeeded")
		}
		if !strings.Contains(err.Error(), "is in use by another dvsync process") {
			t.Errorf("error = %v", err)
		}
		if d := time.Since(start); d > 10*lockTimeout {
			t.Errorf("second open took %s", d)
		}
		// Closing the first releases the store.
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		open.must(t)
	})
}

func TestStoreCanceledContext(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		testCanceledContext(t, open.must(t))
	})
}

func testCanceledContext(t *testing.T, s Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.SavePosition(ctx, "p", change.Position("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("SavePosition = %v", err)
	}
	if err := s.PutDeadLetters(ctx, []DeadLetter{letter("p", 1)}); !errors.Is(err, context.Canceled) {
		t.Errorf("PutDeadLetters = %v", err)
	}
	if _, err := s.Position(ctx, "p"); !errors.Is(err, context.Canceled) {
		t.Errorf("Position = %v", err)
	}
	if _, err := s.DeadLetters(ctx, "p", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("DeadLetters = %v", err)
	}
}

func TestBoltRefusesUnknownLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		return b.Put(keyLayout, []byte{2})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := OpenBolt(path)
	if err == nil {
		s.Close()
		t.Fatal("OpenBolt accepted an unknown layout")
	}
	if !strings.Contains(err.Error(), "written by a newer dvsync") {
		t.Errorf("error = %v", err)
	}
}
