// Command pglatency measures dvsync end to end: how long after PostgreSQL
// commits a change the change is durable in Dataverse, and how many
// changes per second the whole pipeline carries.
//
// It starts a throwaway PostgreSQL cluster and the in-process Dataverse
// emulator on a loopback port, and wires the real pipeline as dvsync run
// does: source/postgres → mapping → engine → sink/dataverse (UpsertMultiple
// over HTTP), with a bbolt state store. The sink is wrapped so that each
// record's latency is taken the moment its Write returns, which is when
// the emulator has acknowledged it: now − the record's CommitTime, the
// commit timestamp PostgreSQL sends with the transaction. Both clocks are
// this machine's.
//
// Two phases, in one run:
//
//   - steady: -rate inserts per second for -duration, committed every
//     -tick (so each transaction holds rate×tick rows); it prints the
//     latency percentiles and the rate the pipeline sustained;
//   - burst: -burst rows inserted as fast as PostgreSQL takes them, in
//     transactions of 1,000; it prints changes/s from the first commit to
//     the last row durable in Dataverse.
//
// Run it from the repository root:
//
//	go run ./bench/pglatency -rate 2000 -duration 20s -burst 200000
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/internal/pgcluster"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink/dataverse"
	"github.com/dvsync/dvsync/source/postgres"
	"github.com/dvsync/dvsync/state"
)

const schemaYAML = `
tables:
  - logical_name: account
    entity_set: accounts
    primary_id: accountid
    primary_name: name
    attributes:
      - {name: name, type: string, max_length: 160}
      - {name: accountnumber, type: string, max_length: 20}
      - {name: numberofemployees, type: integer}
      - {name: creditlimit, type: money}
    keys:
      - {name: accountnumber_key, attributes: [accountnumber]}
`

const mappingYAML = `
version: 1
source: {connection: app, table: public.customers}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id,        target: accountnumber, type: string}
  - {source: name,      target: name}
  - {source: employees, target: numberofemployees, type: integer}
  - {source: credit,    target: creditlimit, type: money}
`

func main() {
	rate := flag.Int("rate", 2000, "steady phase: inserts per second")
	duration := flag.Duration("duration", 20*time.Second, "steady phase: how long to insert")
	tick := flag.Duration("tick", 10*time.Millisecond, "steady phase: how often to commit")
	burst := flag.Int("burst", 200_000, "burst phase: rows to insert at once (0 skips it)")
	flag.Parse()
	if *rate < 1 || *tick <= 0 || *duration < *tick || *burst < 0 {
		fmt.Fprintln(os.Stderr, "pglatency: -rate, -tick and -duration must be positive, -duration at least -tick")
		os.Exit(2)
	}
	if err := run(*rate, *duration, *tick, *burst); err != nil {
		fmt.Fprintln(os.Stderr, "pglatency:", err)
		os.Exit(1)
	}
}

func run(rate int, duration, tick time.Duration, burst int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Stop(context.Background()); err != nil {
			fmt.Fprintln(os.Stderr, "pglatency:", err)
		}
	}()
	dsn := c.DSN("postgres")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL,
		employees int, credit numeric(12,2))`); err != nil {
		return err
	}

	url, token, stopEmulator, err := startEmulator()
	if err != nil {
		return err
	}
	defer stopEmulator()

	dir, err := os.MkdirTemp("", "pglatency")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	p, rec, stopPipeline, err := startPipeline(ctx, dsn, url, token, filepath.Join(dir, "state.db"))
	if err != nil {
		return err
	}
	defer stopPipeline()

	fmt.Printf("pglatency: PostgreSQL → source/postgres → mapping → engine → sink/dataverse (UpsertMultiple) → emulator over loopback\n")
	fmt.Printf("GOMAXPROCS=%d, shared machine: figures vary from run to run\n\n", runtime.GOMAXPROCS(0))

	// Steady phase.
	perTick := max(1, int(float64(rate)*tick.Seconds()))
	began := time.Now()
	next := int64(1)
	ticker := time.NewTicker(tick)
	for time.Since(began) < duration {
		if err := insert(ctx, conn, next, perTick); err != nil {
			return err
		}
		next += int64(perTick)
		select {
		case <-ticker.C:
		case <-ctx.Done():
			ticker.Stop()
			return ctx.Err()
		}
	}
	ticker.Stop()
	inserted := int(next - 1)
	insertTime := time.Since(began)
	if err := rec.wait(ctx, inserted, p); err != nil {
		return err
	}
	steady := rec.take()
	fmt.Printf("steady: %d inserts at %d/s target (%d per commit every %s) over %.1f s\n",
		inserted, rate, perTick, tick, insertTime.Seconds())
	fmt.Printf("  committed %.0f changes/s; durable in Dataverse %.0f changes/s (first commit to last durable)\n",
		float64(inserted)/insertTime.Seconds(), float64(inserted)/steady.span().Seconds())
	fmt.Printf("  commit → durable latency: p50 %s  p95 %s  p99 %s  max %s\n\n",
		steady.pct(50), steady.pct(95), steady.pct(99), steady.pct(100))

	if burst == 0 {
		return checkCount(ctx, url, token, inserted)
	}
	began = time.Now()
	for done := 0; done < burst; done += 1000 {
		n := min(1000, burst-done)
		if err := insert(ctx, conn, next, n); err != nil {
			return err
		}
		next += int64(n)
	}
	insertTime = time.Since(began)
	if err := rec.wait(ctx, burst, p); err != nil {
		return err
	}
	b := rec.take()
	fmt.Printf("burst: %d inserts in transactions of 1,000, committed in %.1f s (%.0f/s)\n",
		burst, insertTime.Seconds(), float64(burst)/insertTime.Seconds())
	fmt.Printf("  end to end %.0f changes/s (first commit to last durable, %.1f s)\n",
		float64(burst)/b.span().Seconds(), b.span().Seconds())
	fmt.Printf("  commit → durable latency: p50 %s  p95 %s  p99 %s  max %s\n",
		b.pct(50), b.pct(95), b.pct(99), b.pct(100))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("  Go heap in use at the end %d MB, from the OS %d MB (pipeline and emulator share the process)\n", ms.HeapInuse>>20, ms.Sys>>20)
	return checkCount(ctx, url, token, int(next-1))
}

// checkCount pages through the emulator's accounts and checks that every
// inserted row is there once; the alternate key forbids doubles, so a
// wrong count means a lost row.
func checkCount(ctx context.Context, url, token string, want int) error {
	client, err := odataclient.New(odataclient.Options{BaseURL: url, Tokens: odataclient.StaticToken(token)})
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	n := 0
	pg, err := client.List(ctx, "accounts", odataclient.Query{Select: []string{"accountnumber"}, MaxPageSize: 5000})
	for ; err == nil; pg, err = client.Next(ctx, pg) {
		n += len(pg.Rows)
		if pg.NextLink == "" {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("count accounts: %w", err)
	}
	if n != want {
		return fmt.Errorf("%d accounts in the emulator, want %d", n, want)
	}
	fmt.Printf("\nverified: %d accounts in the emulator, one per inserted row\n", n)
	return nil
}

// insert commits n new customers with ids from first, in one statement.
func insert(ctx context.Context, conn *pgx.Conn, first int64, n int) error {
	_, err := conn.Exec(ctx, `INSERT INTO public.customers
		SELECT i, 'Customer ' || i, (i % 5000)::int, (i % 100000) + 0.25
		  FROM generate_series($1::bigint, $1::bigint + $2 - 1) i`, first, n)
	if err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	return nil
}

// startPipeline wires the pipeline as dvsync run does and runs it until
// stop is called; it returns once the pipeline is ready, so that every
// change committed after it is captured.
func startPipeline(ctx context.Context, dsn, url, token, statePath string) (*engine.Pipeline, *recorder, func(), error) {
	m, err := mapping.Parse([]byte(mappingYAML), "customers.yaml")
	if err != nil {
		return nil, nil, nil, err
	}
	set, err := mapping.Compile([]*mapping.Mapping{m})
	if err != nil {
		return nil, nil, nil, err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	src, err := postgres.New(postgres.Config{DSN: dsn, Tables: set.Tables("app"), Keys: set.Keys("app")}, logger)
	if err != nil {
		return nil, nil, nil, err
	}
	client, err := odataclient.New(odataclient.Options{BaseURL: url, Tokens: odataclient.StaticToken(token)})
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := state.OpenBolt(statePath)
	if err != nil {
		return nil, nil, nil, err
	}
	rec := &recorder{}
	rec.dst = dataverse.New(client, dataverse.Config{EntitySets: set.EntitySets()})
	p, err := engine.New(engine.Config{Name: "app", Logger: logger}, src, set.Mapper("app"), rec, st)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "pglatency: pipeline:", err)
		}
		st.Close()
		client.CloseIdleConnections()
	}
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for p.Ready() != nil {
		select {
		case <-poll.C:
		case err := <-done:
			cancel()
			st.Close()
			return nil, nil, nil, fmt.Errorf("pipeline stopped before it was ready: %w", err)
		case <-ctx.Done():
			stop()
			return nil, nil, nil, fmt.Errorf("pipeline not ready: %w", errors.Join(ctx.Err(), p.Ready()))
		}
	}
	return p, rec, stop, nil
}

// recorder is the Dataverse sink, timing each record as its Write
// returns. Writes run concurrently (one per engine worker).
type recorder struct {
	dst *dataverse.Sink

	mu        sync.Mutex
	latencies []time.Duration
	first     time.Time // earliest commit time seen in this phase
	last      time.Time // latest moment a record became durable
	count     atomic.Int64
}

func (r *recorder) Write(ctx context.Context, batch []change.Record) error {
	if err := r.dst.Write(ctx, batch); err != nil {
		return err
	}
	now := time.Now()
	r.mu.Lock()
	for i := range batch {
		ct := batch[i].CommitTime
		r.latencies = append(r.latencies, now.Sub(ct))
		if r.first.IsZero() || ct.Before(r.first) {
			r.first = ct
		}
	}
	r.last = now
	r.mu.Unlock()
	r.count.Add(int64(len(batch)))
	return nil
}

func (r *recorder) Close(ctx context.Context) error { return r.dst.Close(ctx) }

// wait polls until n records have been written in this phase, or the
// pipeline fails.
func (r *recorder) wait(ctx context.Context, n int, p *engine.Pipeline) error {
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for r.count.Load() < int64(n) {
		select {
		case <-poll.C:
			if err := p.Ready(); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("%d of %d records durable: %w", r.count.Load(), n, ctx.Err())
		}
	}
	if got := r.count.Load(); got != int64(n) {
		return fmt.Errorf("%d records written, want %d", got, n)
	}
	return nil
}

// phase is what one phase recorded.
type phase struct {
	latencies   []time.Duration // sorted
	first, last time.Time
}

// take returns what was recorded so far and starts a new phase.
func (r *recorder) take() phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	ph := phase{latencies: r.latencies, first: r.first, last: r.last}
	slices.Sort(ph.latencies)
	r.latencies, r.first, r.last = nil, time.Time{}, time.Time{}
	r.count.Store(0)
	return ph
}

func (ph phase) span() time.Duration { return ph.last.Sub(ph.first) }

// pct returns the q-th percentile latency (100: the maximum).
func (ph phase) pct(q int) time.Duration {
	if len(ph.latencies) == 0 {
		return 0
	}
	i := min(len(ph.latencies)-1, len(ph.latencies)*q/100)
	return ph.latencies[i].Round(100 * time.Microsecond)
}

func startEmulator() (url, token string, stop func(), err error) {
	schema, err := emulator.ParseSchema([]byte(schemaYAML), "schema.yaml")
	if err != nil {
		return "", "", nil, err
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	srv, err := emulator.New(schema, emulator.Options{Token: token})
	if err != nil {
		return "", "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", "", nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "pglatency: emulator:", err)
		}
	}()
	return "http://" + ln.Addr().String(), token, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}, nil
}
