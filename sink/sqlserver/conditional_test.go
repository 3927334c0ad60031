package sqlserver

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/change"
)

func TestConditionalWrites(t *testing.T) {
	st := newStore()
	st.addTable("dbo.c", []memCol{{"id", "bigint", 8, 19, 0}, {"name", "nvarchar", 100, 0, 0}, {"n", "int", 4, 10, 0}}, "id")
	s := newSink(t, Config{DSN: startStore(t, st)})
	ctx := context.Background()
	row := func(id int64, name string) change.Row {
		return change.Row{{Name: "id", Value: change.Int(id)}, {Name: "name", Value: change.Text(name)}}
	}
	if err := s.Write(ctx, []change.Record{upsertRec("dbo.c", 1, col("name", change.Text("a"))), upsertRec("dbo.c", 2, col("name", change.Text("b")))}); err != nil {
		t.Fatal(err)
	}
	expect := func(r change.Record, v string, before change.Row) change.Record {
		r.Meta = map[string]string{change.MetaExpectedVersion: v}
		r.Before = before
		return r
	}
	batch := []change.Record{
		expect(upsertRec("dbo.c", 1, col("name", change.Text("A"))), change.ExpectedRow, row(1, "a")), // matches
		expect(upsertRec("dbo.c", 2, col("name", change.Text("B"))), change.ExpectedRow, row(2, "z")), // changed
		expect(upsertRec("dbo.c", 3, col("name", change.Text("C"))), change.ExpectedAbsent, nil),      // absent
		expect(upsertRec("dbo.c", 1, col("name", change.Text("D"))), change.ExpectedAbsent, nil),      // present
		expect(change.Record{Op: change.OpDelete, Table: "dbo.c", Key: change.Key{{Name: "id", Value: change.Int(9)}}}, change.ExpectedRow, row(9, "x")),
		upsertRec("dbo.c", 4, col("name", change.Text("E"))), // unconditional
	}
	// Records of one key are never in one batch; the engine folds them.
	batch[3].Key[0].Value, batch[3].After[0].Value = change.Int(2), change.Int(2)
	err := s.Write(ctx, batch)
	var be *change.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want a BatchError", err)
	}
	if len(be.Failed) != 3 {
		t.Fatalf("failed: %v", be.Failed)
	}
	if c := change.AsConflict(be.Failed[1]); c == nil || c.Deleted {
		t.Errorf("#1: %v", be.Failed[1])
	} else if v, _ := c.Current.Get("name"); v.String() != "b" {
		t.Errorf("#1: current row %v", c.Current)
	}
	if c := change.AsConflict(be.Failed[3]); c == nil {
		t.Errorf("#3: %v", be.Failed[3])
	}
	if c := change.AsConflict(be.Failed[4]); c == nil || !c.Deleted {
		t.Errorf("#4: %v", be.Failed[4])
	}
	for id, want := range map[int64]string{1: "A", 2: "b", 3: "C", 4: "E"} {
		got, ok := st.read("dbo.c", change.Key{{Name: "id", Value: change.Int(id)}})
		if v, _ := got.Get("name"); !ok || v.String() != want {
			t.Errorf("row %d: %v", id, got)
		}
	}
	// The check ran in the write's transaction, under an update lock.
	var locked uint64
	for _, req := range st.statements() {
		switch {
		case strings.HasSuffix(req.SQL, " TRANSACTION"):
			locked = 0
		case strings.Contains(req.SQL, "WITH (UPDLOCK, HOLDLOCK)"):
			locked = req.Transaction
		case locked != 0 && strings.HasPrefix(req.SQL, "WITH CHANGE_TRACKING_CONTEXT"):
			if req.Transaction != locked {
				t.Errorf("write in transaction %d, check in %d", req.Transaction, locked)
			}
		}
	}
}
