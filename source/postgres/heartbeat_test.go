package postgres

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/internal/testenv"
)

// poll calls f every few milliseconds until it returns true, failing the
// test after 30 seconds with what describes the last attempt.
func poll(t *testing.T, what func() string, f func(ctx context.Context) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !f(ctx) {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting: %s", what())
		case <-tick.C:
		}
	}
}

// With no writes at all, the heartbeat puts WAL of the database in the
// slot's path, and the slot confirms past it.
func TestHeartbeatAdvancesQuietSlot(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY)")
	// A second slot, decoding to text, shows what the WAL holds.
	probe := "probe_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	d.Exec(t, "SELECT pg_create_logical_replication_slot('"+probe+"', 'test_decoding')")
	s, err := New(Config{DSN: d.DSN, Tables: []string{"public.items"}, StatusInterval: 50 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSource(t, s) })
	if _, ok := s.SlotLag(); ok {
		t.Fatal("slot lag known before Open")
	}
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}

	var beat uint64
	poll(t, func() string { return "no heartbeat message in the WAL" }, func(ctx context.Context) bool {
		err := d.Conn.QueryRow(ctx, `
			SELECT lsn - '0/0' FROM pg_logical_slot_peek_changes($1, NULL, NULL)
			 WHERE data LIKE '%prefix: `+heartbeatPrefix+`%' LIMIT 1`, probe).Scan(&beat)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true
	})
	var confirmed uint64
	poll(t, func() string {
		return "slot confirmed " + strconv.FormatUint(confirmed, 16) + ", heartbeat at " + strconv.FormatUint(beat, 16)
	},
		func(ctx context.Context) bool {
			err := d.Conn.QueryRow(ctx, "SELECT confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'dvsync'").Scan(&confirmed)
			if err != nil {
				t.Fatal(err)
			}
			return confirmed > beat
		})
	d.Exec(t, "SELECT pg_drop_replication_slot('"+probe+"')")
}

// SlotLag reports the WAL the slot has not confirmed: it grows while a
// record waits for its ack and falls back once it is acked.
func TestSlotLag(t *testing.T) {
	d := newDB(t)
	d.Exec(t,
		"CREATE TABLE public.items (id int PRIMARY KEY)",
		"CREATE TABLE public.other (id int PRIMARY KEY, v text)")
	s, err := New(Config{DSN: d.DSN, Tables: []string{"public.items"}, StatusInterval: 50 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSource(t, s) })
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, "INSERT INTO public.items VALUES (1)")
	recs := readN(t, s, 1)
	// Two megabytes of WAL the slot cannot confirm while the record
	// before them waits for its ack.
	d.Exec(t, "INSERT INTO public.other SELECT i, repeat('x', 1000) FROM generate_series(1, 2000) i")
	const big = 1 << 20
	var lag int64
	poll(t, func() string { return "slot lag " + strconv.FormatInt(lag, 10) }, func(context.Context) bool {
		lag, _ = s.SlotLag()
		return lag > big
	})
	ack(t, s, recs[len(recs)-1].Position)
	poll(t, func() string { return "slot lag " + strconv.FormatInt(lag, 10) }, func(context.Context) bool {
		lag, _ = s.SlotLag()
		return lag >= 0 && lag < big
	})
	closeSource(t, s)
	if _, ok := s.SlotLag(); ok {
		t.Fatal("slot lag known after Close")
	}
}

// A slot the server invalidated for keeping too much WAL stops the source
// with ErrSlotLost; it is not recreated.
func TestSlotLost(t *testing.T) {
	c := privateCluster(t, map[string]string{"max_slot_wal_keep_size": "1MB", "wal_keep_size": "0"})
	d := &db{&testenv.DB{DSN: c.DSN("postgres")}}
	conn, err := pgx.Connect(context.Background(), d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	d.Conn = conn
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY, v text)")
	s := d.open(t, nil, "public.items")
	d.Exec(t, "INSERT INTO public.items VALUES (1, 'x')")
	readN(t, s, 1) // and never acked: the slot must keep this WAL
	for i := range 4 {
		d.Exec(t,
			"INSERT INTO public.items VALUES ("+strconv.Itoa(i+2)+", 'x')",
			"SELECT pg_switch_wal()")
	}
	d.Exec(t, "CHECKPOINT")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		_, err := s.Read(ctx)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrSlotLost) {
			t.Fatalf("Read: %v, want ErrSlotLost", err)
		}
		break
	}
	if err := s.Healthy(); !errors.Is(err, ErrSlotLost) {
		t.Errorf("Healthy: %v, want ErrSlotLost", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dvsync' AND wal_status = 'lost'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("lost slots: %d (err %v)", n, err)
	}
}
