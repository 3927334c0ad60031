package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/pgcluster"
	"github.com/dvsync/dvsync/internal/testenv"
)

// privateCluster starts a server of the test's own, for tests that
// restart it or change its settings.
func privateCluster(t *testing.T, settings map[string]string) *pgcluster.Cluster {
	t.Helper()
	c, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: t.TempDir(), Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return c
}

// Restarting the server mid-stream costs nothing: the source reconnects,
// resumes from the slot, and every committed row arrives exactly once,
// in commit order.
func TestServerRestartMidStream(t *testing.T) {
	c := privateCluster(t, nil)
	dsn := c.DSN("postgres")
	d := &db{&testenv.DB{DSN: dsn}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	setup, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close(context.Background())
	if _, err := setup.Exec(ctx, "CREATE TABLE public.items (id int PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	s := d.source(t, "public.items")
	if s.Healthy() == nil {
		t.Fatal("healthy before Open")
	}
	if err := s.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}

	// The writer commits ids 1..600 one per transaction, retrying each
	// until it is committed, across the restart; once the restart is
	// over, it commits 601..700, which only a new connection can read.
	const during, total = 600, 700
	var restartErr error
	restarted := make(chan struct{}) // closed once the server is back
	written := make(chan error, 1)
	go func() {
		if err := insertUntilDone(ctx, dsn, 1, during); err != nil {
			written <- err
			return
		}
		select {
		case <-restarted:
		case <-ctx.Done():
			written <- ctx.Err()
			return
		}
		written <- insertUntilDone(ctx, dsn, during+1, total)
	}()

	restarting := false
	seen := map[int64]bool{}
	var last position
	var toAck change.Position
	for len(seen) < total {
		recs, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d of %d rows: %v", len(seen), total, err)
		}
		for _, r := range recs {
			p, err := decodePosition(r.Position)
			if err != nil {
				t.Fatal(err)
			}
			if !p.after(last) {
				t.Fatalf("position %s after %s", p, last)
			}
			last = p
			id := r.Key[0].Value.Int()
			if seen[id] {
				t.Fatalf("row %d delivered twice", id)
			}
			seen[id] = true
		}
		// Acks lag a batch behind, so there are unacked records in
		// flight when the server goes down.
		if toAck != nil {
			ack(t, s, toAck)
		}
		toAck = recs[len(recs)-1].Position
		if !restarting && len(seen) >= 100 {
			restarting = true
			go func() {
				restartErr = c.RestartImmediate(ctx)
				close(restarted)
			}()
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	<-restarted
	if restartErr != nil {
		t.Fatal(restartErr)
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("not healthy after reconnecting: %v", err)
	}
}

// insertUntilDone inserts ids from..to, one transaction each,
// reconnecting and retrying an id until it is committed.
func insertUntilDone(ctx context.Context, dsn string, from, to int) error {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	retry := time.NewTicker(20 * time.Millisecond)
	defer retry.Stop()
	for id := from; id <= to; {
		if conn == nil {
			c, err := pgx.Connect(ctx, dsn)
			if err != nil {
				if ctx.Err() != nil {
					return errors.Join(ctx.Err(), err)
				}
				<-retry.C
				continue
			}
			conn = c
		}
		_, err := conn.Exec(ctx, "INSERT INTO public.items VALUES ($1) ON CONFLICT DO NOTHING", id)
		if err != nil {
			if ctx.Err() != nil {
				return errors.Join(ctx.Err(), err)
			}
			conn.Close(context.Background())
			conn = nil
			continue
		}
		id++
	}
	return nil
}

// A connection cut in the middle of a large streamed transaction, with
// part of it already read, resumes where Read left off: the rest arrives
// once, in order.
func TestConnectionCutMidTransaction(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY, v text)")
	s := streamingSource(t, d, "public.items")
	const rows = 20_000
	d.Exec(t, "INSERT INTO public.items SELECT i, repeat('x', 50) FROM generate_series(1, 20000) i")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	next := 0
	cut := false
	for next < rows {
		recs, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d records: %v", next, err)
		}
		for _, r := range recs {
			p, err := decodePosition(r.Position)
			if err != nil {
				t.Fatal(err)
			}
			if p.index != uint64(next) || r.Key[0].Value.Int() != int64(next+1) {
				t.Fatalf("record %d: %s at %s", next, r.String(), p)
			}
			next++
		}
		if !cut && next >= rows/4 {
			cut = true
			var n int
			err := d.Conn.QueryRow(ctx, `
				SELECT count(pg_terminate_backend(active_pid))
				  FROM pg_replication_slots WHERE slot_name = 'dvsync' AND database = current_database()`).Scan(&n)
			if err != nil || n != 1 {
				t.Fatalf("terminated %d walsenders: %v", n, err)
			}
		}
	}
	if n := d.streamedTxns(t); n == 0 {
		t.Fatal("the transaction was not streamed")
	}
}

// Resuming from a position needs the slot that holds what follows it:
// Open does not quietly create a new one.
func TestResumeWithoutSlot(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY)")
	s := d.open(t, nil, "public.items")
	d.Exec(t, "INSERT INTO public.items VALUES (1)")
	pos := readN(t, s, 1)[0].Position
	closeSource(t, s)
	d.slotConfirmed(t) // waits until the slot is free
	d.Exec(t, "SELECT pg_drop_replication_slot('dvsync')")
	err := s.Open(context.Background(), pos)
	if !errors.Is(err, ErrSlotDropped) {
		t.Fatalf("Open: %v, want ErrSlotDropped", err)
	}
	var n int
	if err := d.Conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'dvsync'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d slots (err %v)", n, err)
	}
}
