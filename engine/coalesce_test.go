package engine

import (
	"slices"
	"testing"

	"github.com/dvsync/dvsync/change"
)

func TestFold(t *testing.T) {
	a, b, c := change.Text("a"), change.Text("b"), change.Text("c")
	before := change.Row{col("id", change.Int(1)), col("x", change.Text("old"))}
	withBefore := func(r change.Record, before change.Row) change.Record { r.Before = before; return r }
	tests := []struct {
		name       string
		prev, next change.Record
		want       change.Record
	}{{
		name: "later values over earlier",
		prev: withBefore(row(change.OpUpdate, 1, col("x", a), col("y", a)), before),
		next: row(change.OpUpdate, 1, col("x", b)),
		want: withBefore(row(change.OpUpdate, 1, col("x", b), col("y", a)), before),
	}, {
		name: "unchanged keeps the earlier value",
		prev: row(change.OpUpdate, 1, col("x", a), col("y", a)),
		next: row(change.OpUpdate, 1, col("x", change.Unchanged()), col("y", b)),
		want: row(change.OpUpdate, 1, col("x", a), col("y", b)),
	}, {
		name: "unchanged with no earlier value stays unchanged",
		prev: row(change.OpUpdate, 1, col("x", a)),
		next: row(change.OpUpdate, 1, col("z", change.Unchanged())),
		want: row(change.OpUpdate, 1, col("x", a), col("z", change.Unchanged())),
	}, {
		name: "null overrides",
		prev: row(change.OpUpdate, 1, col("x", a)),
		next: row(change.OpUpdate, 1, col("x", change.Null())),
		want: row(change.OpUpdate, 1, col("x", change.Null())),
	}, {
		name: "insert then update stays an insert",
		prev: row(change.OpInsert, 1, col("x", a), col("y", a)),
		next: row(change.OpUpdate, 1, col("y", b)),
		want: row(change.OpInsert, 1, col("x", a), col("y", b)),
	}, {
		name: "read then update stays a read",
		prev: row(change.OpRead, 1, col("x", a)),
		next: row(change.OpUpdate, 1, col("x", c)),
		want: row(change.OpRead, 1, col("x", c)),
	}, {
		name: "update then delete is a delete",
		prev: row(change.OpUpdate, 1, col("x", a)),
		next: withBefore(row(change.OpDelete, 1), before),
		want: withBefore(row(change.OpDelete, 1), before),
	}, {
		name: "insert then delete is a delete",
		prev: row(change.OpInsert, 1, col("x", a)),
		next: row(change.OpDelete, 1),
		want: row(change.OpDelete, 1),
	}, {
		name: "delete then insert is the insert alone",
		prev: row(change.OpDelete, 1),
		next: row(change.OpInsert, 1, col("y", b)),
		want: row(change.OpInsert, 1, col("y", b)),
	}, {
		name: "delete then update carries nothing from before the delete",
		prev: row(change.OpDelete, 1),
		next: row(change.OpUpdate, 1, col("x", change.Unchanged()), col("y", b)),
		want: row(change.OpUpdate, 1, col("x", change.Unchanged()), col("y", b)),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.prev.Position, tt.next.Position = posOf(1), posOf(2)
			tt.want.Position = posOf(2)
			prevAfter := tt.prev.After.Clone()
			got := fold(&tt.prev, &tt.next)
			assertRecord(t, got, tt.want)
			if !rowsEqual(tt.prev.After, prevAfter) {
				t.Errorf("fold modified prev.After: %v", tt.prev.After)
			}
		})
	}
}

func TestCoalescerFoldsPerKey(t *testing.T) {
	a, b := change.Text("a"), change.Text("b")
	items := []item{
		{seq: 10, key: "1", rec: row(change.OpInsert, 1, col("x", a))},
		{seq: 11, key: "2", rec: row(change.OpUpdate, 2, col("x", a))},
		{seq: 12, key: "1", rec: row(change.OpUpdate, 1, col("y", b))},
		{seq: 13, key: "1", rec: row(change.OpDelete, 1)},
		{seq: 14, key: "3", rec: row(change.OpUpdate, 3, col("x", b))},
		{seq: 15, key: "1", rec: row(change.OpInsert, 1, col("z", b))},
		{seq: 16, key: "2", rec: row(change.OpUpdate, 2, col("x", b))},
	}
	c := newCoalescer(4)
	c.fold(items)

	want := []change.Record{
		row(change.OpInsert, 1, col("z", b)),
		row(change.OpUpdate, 2, col("x", b)),
		row(change.OpUpdate, 3, col("x", b)),
	}
	if len(c.out) != len(want) {
		t.Fatalf("folded to %d records, want %d", len(c.out), len(want))
	}
	for i := range want {
		assertRecord(t, c.out[i], want[i])
	}
	wantSeqs := [][]uint64{{10, 12, 13, 15}, {11, 16}, {14}}
	for i, w := range wantSeqs {
		if got := c.owners[i].appendTo(nil); !slices.Equal(got, w) {
			t.Errorf("record %d folds sequence numbers %v, want %v", i, got, w)
		}
	}

	c.fold(items[4:5])
	if len(c.out) != 1 || len(c.index) != 1 || c.owners[0].count() != 1 {
		t.Errorf("second fold kept state from the first: %d records, %d keys", len(c.out), len(c.index))
	}
}

func assertRecord(t *testing.T, got, want change.Record) {
	t.Helper()
	if got.Op != want.Op || got.Table != want.Table || !got.Key.Equal(want.Key) {
		t.Errorf("got %s, want %s", &got, &want)
	}
	if !rowsEqual(got.After, want.After) {
		t.Errorf("After = %v, want %v", got.After, want.After)
	}
	if !rowsEqual(got.Before, want.Before) {
		t.Errorf("Before = %v, want %v", got.Before, want.Before)
	}
	if want.Position != nil && indexOf(got.Position) != indexOf(want.Position) {
		t.Errorf("Position = %d, want %d", indexOf(got.Position), indexOf(want.Position))
	}
}

func rowsEqual(a, b change.Row) bool {
	return slices.EqualFunc(a, b, func(x, y change.Column) bool {
		return x.Name == y.Name && x.Value.Equal(y.Value)
	})
}
