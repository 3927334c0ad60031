// Command pgstream measures the PostgreSQL change source. It starts a
// throwaway PostgreSQL cluster, writes -changes inserts in transactions
// of -txn rows while two logical slots hold the WAL, and then reads the
// same changes twice, printing changes/s and peak resident memory:
//
//   - raw: pglogrepl alone, receiving and parsing pgoutput messages (no
//     values decoded, nothing acked): the ceiling for any Go consumer;
//   - source: source/postgres's Read loop, which also decodes every
//     value, keys and positions each record, and acks each batch.
//
// The server decodes the WAL for both, so both rates include its work.
// Run it from the repository root:
//
//	go run ./bench/pgstream -changes 500000
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/dvsync/dvsync/internal/pgcluster"
	"github.com/dvsync/dvsync/source/postgres"
)

func main() {
	changes := flag.Int("changes", 500_000, "inserts to stream")
	txn := flag.Int("txn", 1000, "rows per transaction")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the source phase to this file")
	flag.Parse()
	if err := run(*changes, *txn, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "pgstream:", err)
		os.Exit(1)
	}
}

func run(changes, txn int, profile string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "pgstream:", err)
		}
	}()
	dsn := c.DSN("postgres")

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, q := range []string{
		`CREATE TABLE public.orders (id bigint PRIMARY KEY, customer text NOT NULL, amount numeric(12,2),
		                             placed timestamptz NOT NULL, ref uuid, note text)`,
		"CREATE PUBLICATION bench FOR TABLE public.orders",
		"SELECT pg_create_logical_replication_slot('raw', 'pgoutput')",
		"SELECT pg_create_logical_replication_slot('source', 'pgoutput')",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	began := time.Now()
	for lo := 1; lo <= changes; lo += txn {
		hi := min(lo+txn-1, changes)
		_, err := conn.Exec(ctx, `
			INSERT INTO public.orders
			SELECT i, 'customer ' || (i % 1000), (i % 100000) / 100.0,
			       '2026-01-01 00:00:00+00'::timestamptz + i * interval '1 second',
			       md5(i::text)::uuid, CASE WHEN i % 3 = 0 THEN 'a note about order ' || i END
			  FROM generate_series($1::bigint, $2::bigint) i`, lo, hi)
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
	}
	fmt.Printf("wrote %d inserts in transactions of %d rows in %s\n", changes, txn, time.Since(began).Round(time.Millisecond))
	fmt.Printf("machine: %d CPUs, GOMAXPROCS %d (shared with other work: figures vary between runs)\n", runtime.NumCPU(), runtime.GOMAXPROCS(0))

	resetPeakRSS()
	took, err := readRaw(ctx, dsn, changes)
	if err != nil {
		return fmt.Errorf("raw: %w", err)
	}
	rawRate := float64(changes) / took.Seconds()
	report("raw pglogrepl", changes, took, peakRSS())

	resetPeakRSS()
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	took, err = readSource(ctx, dsn, changes)
	pprof.StopCPUProfile()
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	srcRate := float64(changes) / took.Seconds()
	report("source Read", changes, took, peakRSS())
	fmt.Printf("source / raw: %.0f%%\n", 100*srcRate/rawRate)
	return nil
}

func report(name string, n int, took time.Duration, rss string) {
	fmt.Printf("%-14s %9d changes in %8s: %9.0f changes/s, peak RSS %s\n",
		name, n, took.Round(time.Millisecond), float64(n)/took.Seconds(), rss)
}

// readRaw streams from slot raw with pglogrepl until it has parsed n
// inserts.
func readRaw(ctx context.Context, dsn string, n int) (time.Duration, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return 0, err
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	began := time.Now()
	err = pglogrepl.StartReplication(ctx, conn, "raw", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'bench'"},
	})
	if err != nil {
		return 0, err
	}
	inserts := 0
	for inserts < n {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return 0, err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return 0, pgconn.ErrorResponseToPgError(m)
		case *pgproto3.CopyData:
			if m.Data[0] != pglogrepl.XLogDataByteID {
				continue
			}
			xld, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return 0, err
			}
			lm, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return 0, err
			}
			if _, ok := lm.(*pglogrepl.InsertMessage); ok {
				inserts++
			}
		}
	}
	return time.Since(began), nil
}

// readSource reads n records from the source on slot source, acking
// each batch.
func readSource(ctx context.Context, dsn string, n int) (time.Duration, error) {
	s, err := postgres.New(postgres.Config{DSN: dsn, Slot: "source", Publication: "bench", Tables: []string{"public.orders"}}, nil)
	if err != nil {
		return 0, err
	}
	began := time.Now()
	if err := s.Open(ctx, nil); err != nil {
		return 0, err
	}
	defer s.Close(context.Background())
	got := 0
	for got < n {
		recs, err := s.Read(ctx)
		if err != nil {
			return 0, err
		}
		got += len(recs)
		if err := s.Ack(ctx, recs[len(recs)-1].Position); err != nil {
			return 0, err
		}
	}
	if got != n {
		return 0, fmt.Errorf("read %d records, want %d", got, n)
	}
	return time.Since(began), nil
}

// resetPeakRSS restarts the kernel's peak resident set count (VmHWM), so
// each phase reports its own peak. Linux only; elsewhere a no-op.
func resetPeakRSS() {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS returns VmHWM from /proc/self/status, or "unknown".
func peakRSS() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				return "unknown"
			}
			return fmt.Sprintf("%d MB", kb>>10)
		}
	}
	return "unknown"
}
