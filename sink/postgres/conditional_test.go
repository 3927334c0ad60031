package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// Conditional writes land only on rows that still hold what the record
// expects; the others fail alone, with the row as found, and the rest of
// the batch is committed.
func TestConditionalWrites(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.c (id int PRIMARY KEY, name text, n numeric(10,2), at timestamptz, u uuid, extra text)`,
		`INSERT INTO public.c VALUES
			(1, 'a', 1.50, '2026-01-01 10:00:00.123+00', '0a000000-0000-0000-0000-000000000000', 'x'),
			(2, 'b', 2, NULL, NULL, NULL),
			(3, 'c', 3, NULL, NULL, NULL)`)
	s := d.sink(t, Config{})
	key := func(id int64) change.Key { return change.Key{{Name: "id", Value: change.Int(id)}} }
	expect := func(r change.Record, v string, before change.Row) change.Record {
		r.Meta = map[string]string{change.MetaExpectedVersion: v}
		r.Before = before
		return r
	}
	upd := func(id int64, name string) change.Record {
		return change.Record{Op: change.OpUpdate, Table: "public.c", Key: key(id),
			After: change.Row{{Name: "id", Value: change.Int(id)}, {Name: "name", Value: change.Text(name)}}}
	}
	at := time.Date(2026, 1, 1, 11, 0, 0, 0, time.FixedZone("CET", 3600))
	batch := []change.Record{
		// Matches, comparing canonically: another number kind, zone and
		// sub-second digits, a UUID as text; extra is not compared.
		expect(upd(1, "A"), change.ExpectedRow, change.Row{
			{Name: "name", Value: change.Text("a")}, {Name: "n", Value: change.MustDecimal("1.5")},
			{Name: "at", Value: change.Timestamp(at)}, {Name: "u", Value: change.Text("0a000000-0000-0000-0000-000000000000")}}),
		// The row changed: name is b, not z.
		expect(upd(2, "B"), change.ExpectedRow, change.Row{{Name: "name", Value: change.Text("z")}}),
		// Expected absent, but there.
		expect(upd(3, "C"), change.ExpectedAbsent, nil),
		// Expected absent, and absent: created.
		expect(upd(4, "D"), change.ExpectedAbsent, nil),
		// Expected present, but gone.
		expect(change.Record{Op: change.OpDelete, Table: "public.c", Key: key(5)}, change.ExpectedRow,
			change.Row{{Name: "name", Value: change.Text("e")}}),
		// Unconditional.
		upd(6, "F"),
	}
	err := s.Write(context.Background(), batch)
	var be *change.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 3 {
		t.Fatalf("Write = %v, want a BatchError for records 1, 2 and 4", err)
	}
	for _, i := range []int{1, 2, 4} {
		if change.AsConflict(be.Failed[i]) == nil {
			t.Errorf("record %d: %v, want a conflict", i, be.Failed[i])
		}
	}
	if c := change.AsConflict(be.Failed[1]); c != nil {
		if v, _ := c.Current.Get("name"); c.Deleted || v.Str() != "b" {
			t.Errorf("conflict of record 1 has row %v (deleted %v), want the current row", c.Current, c.Deleted)
		}
		if v, _ := c.Current.Get("n"); v.Kind() != change.KindDecimal {
			t.Errorf("current n is %s, want decimal", v.Kind())
		}
	}
	if c := change.AsConflict(be.Failed[4]); c != nil && !c.Deleted {
		t.Errorf("conflict of record 4 does not say the row is gone")
	}
	for id, want := range map[int64]string{1: "A", 2: "b", 3: "c", 4: "D", 6: "F"} {
		row, ok := d.read(t, "public.c", key(id))
		if v, _ := row.Get("name"); !ok || v.String() != want {
			t.Errorf("row %d: name %v (exists %v), want %s", id, v, ok, want)
		}
	}
}
