package postgres

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// db is a fresh database of the shared test cluster (testenv.DB) with
// this package's helpers.
type db struct{ *testenv.DB }

func newDB(t *testing.T) *db { return &db{testenv.NewDB(t)} }

// source returns an unopened source for tables, closed at cleanup.
func (d *db) source(t *testing.T, tables ...string) *Source {
	t.Helper()
	s, err := New(Config{DSN: d.DSN, Tables: tables, StatusInterval: 50 * time.Millisecond}, testLogger(t))
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

// open returns an open source for tables, closed at cleanup.
func (d *db) open(t *testing.T, from change.Position, tables ...string) *Source {
	t.Helper()
	s := d.source(t, tables...)
	if err := s.Open(context.Background(), from); err != nil {
		t.Fatal(err)
	}
	return s
}

// slotConfirmed waits until no session streams from the slot (a closed
// source's walsender exits shortly after), then returns its confirmed LSN.
func (d *db) slotConfirmed(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var active bool
		var lsn uint64
		err := d.Conn.QueryRow(ctx, `SELECT active, confirmed_flush_lsn - '0/0' FROM pg_replication_slots WHERE slot_name = 'dvsync'`).Scan(&active, &lsn)
		if err != nil {
			t.Fatal(err)
		}
		if !active {
			return lsn
		}
		select {
		case <-ctx.Done():
			t.Fatal("slot still active")
		case <-tick.C:
		}
	}
}

// readN reads exactly n records.
func readN(t *testing.T, s *Source, n int) []change.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []change.Record
	for len(got) < n {
		recs, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d of %d records: %v", len(got), n, err)
		}
		got = append(got, recs...)
	}
	if len(got) > n {
		t.Fatalf("wanted %d records, got %d; extra: %s", n, len(got), got[n].String())
	}
	return got
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
