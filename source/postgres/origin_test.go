package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// Transactions written under the configured replication origin are
// skipped, and the slot moves past them.
func TestSkipOrigin(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY)")
	var origin string
	if err := d.Conn.QueryRow(context.Background(), "SELECT 'echo_' || current_database()").Scan(&origin); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, "SELECT pg_replication_origin_create('"+origin+"')")
	t.Cleanup(func() { d.Exec(t, "SELECT pg_replication_origin_drop('"+origin+"')") })

	s, err := New(Config{DSN: d.DSN, Tables: []string{"public.items"}, StatusInterval: 50 * time.Millisecond, SkipOrigin: origin}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSource(t, s) })
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	d.Exec(t,
		"INSERT INTO public.items VALUES (1)",
		"SELECT pg_replication_origin_session_setup('"+origin+"')",
		"BEGIN",
		"SELECT pg_replication_origin_xact_setup('0/1', now())",
		"INSERT INTO public.items VALUES (2), (3)",
		"COMMIT",
		"SELECT pg_replication_origin_session_reset()",
		"INSERT INTO public.items VALUES (4)")
	var echoEnd uint64
	if err := d.Conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn() - '0/0'").Scan(&echoEnd); err != nil {
		t.Fatal(err)
	}
	recs := readN(t, s, 2)
	for i, want := range []int64{1, 4} {
		if !recs[i].Key.Equal(change.Key{{Name: "id", Value: change.Int(want)}}) {
			t.Fatalf("record %d: %s, want id %d", i, recs[i].String(), want)
		}
	}
	ack(t, s, recs[1].Position)
	closeSource(t, s)
	if confirmed := d.slotConfirmed(t); confirmed < echoEnd {
		t.Fatalf("slot confirmed %X, short of %X", confirmed, echoEnd)
	}
}

// TRUNCATE comes out as one keyless OpTruncate record per captured
// table, in its place among the transaction's changes.
func TestTruncate(t *testing.T) {
	d := newDB(t)
	d.Exec(t,
		"CREATE TABLE public.a (id int PRIMARY KEY)",
		"CREATE TABLE public.b (id int PRIMARY KEY)",
		"CREATE TABLE public.other (id int PRIMARY KEY)")
	s := d.open(t, nil, "public.a", "public.b")
	d.Exec(t,
		"INSERT INTO public.a VALUES (1)",
		"TRUNCATE public.a, public.other, public.b RESTART IDENTITY",
		"INSERT INTO public.b VALUES (2)")
	recs := readN(t, s, 4)
	want := []struct {
		op    change.Op
		table string
	}{{change.OpInsert, "public.a"}, {change.OpTruncate, "public.a"}, {change.OpTruncate, "public.b"}, {change.OpInsert, "public.b"}}
	for i, w := range want {
		r := recs[i]
		if r.Op != w.op || r.Table != w.table {
			t.Fatalf("record %d: %s, want %s %s", i, r.String(), w.op, w.table)
		}
		if r.Op == change.OpTruncate && (r.Key != nil || r.After != nil || r.Meta["truncate"] != "restart_identity") {
			t.Errorf("record %d: key %v, after %v, meta %v", i, r.Key, r.After, r.Meta)
		}
	}
	p1, _ := decodePosition(recs[1].Position)
	p2, _ := decodePosition(recs[2].Position)
	if p1.commit != p2.commit || !p2.after(p1) {
		t.Errorf("truncate positions %s and %s", p1, p2)
	}
}
