package postgres

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/dvsync/dvsync/change"
)

// streamingSource opens a source whose server streams any transaction
// past 64 kB of changes.
func streamingSource(t *testing.T, d *db, tables ...string) *Source {
	t.Helper()
	s, err := New(Config{DSN: d.DSN, Tables: tables, StatusInterval: 50 * time.Millisecond, DecodingWorkMem: "64kB"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeSource(t, s) })
	if err := s.Open(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// streamedTxns returns how many transactions the server has streamed
// from the slot.
func (d *db) streamedTxns(t *testing.T) int64 {
	t.Helper()
	var n int64
	err := d.Conn.QueryRow(context.Background(),
		"SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = 'dvsync'").Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A 200,000-row transaction arrives streamed, and comes out whole after
// its commit, in order, with the positions a transaction sent at commit
// would have, while the source's heap stays small.
func TestLargeTransactionStreamed(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY, v text)")
	s := streamingSource(t, d, "public.items")
	const rows = 200_000
	d.Exec(t, "INSERT INTO public.items SELECT i, 'value ' || i FROM generate_series(1, 200000) i")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var (
		n        int
		commit   uint64
		peakHeap uint64
		ms       runtime.MemStats
	)
	for n < rows {
		recs, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d records: %v", n, err)
		}
		for _, r := range recs {
			p, err := decodePosition(r.Position)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				commit = uint64(p.commit)
			}
			if uint64(p.commit) != commit || p.index != uint64(n) || r.Key[0].Value.Int() != int64(n+1) {
				t.Fatalf("record %d: %s at %s", n, r.String(), p)
			}
			n++
		}
		if n%20_000 < len(recs) {
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapAlloc)
		}
	}
	if d.streamedTxns(t) == 0 {
		t.Fatal("the transaction was not streamed")
	}
	// The rows alone, as records, would take well over 64 MB.
	if peakHeap > 64<<20 {
		t.Fatalf("heap reached %d MB while reading a streamed transaction", peakHeap>>20)
	}
	ack(t, s, positionAt(commit, rows-1))
}

func positionAt(commit uint64, index uint64) change.Position {
	return position{commit: pglogrepl.LSN(commit), index: index}.encode()
}

// Nothing of a streamed transaction that rolls back comes out, nor the
// changes of a rolled-back subtransaction of one that commits; the
// indexes of the committed changes leave no gap for them.
func TestStreamedTransactionAborts(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY, v text)")
	s := streamingSource(t, d, "public.items")
	ctx := context.Background()

	tx, err := d.Conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO public.items SELECT i, repeat('x', 100) FROM generate_series(1, 5000) i"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	d.Exec(t, `DO $$
		BEGIN
			INSERT INTO public.items SELECT i, repeat('x', 100) FROM generate_series(1, 3000) i;
			BEGIN
				INSERT INTO public.items SELECT i, repeat('y', 100) FROM generate_series(100001, 103000) i;
				RAISE EXCEPTION 'roll back the subtransaction';
			EXCEPTION WHEN raise_exception THEN
			END;
			INSERT INTO public.items VALUES (3001, 'last');
		END $$`)
	d.Exec(t, "INSERT INTO public.items VALUES (0, 'after')")

	recs := readN(t, s, 3002)
	for i, r := range recs[:3001] {
		p, _ := decodePosition(r.Position)
		if want := int64(i + 1); r.Key[0].Value.Int() != want || p.index != uint64(i) {
			t.Fatalf("record %d: %s at %s, want id %d at index %d", i, r.String(), p, want, i)
		}
	}
	if got := recs[3001].Key[0].Value.Int(); got != 0 {
		t.Fatalf("after the streamed transaction: %s", recs[3001].String())
	}
	if n := d.streamedTxns(t); n < 2 {
		t.Fatalf("%d transactions streamed, want both", n)
	}
}
