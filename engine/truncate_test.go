package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/dvsync/dvsync/change"
)

// TestTruncateIsABarrier holds the write of a row inserted before a
// TRUNCATE: the truncate waits for it, goes alone, and the row inserted
// after it is written only once the table has been emptied.
func TestTruncateIsABarrier(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	e.dst.hook = func(ctx context.Context, batch []change.Record) error {
		if slices.ContainsFunc(batch, func(r change.Record) bool { return r.Op == change.OpInsert && r.Key.String() == "id=1" }) {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}
	e.start(testConfig())
	e.src.add(row(change.OpInsert, 1), row(change.OpInsert, 2),
		change.Record{Op: change.OpTruncate, Table: "t", Position: posOf(3)},
		row(change.OpInsert, 3))
	eventually(t, "every record read", func() bool { return e.src.emitted() == 4 })
	close(gate)
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 4 })

	at := func(match func(r change.Record) bool) int {
		e.dst.mu.Lock()
		defer e.dst.mu.Unlock()
		for i, b := range e.dst.batches {
			if slices.ContainsFunc(b, match) {
				return i
			}
		}
		return -1
	}
	isRow := func(id string) func(change.Record) bool {
		return func(r change.Record) bool { return r.Op == change.OpInsert && r.Key.String() == "id="+id }
	}
	trunc := at(func(r change.Record) bool { return r.Op == change.OpTruncate })
	if trunc < 0 {
		t.Fatal("the truncate was not written")
	}
	e.dst.mu.Lock()
	alone := len(e.dst.batches[trunc]) == 1
	e.dst.mu.Unlock()
	if !alone {
		t.Error("the truncate was written with other records")
	}
	if one, two, three := at(isRow("1")), at(isRow("2")), at(isRow("3")); one > trunc || two > trunc || three < trunc {
		t.Errorf("write order: row 1 in batch %d, row 2 in %d, truncate in %d, row 3 in %d", one, two, trunc, three)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}
