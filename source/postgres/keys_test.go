package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// keyedDB makes public.legacy, a REPLICA IDENTITY FULL table without a
// primary key, whose rows (region, number) identify.
func keyedDB(t *testing.T) *db {
	d := newDB(t)
	d.Exec(t,
		"CREATE TABLE public.legacy (name text, number int NOT NULL, region text NOT NULL)",
		"ALTER TABLE public.legacy REPLICA IDENTITY FULL")
	return d
}

var legacyKey = map[string][]string{"public.legacy": {"region", "number"}}

func legacyKeyOf(number int64, region string) change.Key {
	// Column order, not the order the configuration lists them in.
	return change.Key{{Name: "number", Value: change.Int(number)}, {Name: "region", Value: change.Text(region)}}
}

// A table without a primary key streams keyed by the configured columns:
// an update of another column stays an update of the same key, and a
// delete carries the key from the old row.
func TestConfiguredKeyStreams(t *testing.T) {
	d := keyedDB(t)
	s, err := New(Config{DSN: d.DSN, Tables: []string{"public.legacy"}, Keys: legacyKey, StatusInterval: 50 * time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	d.Exec(t,
		"INSERT INTO public.legacy VALUES ('a', 1, 'eu')",
		"UPDATE public.legacy SET name = 'b' WHERE number = 1",
		"DELETE FROM public.legacy WHERE number = 1")
	recs := readN(t, s, 3)
	key := legacyKeyOf(1, "eu")
	for i, op := range []change.Op{change.OpInsert, change.OpUpdate, change.OpDelete} {
		if recs[i].Op != op || !recs[i].Key.Equal(key) {
			t.Fatalf("record %d = %s, want %s keyed %s", i, recs[i].String(), op, key)
		}
	}
	checkRow(t, recs[1].After, map[string]change.Value{"name": change.Text("b")})
	checkRow(t, recs[2].Before, map[string]change.Value{"name": change.Text("b")})
}

// Without a configured key, a FULL table without a primary key is refused;
// a configured key is refused for a table that has a key of its own, for
// one without REPLICA IDENTITY FULL, and when it names an unknown column.
// Nothing is published while any table is refused.
func TestConfiguredKeyRefused(t *testing.T) {
	d := keyedDB(t)
	d.Exec(t,
		"CREATE TABLE public.nokey (a int, b text)",
		"ALTER TABLE public.nokey REPLICA IDENTITY FULL",
		"CREATE TABLE public.withpk (id int PRIMARY KEY, b text)",
		"CREATE TABLE public.plain (a int, b text)",
		"CREATE TABLE public.typo (a int, b text)",
		"ALTER TABLE public.typo REPLICA IDENTITY FULL")
	s, err := New(Config{DSN: d.DSN,
		Tables: []string{"public.nokey", "public.withpk", "public.plain", "public.typo"},
		Keys: map[string][]string{
			"public.withpk": {"b"},
			"public.plain":  {"a"},
			"public.typo":   {"a", "c"},
		}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Open(context.Background(), nil)
	if err == nil {
		t.Fatal("Open succeeded")
	}
	for _, want := range []string{
		"table public.nokey has REPLICA IDENTITY FULL but no primary key", "give the key columns in the mapping",
		"table public.withpk has a primary key",
		"table public.plain: key columns are given for it, but only REPLICA IDENTITY FULL",
		`table public.typo has no column "c", given as a key column`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	var pubs int
	if err := d.Conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_publication").Scan(&pubs); err != nil || pubs != 0 {
		t.Fatalf("%d publications (err %v)", pubs, err)
	}
}

// The backfill pages a table without a primary key by the unique index on
// its configured key, giving each row the key the stream gives it.
func TestSnapshotConfiguredKey(t *testing.T) {
	d := keyedDB(t)
	d.Exec(t, "CREATE UNIQUE INDEX ON public.legacy (region, number)",
		"INSERT INTO public.legacy SELECT 'n' || i, i, CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 7) i")
	s, err := NewSnapshot(Config{DSN: d.DSN, Tables: []string{"public.legacy"}, Keys: legacyKey}, SnapshotOptions{PageSize: 2}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, s)
	if len(recs) != 7 {
		t.Fatalf("read %d rows, want 7", len(recs))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		n, _ := r.After.Get("number")
		reg, _ := r.After.Get("region")
		want := legacyKeyOf(n.Int(), reg.Str())
		if !r.Key.Equal(want) {
			t.Errorf("row keyed %s, want %s", r.Key, want)
		}
		seen[r.Key.String()] = true
	}
	if len(seen) != 7 {
		t.Errorf("%d distinct keys in 7 rows", len(seen))
	}
}

// The backfill refuses a configured key it cannot page by: one without a
// unique index on exactly its columns, or with a nullable column.
func TestSnapshotConfiguredKeyNeedsUniqueIndex(t *testing.T) {
	d := keyedDB(t)
	d.Exec(t,
		"CREATE UNIQUE INDEX ON public.legacy (region, number, name)",
		"CREATE TABLE public.nullable (a int, b int)",
		"ALTER TABLE public.nullable REPLICA IDENTITY FULL",
		"CREATE UNIQUE INDEX ON public.nullable (a)")
	s, err := NewSnapshot(Config{DSN: d.DSN, Tables: []string{"public.legacy", "public.nullable"},
		Keys: map[string][]string{"public.legacy": {"region", "number"}, "public.nullable": {"a"}}},
		SnapshotOptions{DryRun: true}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	err = s.Open(context.Background(), nil)
	if err == nil {
		t.Fatal("Open succeeded")
	}
	for _, want := range []string{
		"table public.legacy has no unique index on its key columns (number, region)",
		`CREATE UNIQUE INDEX ON "public"."legacy" (number, region)`,
		"table public.nullable: key column a may be NULL",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
