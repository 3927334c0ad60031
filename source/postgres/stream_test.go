package postgres

import (
	"context"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func TestValueTypes(t *testing.T) {
	d := newDB(t)
	// The source pins its session's DateStyle and TimeZone; these would
	// change the text form of dates and timestamps otherwise.
	var dbname string
	if err := d.Conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&dbname); err != nil {
		t.Fatal(err)
	}
	d.Exec(t,
		`ALTER DATABASE `+dbname+` SET timezone = 'America/New_York'`,
		`ALTER DATABASE `+dbname+` SET datestyle = 'SQL, DMY'`,
		`CREATE TABLE public.types (
			id int PRIMARY KEY,
			b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, num numeric(38,10),
			t text, vc varchar(20), bp char(5), nm name,
			tstz timestamptz, ts timestamp, d date, u uuid, by bytea, j json, jb jsonb,
			iv interval, arr int[]
		)`)
	s := d.open(t, nil, "public.types")
	d.Exec(t,
		`INSERT INTO public.types VALUES (1,
			true, -32768, 2147483647, 9223372036854775807, 1.1, -2.5e100, 12345678901234567890.0123456789,
			'héllo', 'varchar', 'ab', 'nm',
			'2024-02-29 13:14:15.123456+02', '2024-02-29 13:14:15.5', '2024-02-29',
			'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\xdeadbeef', '{"a": [1, 2]}', '{"b": 1, "a": 2}',
			'1 day 02:03:04', '{1,2,3}')`,
		`INSERT INTO public.types (id) VALUES (2)`,
		`INSERT INTO public.types (id, num, f8, tstz, ts, d) VALUES (3, 'NaN', 'Infinity', 'infinity', '0044-03-15 12:00:00 BC', '-infinity')`,
	)
	recs := readN(t, s, 3)

	ts := func(s string) change.Value {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return change.Timestamp(tm)
	}
	uuid, _ := change.ParseUUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
	want := map[string]change.Value{
		"id": change.Int(1), "b": change.Bool(true), "i2": change.Int(-32768), "i4": change.Int(2147483647),
		"i8": change.Int(math.MaxInt64), "f4": change.Float(1.1), "f8": change.Float(-2.5e100),
		"num": change.MustDecimal("12345678901234567890.0123456789"),
		"t":   change.Text("héllo"), "vc": change.Text("varchar"), "bp": change.Text("ab   "), "nm": change.Text("nm"),
		"tstz": ts("2024-02-29T11:14:15.123456Z"), "ts": ts("2024-02-29T13:14:15.5Z"),
		"d": change.Date(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC)), "u": uuid,
		"by": change.Bytes([]byte{0xde, 0xad, 0xbe, 0xef}), "j": change.JSON([]byte(`{"a": [1, 2]}`)),
		"jb": change.JSON([]byte(`{"a": 2, "b": 1}`)), "iv": change.Text("1 day 02:03:04"), "arr": change.Text("{1,2,3}"),
	}
	checkRow(t, recs[0].After, want)

	for name := range want {
		if name != "id" {
			want[name] = change.Null()
		}
	}
	want["id"] = change.Int(2)
	checkRow(t, recs[1].After, want)

	special := recs[2].After
	if v, _ := special.Get("num"); v.Kind() != change.KindFloat || !math.IsNaN(v.Float()) {
		t.Errorf("numeric NaN: %s %s", v.Kind(), v)
	}
	checkRow(t, special, map[string]change.Value{
		"f8":   change.Float(math.Inf(1)),
		"tstz": change.Text("infinity"),
		"ts":   change.Timestamp(time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC)),
		"d":    change.Text("-infinity"),
	})
}

func checkRow(t *testing.T, row change.Row, want map[string]change.Value) {
	t.Helper()
	for name, w := range want {
		got, ok := row.Get(name)
		switch {
		case !ok:
			t.Errorf("column %s missing", name)
		case !got.Equal(w):
			t.Errorf("column %s = %s %q, want %s %q", name, got.Kind(), got, w.Kind(), w)
		}
	}
}

func TestToastedColumnUnchanged(t *testing.T) {
	d := newDB(t)
	d.Exec(t,
		"CREATE TABLE public.docs (id int PRIMARY KEY, body text, n int)",
		// Out of line and uncompressed, so 10 kB is surely TOASTed.
		"ALTER TABLE public.docs ALTER COLUMN body SET STORAGE EXTERNAL")
	s := d.open(t, nil, "public.docs")
	d.Exec(t,
		"INSERT INTO public.docs VALUES (1, repeat('x', 10000), 1)",
		"UPDATE public.docs SET n = 2 WHERE id = 1",
		"UPDATE public.docs SET body = 'short', n = 3 WHERE id = 1")
	recs := readN(t, s, 3)
	checkRow(t, recs[0].After, map[string]change.Value{"body": change.Text(strings.Repeat("x", 10000)), "n": change.Int(1)})
	checkRow(t, recs[1].After, map[string]change.Value{"body": change.Unchanged(), "n": change.Int(2)})
	checkRow(t, recs[2].After, map[string]change.Value{"body": change.Text("short"), "n": change.Int(3)})
	if recs[1].Op != change.OpUpdate || recs[1].Before != nil {
		t.Errorf("update: op %s, before %v", recs[1].Op, recs[1].Before)
	}
}

func TestCompositeKey(t *testing.T) {
	d := newDB(t)
	// The key is in column order (order_id, line), whatever the order in
	// the PRIMARY KEY clause.
	d.Exec(t, "CREATE TABLE public.lines (order_id int, line text, qty int, PRIMARY KEY (line, order_id))")
	s := d.open(t, nil, "public.lines")
	d.Exec(t,
		"INSERT INTO public.lines VALUES (7, 'a', 1), (7, 'b', 1)",
		"UPDATE public.lines SET qty = 2 WHERE order_id = 7 AND line = 'a'",
		"DELETE FROM public.lines WHERE order_id = 7 AND line = 'b'",
		"UPDATE public.lines SET line = 'c' WHERE order_id = 7 AND line = 'a'")
	key := func(order int64, line string) change.Key {
		return change.Key{{Name: "order_id", Value: change.Int(order)}, {Name: "line", Value: change.Text(line)}}
	}
	want := []struct {
		op  change.Op
		key change.Key
	}{
		{change.OpInsert, key(7, "a")}, {change.OpInsert, key(7, "b")},
		{change.OpUpdate, key(7, "a")}, {change.OpDelete, key(7, "b")},
		// A key change: the old row is gone, a new one exists.
		{change.OpDelete, key(7, "a")}, {change.OpInsert, key(7, "c")},
	}
	recs := readN(t, s, len(want))
	for i, w := range want {
		if recs[i].Op != w.op || !recs[i].Key.Equal(w.key) {
			t.Errorf("record %d: %s, want %s %s", i, recs[i].String(), w.op, w.key)
		}
		if recs[i].Table != "public.lines" {
			t.Errorf("record %d: table %q", i, recs[i].Table)
		}
	}
	checkRow(t, recs[5].After, map[string]change.Value{"qty": change.Int(2)})
	// The key change's two records share a transaction but not a position.
	if string(recs[4].Position) == string(recs[5].Position) || recs[4].Meta["xid"] != recs[5].Meta["xid"] {
		t.Errorf("key change records: positions %x %x, xids %s %s", recs[4].Position, recs[5].Position, recs[4].Meta["xid"], recs[5].Meta["xid"])
	}
}

func TestReplicaIdentityFull(t *testing.T) {
	d := newDB(t)
	d.Exec(t,
		"CREATE TABLE public.full_pk (id int PRIMARY KEY, v text)",
		"ALTER TABLE public.full_pk REPLICA IDENTITY FULL")
	s := d.open(t, nil, "public.full_pk")
	d.Exec(t,
		"INSERT INTO public.full_pk VALUES (1, 'old')",
		"UPDATE public.full_pk SET v = 'new' WHERE id = 1",
		"DELETE FROM public.full_pk WHERE id = 1")
	recs := readN(t, s, 3)
	id1 := change.Key{{Name: "id", Value: change.Int(1)}}
	// With a primary key, FULL keys by it: the update stays an update.
	if recs[1].Op != change.OpUpdate || !recs[1].Key.Equal(id1) {
		t.Fatalf("update: %s", recs[1].String())
	}
	checkRow(t, recs[1].Before, map[string]change.Value{"v": change.Text("old")})
	checkRow(t, recs[1].After, map[string]change.Value{"v": change.Text("new")})
	if recs[2].Op != change.OpDelete || !recs[2].Key.Equal(id1) || recs[2].After != nil {
		t.Fatalf("delete: %s", recs[2].String())
	}
	checkRow(t, recs[2].Before, map[string]change.Value{"v": change.Text("new")})
}

func TestMissingKey(t *testing.T) {
	d := newDB(t)
	d.Exec(t,
		"CREATE TABLE public.items (id int PRIMARY KEY)",
		"CREATE TABLE public.nokey (a int, b text)",
		"CREATE TABLE public.nothing (id int PRIMARY KEY)",
		"ALTER TABLE public.nothing REPLICA IDENTITY NOTHING")
	s := d.source(t, "public.items", "public.nokey", "public.nothing", "public.absent")
	err := s.Open(context.Background(), nil)
	if err == nil {
		t.Fatal("Open succeeded")
	}
	for _, want := range []string{
		"table public.nokey has no primary key", "REPLICA IDENTITY",
		"table public.nothing has REPLICA IDENTITY NOTHING",
		"table public.absent does not exist",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Nothing was published: publishing a keyless table would make
	// PostgreSQL refuse the application's updates to it.
	var pubs int
	if err := d.Conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_publication").Scan(&pubs); err != nil || pubs != 0 {
		t.Fatalf("%d publications (err %v)", pubs, err)
	}
}

func TestKeyLostWhileStreaming(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.t (id int CONSTRAINT t_pk PRIMARY KEY, v text)")
	s := d.open(t, nil, "public.t")
	d.Exec(t,
		"ALTER TABLE public.t DROP CONSTRAINT t_pk",
		"INSERT INTO public.t VALUES (1, 'x')")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := s.Read(ctx)
	if err == nil {
		t.Fatalf("Read returned %d records and no error", len(recs))
	}
	if !strings.Contains(err.Error(), "table public.t has no replica identity key") {
		t.Fatalf("error: %v", err)
	}
}

// A transaction is confirmed to the slot only once all its records are
// acked; until then a restart from the slot replays all of it.
func TestPartlyAckedTransactionIsNotConfirmed(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY)")
	s := d.open(t, nil, "public.items")
	d.Exec(t, "INSERT INTO public.items SELECT generate_series(1, 3)")
	recs := readN(t, s, 3)
	commit := lsnOf(t, recs[0])

	ack(t, s, recs[1].Position)
	closeSource(t, s)
	if confirmed := d.slotConfirmed(t); confirmed >= commit {
		t.Fatalf("slot confirmed %X, at or past the partly acked transaction's commit %X", confirmed, commit)
	}

	// The same Source opens again; from the slot, the whole transaction
	// comes back.
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	again := readN(t, s, 3)
	for i := range recs {
		if string(again[i].Position) != string(recs[i].Position) {
			t.Errorf("replayed record %d has another position", i)
		}
	}
	ack(t, s, again[2].Position)
	closeSource(t, s)
	if confirmed := d.slotConfirmed(t); confirmed <= commit {
		t.Fatalf("slot confirmed %X, not past the fully acked transaction's commit %X", confirmed, commit)
	}
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, "INSERT INTO public.items VALUES (4)")
	if next := readN(t, s, 1); !next[0].Key.Equal(change.Key{{Name: "id", Value: change.Int(4)}}) {
		t.Fatalf("after a full ack, got %s", next[0].String())
	}
}

// A database busy with tables the source does not capture must not keep
// WAL for the slot: with nothing left to ack, the slot follows the WAL.
func TestIdleStreamConfirmsLatestPosition(t *testing.T) {
	d := newDB(t)
	d.Exec(t,
		"CREATE TABLE public.items (id int PRIMARY KEY)",
		"CREATE TABLE public.other (id int PRIMARY KEY)")
	s := d.open(t, nil, "public.items")
	d.Exec(t, "INSERT INTO public.items VALUES (1)")
	ack(t, s, readN(t, s, 1)[0].Position)
	for i := range 20 {
		d.Exec(t, "INSERT INTO public.other VALUES ("+strconv.Itoa(i)+")")
	}
	var walEnd uint64
	if err := d.Conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn() - '0/0'").Scan(&walEnd); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var confirmed uint64
		err := d.Conn.QueryRow(ctx, "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'dvsync'").Scan(&confirmed)
		if err != nil {
			t.Fatal(err)
		}
		if confirmed >= walEnd {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("slot confirmed %X, WAL at %X", confirmed, walEnd)
		case <-tick.C:
		}
	}
}

func TestOriginAndTransactionDetails(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY)")
	s := d.open(t, nil, "public.items")
	before := time.Now().Add(-time.Minute)
	// Origins belong to the cluster, which other tests share.
	var origin string
	if err := d.Conn.QueryRow(context.Background(), "SELECT 'o_' || current_database()").Scan(&origin); err != nil {
		t.Fatal(err)
	}
	d.Exec(t,
		"INSERT INTO public.items VALUES (1)",
		"SELECT pg_replication_origin_create('"+origin+"')")
	t.Cleanup(func() { d.Exec(t, "SELECT pg_replication_origin_drop('"+origin+"')") })
	// A replication origin marks a session's transactions, the way
	// dvsync's PostgreSQL sink marks its own writes.
	tx, err := d.Conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"SELECT pg_replication_origin_session_setup('" + origin + "')", "INSERT INTO public.items VALUES (2)"} {
		if _, err := tx.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	// pg_replication_origin_xact_setup gives the origin a commit LSN,
	// which makes pgoutput send the Origin message.
	if _, err := tx.Exec(context.Background(), "SELECT pg_replication_origin_xact_setup('0/1', now())"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, "SELECT pg_replication_origin_session_reset()")

	recs := readN(t, s, 2)
	if o := recs[0].Origin; o.System != "postgres" || o.Name != "" {
		t.Errorf("ordinary write: origin %+v", o)
	}
	if o := recs[1].Origin; o.System != "postgres" || o.Name != origin {
		t.Errorf("write under origin %s: origin %+v", origin, o)
	}
	for _, r := range recs {
		if r.CommitTime.Before(before) || r.CommitTime.After(time.Now()) || r.CommitTime.Location() != time.UTC {
			t.Errorf("%s: commit time %s", r.String(), r.CommitTime)
		}
		if r.Meta["xid"] == "" || r.Meta["lsn"] == "" {
			t.Errorf("%s: meta %v", r.String(), r.Meta)
		}
	}
	if recs[0].Meta["xid"] == recs[1].Meta["xid"] {
		t.Errorf("two transactions share xid %s", recs[0].Meta["xid"])
	}
}

func ack(t *testing.T, s *Source, pos change.Position) {
	t.Helper()
	if err := s.Ack(context.Background(), pos); err != nil {
		t.Fatal(err)
	}
}

func closeSource(t *testing.T, s *Source) {
	t.Helper()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// lsnOf returns the commit LSN a record's Meta names.
func lsnOf(t *testing.T, r change.Record) uint64 {
	t.Helper()
	hi, lo, ok := strings.Cut(r.Meta["lsn"], "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		t.Fatalf("meta lsn %q", r.Meta["lsn"])
	}
	return h<<32 | l
}
