package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// snapshot returns an unopened backfill of tables, closed at cleanup.
func (d *db) snapshot(t *testing.T, opts SnapshotOptions, tables ...string) *Snapshot {
	t.Helper()
	s, err := NewSnapshot(Config{DSN: d.DSN, Tables: tables}, opts, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

// readAll reads from s until Done, acking each batch's last position as
// an engine would, and returns the records.
func readAll(t *testing.T, s *Snapshot) []change.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []change.Record
	for {
		readCtx, stop := context.WithCancel(ctx)
		go func() {
			select {
			case <-s.Done():
			case <-readCtx.Done():
			}
			stop()
		}()
		recs, err := s.Read(readCtx)
		stop()
		select {
		case <-s.Done():
			return append(got, recs...)
		default:
		}
		if err != nil {
			t.Fatalf("Read after %d records: %v", len(got), err)
		}
		got = append(got, recs...)
		if err := s.Ack(ctx, recs[len(recs)-1].Position); err != nil {
			t.Fatal(err)
		}
	}
}

func keyText(r change.Record) string { return r.Key.String() }

func TestSnapshotCompositeKeyInKeyOrder(t *testing.T) {
	d := newDB(t)
	// The primary key's columns are declared in another order than the
	// table's: pages follow the index, keys follow the stream (column order).
	d.Exec(t, `CREATE TABLE public.lines (
		tenant int, code text, qty numeric(10,2), note text, at timestamptz,
		PRIMARY KEY (code, tenant))`,
		`INSERT INTO public.lines
		 SELECT t, 'c' || lpad(n::text, 2, '0'), n * 1.5, CASE WHEN n % 3 = 0 THEN NULL ELSE 'n' || n END,
		        '2024-05-01 10:00:00+02'::timestamptz + n * interval '1 hour'
		   FROM generate_series(1, 3) t, generate_series(1, 7) n`)
	s := d.snapshot(t, SnapshotOptions{PageSize: 4, Parallel: 1}, "public.lines")
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	got := readAll(t, s)
	if len(got) != 21 {
		t.Fatalf("read %d records, want 21", len(got))
	}
	var keys []string
	for _, r := range got {
		if r.Op != change.OpRead || r.Table != "public.lines" {
			t.Fatalf("record %s: want an OpRead of public.lines", r.String())
		}
		keys = append(keys, keyText(r))
	}
	if keys[0] != "tenant=1,code=c01" || keys[1] != "tenant=2,code=c01" || keys[20] != "tenant=3,code=c07" {
		t.Errorf("keys not in index order (code, tenant) with columns in table order: %v", keys)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(keys)))) != 21 {
		t.Errorf("duplicate keys: %v", keys)
	}
	r := got[2] // tenant 3, c01
	checks := map[string]change.Value{
		"tenant": change.Int(3),
		"code":   change.Text("c01"),
		"qty":    change.MustDecimal("1.50"),
		"note":   change.Text("n1"),
		"at":     change.Timestamp(time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)),
	}
	for col, want := range checks {
		if v, _ := r.After.Get(col); !v.Equal(want) {
			t.Errorf("%s: %s = %v, want %v", r.String(), col, v, want)
		}
	}
	if v, _ := got[8].After.Get("note"); !v.IsNull() { // c03: n = 3
		t.Errorf("%s: note = %v, want null", got[8].String(), v)
	}
	p := s.Progress()
	if len(p) != 1 || p[0].Began.IsZero() {
		t.Fatalf("Progress = %+v", p)
	}
	p[0].Began = time.Time{}
	if p[0] != (TableProgress{Table: "public.lines", Read: 21, Total: 21, Done: true}) {
		t.Errorf("Progress = %+v", p)
	}
}

// The slot created by the backfill streams exactly what the snapshot does
// not hold: changes committed after it, none before.
func TestSnapshotHandsOffToStream(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.items (id int PRIMARY KEY, v text)`,
		`INSERT INTO public.items SELECT n, 'old' FROM generate_series(1, 50) n`)
	s := d.snapshot(t, SnapshotOptions{PageSize: 7}, "public.items")
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// Committed after the snapshot was taken, while it is being read.
	d.Exec(t, `INSERT INTO public.items VALUES (51, 'new')`,
		`UPDATE public.items SET v = 'changed' WHERE id = 3`,
		`DELETE FROM public.items WHERE id = 4`)
	got := readAll(t, s)
	if len(got) != 50 {
		t.Fatalf("backfill read %d rows, want the 50 of the snapshot", len(got))
	}
	for _, r := range got {
		if v, _ := r.After.Get("v"); v.Str() != "old" {
			t.Fatalf("backfill read %s with v=%s: a change after the snapshot leaked in", r.String(), v)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	stream := d.open(t, nil, "public.items")
	recs := readN(t, stream, 3)
	want := []string{"c id=51", "u id=3", "d id=4"}
	for i, r := range recs {
		if have := r.Op.String() + " " + keyText(r); have != want[i] {
			t.Errorf("streamed record %d = %s, want %s", i, have, want[i])
		}
	}
}

// A backfill reopened at an acked position skips finished tables and goes
// on after the last durable key.
func TestSnapshotResumesFromAckedPosition(t *testing.T) {
	d := newDB(t)
	for _, tbl := range []string{"a", "b"} {
		d.Exec(t, fmt.Sprintf(`CREATE TABLE public.%s (id int PRIMARY KEY)`, tbl),
			fmt.Sprintf(`INSERT INTO public.%s SELECT generate_series(1, 20)`, tbl))
	}
	ctx := context.Background()
	opts := SnapshotOptions{PageSize: 6, Parallel: 1}
	first := d.snapshot(t, opts, "public.a", "public.b")
	if err := first.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	// All of a (4 pages), then two pages of b; the acked position is the
	// last record of b's second page, keyed 12.
	var got []change.Record
	for len(got) < 20+12 {
		recs, err := first.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, recs...)
	}
	if len(got) != 32 || got[31].Table != "public.b" || keyText(got[31]) != "id=12" {
		t.Fatalf("unexpected first run: %d records, last %s", len(got), got[len(got)-1].String())
	}
	acked := got[31].Position
	if err := first.Ack(ctx, acked); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}

	second := d.snapshot(t, opts, "public.a", "public.b")
	if err := second.Open(ctx, acked); err != nil {
		t.Fatal(err)
	}
	rest := readAll(t, second)
	var keys []string
	for _, r := range rest {
		if r.Table != "public.b" {
			t.Fatalf("resumed backfill read %s, of a table it had finished", r.String())
		}
		keys = append(keys, keyText(r))
	}
	if len(keys) != 8 || keys[0] != "id=13" || keys[7] != "id=20" {
		t.Errorf("resumed backfill read %v, want id=13..id=20", keys)
	}

	// An acked position inside a page resumes at that page's start.
	third := d.snapshot(t, opts, "public.a", "public.b")
	if err := third.Open(ctx, got[28].Position); err != nil { // b id=9, in the page 7..12
		t.Fatal(err)
	}
	rest = readAll(t, third)
	if len(rest) != 14 || keyText(rest[0]) != "id=7" {
		t.Errorf("resumed mid-page: %d records from %s, want 14 from id=7", len(rest), keyText(rest[0]))
	}

	// The complete position reads nothing.
	fourth := d.snapshot(t, opts, "public.a", "public.b")
	if err := fourth.Open(ctx, third.Complete()); err != nil {
		t.Fatal(err)
	}
	if rest := readAll(t, fourth); len(rest) != 0 {
		t.Errorf("a complete backfill read %d records again", len(rest))
	}
}

func TestSnapshotWhereFilterIsPartOfThePosition(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.w (id int PRIMARY KEY, region text)`,
		`INSERT INTO public.w SELECT n, CASE WHEN n % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 10) n`)
	ctx := context.Background()
	eu := SnapshotOptions{PageSize: 2, Parallel: 1, Where: map[string]string{"public.w": "region = 'eu'"}}
	s := d.snapshot(t, eu, "public.w")
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || keyText(recs[0]) != "id=2" || keyText(recs[1]) != "id=4" {
		t.Fatalf("filtered page = %v", recs)
	}
	if p := s.Progress(); p[0].Total != 5 {
		t.Errorf("Total = %d, want the 5 rows the filter selects", p[0].Total)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	other := d.snapshot(t, SnapshotOptions{}, "public.w")
	if err := other.Open(ctx, recs[1].Position); err == nil {
		t.Fatal("resuming a filtered backfill without its filter succeeded")
	}
}

func TestSnapshotRefusesTableWithoutPrimaryKey(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.nopk (a int, b text)`, `ALTER TABLE public.nopk REPLICA IDENTITY FULL`)
	s := d.snapshot(t, SnapshotOptions{DryRun: true}, "public.nopk")
	err := s.Open(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "public.nopk has REPLICA IDENTITY FULL but no primary key") {
		t.Fatalf("Open = %v, want an error naming the table and its missing primary key", err)
	}
}

// A row read by the backfill and the same row streamed decode to equal
// values, type by type, so the two never disagree about a row.
func TestSnapshotDecodesLikeTheStream(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TYPE mood AS ENUM ('sad', 'happy')`,
		`CREATE DOMAIN posint AS int CHECK (VALUE > 0)`,
		`CREATE TABLE public.types (
			id int PRIMARY KEY, b bool, i2 smallint, i8 bigint, f4 real, f8 double precision,
			n numeric, n2 numeric(10,3), nnan numeric, t text, vc varchar(10), ch char(3),
			ts timestamp, tstz timestamptz, d date, tm time, iv interval, u uuid, j json, jb jsonb,
			by bytea, arr int[], e mood, dom posint, inf timestamptz, nul text,
			gen int GENERATED ALWAYS AS (id * 2) STORED)`)
	values := `true, -2, 9007199254740993, 1.1, 0.1, 123456789.123456789, 1.500, 'NaN',
		'héllo ✓', 'abc', 'x', '2024-02-29 23:59:59.123456', '2024-02-29 23:59:59.5+05:30', '0001-01-01',
		'12:34:56.789', '1 day 02:03:04', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}',
		'{"b": {"c": null}}', '\x00ff10', '{1,NULL,3}', 'happy', 7, 'infinity', NULL`
	d.Exec(t, `INSERT INTO public.types VALUES (1, `+values+`)`)
	s := d.snapshot(t, SnapshotOptions{}, "public.types")
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, `INSERT INTO public.types VALUES (2, `+values+`)`)
	read := readAll(t, s)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	streamed := readN(t, d.open(t, nil, "public.types"), 1)
	if len(read) != 1 {
		t.Fatalf("backfill read %d rows, want 1", len(read))
	}
	a, b := read[0].After, streamed[0].After
	if len(a) != len(b) {
		t.Fatalf("backfill row has %d columns, streamed row %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Name == "id" {
			continue
		}
		if a[i].Name != b[i].Name || !a[i].Value.Equal(b[i].Value) {
			t.Errorf("column %s: backfill %v (%s), stream %s %v (%s)", a[i].Name, a[i].Value, a[i].Value.Kind(), b[i].Name, b[i].Value, b[i].Value.Kind())
		}
	}
}

// A large table is split into key ranges read in parallel; every row is
// read once, and a resumed backfill reads exactly the rows not yet acked.
func TestSnapshotSplitsLargeTableIntoRanges(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.big (region text, id int, PRIMARY KEY (region, id))`,
		`INSERT INTO public.big SELECT r, g FROM unnest(ARRAY['eu', 'us', 'apac']) r, generate_series(1, 400) g`)
	ctx := context.Background()
	opts := SnapshotOptions{PageSize: 40, Parallel: 3, SplitRows: 100}
	first := d.snapshot(t, opts, "public.big")
	if err := first.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	var acked change.Position
	for len(seen) < 500 {
		recs, err := first.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			seen[keyText(r)]++
		}
		acked = recs[len(recs)-1].Position
	}
	if err := first.Ack(ctx, acked); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := decodeSnapshotPosition(acked)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Tables["public.big"].Ranges); n != 3 {
		t.Fatalf("the table was split into %d ranges, want 3", n)
	}

	second := d.snapshot(t, opts, "public.big")
	if err := second.Open(ctx, acked); err != nil {
		t.Fatal(err)
	}
	rest := readAll(t, second)
	for _, r := range rest {
		seen[keyText(r)]++
	}
	if len(seen) != 1200 {
		t.Errorf("read %d distinct rows, want 1200", len(seen))
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("row %s read %d times; a resumed backfill must read exactly what was not acked", k, n)
		}
	}
	if pr := second.Progress(); pr[0].Read != 1200 || pr[0].Total != 1200 || !pr[0].Done || pr[0].Earlier != 1200-int64(len(rest)) {
		t.Errorf("Progress = %+v", pr)
	}
}

// A key whose columns are apart in the row is copied out of it; one whose
// columns are together is that part of the row. Both read as the stream's.
func TestSnapshotKeyColumnsApartAndTogether(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.apart (a int, note text, b int, PRIMARY KEY (b, a))`,
		`CREATE TABLE public.together (note text, a int, b int, PRIMARY KEY (b, a))`,
		`INSERT INTO public.apart SELECT n, 'n' || n, n * 10 FROM generate_series(1, 5) n`,
		`INSERT INTO public.together SELECT 'n' || n, n, n * 10 FROM generate_series(1, 5) n`)
	for _, table := range []string{"public.apart", "public.together"} {
		s := d.snapshot(t, SnapshotOptions{PageSize: 2, Parallel: 1}, table)
		if err := s.Open(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, s)
		if len(got) != 5 {
			t.Fatalf("%s: read %d records, want 5", table, len(got))
		}
		for i, r := range got {
			n := int64(i + 1)
			want := change.Key{{Name: "a", Value: change.Int(n)}, {Name: "b", Value: change.Int(n * 10)}}
			if !r.Key.Equal(want) || cap(r.Key) != len(r.Key) {
				t.Errorf("%s: record %d: key %v (capacity %d), want %v", table, i, r.Key, cap(r.Key), want)
			}
			if v, _ := r.After.Get("note"); !v.Equal(change.Text(fmt.Sprint("n", n))) {
				t.Errorf("%s: record %d: note = %v", table, i, v)
			}
		}
	}
}
