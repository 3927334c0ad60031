// Command pgbackfill measures the PostgreSQL backfill: it loads a table of
// -rows rows into a throwaway PostgreSQL cluster and reads it three ways,
// printing rows/s and peak memory for each:
//
//   - source: the snapshot source alone, read and acked in a loop;
//   - no-op sink: source, engine and mapping, writing to a sink that
//     discards, which is the backfill's cost without Dataverse's;
//   - emulator: the whole backfill into the Dataverse emulator over HTTP.
//
// The emulator runs in a child process (this program re-executed), so
// that the peak resident memory reported is dvsync's own and not the
// emulator's copy of the rows. Run it from the repository root:
//
//	go run ./bench/pgbackfill -rows 1000000
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/internal/pgcluster"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/dataverse"
	"github.com/dvsync/dvsync/source/postgres"
	"github.com/dvsync/dvsync/state"
)

// backfillInFlight is the engine's MaxInFlight, as 'dvsync backfill'
// sets it.
const backfillInFlight = 20_000

const serveEmulatorEnv = "PGBACKFILL_SERVE_EMULATOR"

func main() {
	if schema := os.Getenv(serveEmulatorEnv); schema != "" {
		if err := serveEmulator(schema); err != nil {
			fmt.Fprintln(os.Stderr, "pgbackfill emulator:", err)
			os.Exit(1)
		}
		return
	}
	rows := flag.Int("rows", 1_000_000, "rows in the table")
	examples := flag.String("examples", "deploy/examples", "folder with schema.yaml and mappings/customers.yaml")
	pageSize := flag.Int("page-size", postgres.DefaultPageSize, "rows per query")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "pgbackfill:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*rows, *examples, *pageSize); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "pgbackfill:", err)
		os.Exit(1)
	}
}

func run(rows int, examples string, pageSize int) error {
	ctx := context.Background()
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = cluster.Stop(context.Background()) }()
	dsn := cluster.DSN("postgres")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	began := time.Now()
	_, err = conn.Exec(ctx, `CREATE TABLE public.customers (
		id bigint PRIMARY KEY, name text NOT NULL, email text, phone text,
		credit_limit numeric(12,2), employees int)`)
	if err == nil {
		_, err = conn.Exec(ctx, `INSERT INTO public.customers
			SELECT g, 'Customer ' || g, 'c' || g || '@example.com', CASE WHEN g % 3 = 0 THEN NULL ELSE '+1 555 ' || g END,
			       (g % 100000) * 1.25, g % 5000
			  FROM generate_series(1, $1::int) g`, rows)
	}
	if err == nil {
		_, err = conn.Exec(ctx, "VACUUM ANALYZE public.customers")
	}
	conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("load table: %w", err)
	}
	fmt.Printf("pgbackfill: %d rows loaded in %s; GOMAXPROCS=%d, %d CPUs (shared machine: figures vary between runs)\n",
		rows, time.Since(began).Round(time.Millisecond), runtime.GOMAXPROCS(0), runtime.NumCPU())

	ms, err := mapping.LoadFiles([]string{examples + "/mappings/customers.yaml"})
	if err != nil {
		return err
	}
	set, err := mapping.Compile(ms)
	if err != nil {
		return err
	}
	cfg := func(slot string) postgres.Config {
		return postgres.Config{DSN: dsn, Slot: slot, Publication: "bench", Tables: []string{"public.customers"}}
	}
	opts := postgres.SnapshotOptions{PageSize: pageSize}

	if err := measure("source alone", rows, nil, func() error { return readAlone(ctx, cfg("bench_source"), opts) }); err != nil {
		return err
	}
	if err := measure("engine + no-op sink", rows, nil, func() error {
		return backfill(ctx, cfg("bench_noop"), opts, set, discard{})
	}); err != nil {
		return err
	}

	em, err := startEmulator(examples + "/schema.yaml")
	if err != nil {
		return err
	}
	defer em.stop()
	client, err := odataclient.New(odataclient.Options{BaseURL: em.url, Tokens: odataclient.StaticToken(em.token)})
	if err != nil {
		return err
	}
	dst := dataverse.New(client, dataverse.Config{EntitySets: set.EntitySets()})
	if err := measure("engine + Dataverse sink into the emulator", rows, em, func() error {
		return backfill(ctx, cfg("bench_emulator"), opts, set, dst)
	}); err != nil {
		return err
	}
	fmt.Printf("  emulator process peak RSS %s\n", em.peakRSS())
	return nil
}

// measure runs f and prints its rate, this process's peak RSS and the
// CPU time it used while f ran, and the emulator's CPU time if there is one:
// which of the two is busy shows where the bound is.
func measure(name string, rows int, em *childEmulator, f func() error) error {
	runtime.GC()
	resetPeakRSS()
	cpu0, emCPU0 := cpuTime("/proc/self/stat"), em.cpu()
	began := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	took := time.Since(began)
	fmt.Printf("%-42s %8d rows in %7s %8.0f rows/s  peak RSS %s  CPU %s",
		name, rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(), peakRSS("/proc/self/status"),
		(cpuTime("/proc/self/stat") - cpu0).Round(10*time.Millisecond))
	if em != nil {
		fmt.Printf("  (emulator CPU %s)", (em.cpu() - emCPU0).Round(10*time.Millisecond))
	}
	fmt.Println()
	return nil
}

// cpuTime reads the user plus system CPU time from a /proc stat file, in
// clock ticks of 10ms (Linux's USER_HZ).
func cpuTime(stat string) time.Duration {
	b, err := os.ReadFile(stat)
	if err != nil {
		return 0
	}
	// The command name in parentheses may hold spaces: count fields after it.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// readAlone reads the snapshot to the end without an engine, acking each
// batch as it arrives.
func readAlone(ctx context.Context, cfg postgres.Config, opts postgres.SnapshotOptions) error {
	snap, err := postgres.NewSnapshot(cfg, opts, nil)
	if err != nil {
		return err
	}
	if err := snap.Open(ctx, nil); err != nil {
		return err
	}
	defer snap.Close(ctx)
	readCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { <-snap.Done(); cancel() }()
	for {
		recs, err := snap.Read(readCtx)
		if err != nil {
			if readCtx.Err() != nil {
				return nil
			}
			return err
		}
		if err := snap.Ack(ctx, recs[len(recs)-1].Position); err != nil {
			return err
		}
	}
}

// backfill runs the snapshot through an engine pipeline into dst, as
// 'dvsync backfill' does, with a throwaway state store.
func backfill(ctx context.Context, cfg postgres.Config, opts postgres.SnapshotOptions, set *mapping.Set, dst sink.Sink) error {
	dir, err := os.MkdirTemp("", "pgbackfill-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := state.OpenBolt(dir + "/state.db")
	if err != nil {
		return err
	}
	defer st.Close()
	snap, err := postgres.NewSnapshot(cfg, opts, nil)
	if err != nil {
		return err
	}
	p, err := engine.New(engine.Config{
		Name: "backfill/bench", MaxInFlight: backfillInFlight, Logger: slog.New(slog.DiscardHandler),
	}, snap, set.Mapper("app"), dst, st)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	finished := make(chan struct{})
	go func() {
		select {
		case <-snap.Done():
			close(finished)
			cancel()
		case <-runCtx.Done():
		}
	}()
	if err := p.Run(runCtx); err != nil {
		return err
	}
	select {
	case <-finished:
	default:
		return errors.New("pipeline stopped before the backfill finished")
	}
	if s := p.Stats(); s.DeadLettered > 0 {
		return fmt.Errorf("%d rows dead-lettered", s.DeadLettered)
	}
	return nil
}

// discard is a sink that keeps nothing.
type discard struct{}

func (discard) Write(context.Context, []change.Record) error { return nil }
func (discard) Close(context.Context) error                  { return nil }

// resetPeakRSS resets the kernel's high-water mark of this process's
// resident memory (Linux: writing 5 to clear_refs), so each measurement
// reports its own peak.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads VmHWM, the peak resident set size, from a status file.
func peakRSS(status string) string {
	b, err := os.ReadFile(status)
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				return "unknown"
			}
			return fmt.Sprintf("%.0f MiB", float64(kb)/1024)
		}
	}
	return "unknown"
}

// childEmulator is the emulator running in a child process.
type childEmulator struct {
	cmd        *exec.Cmd
	stdin      io.Closer
	url, token string
}

func startEmulator(schema string) (*childEmulator, error) {
	token := strconv.FormatInt(time.Now().UnixNano(), 36)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEmulatorEnv+"="+schema, "PGBACKFILL_TOKEN="+token)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("emulator did not start: %w", err)
	}
	return &childEmulator{cmd: cmd, stdin: stdin, url: strings.TrimSpace(line), token: token}, nil
}

// cpu returns the CPU time the emulator has used; zero for a nil one.
func (e *childEmulator) cpu() time.Duration {
	if e == nil {
		return 0
	}
	return cpuTime(fmt.Sprintf("/proc/%d/stat", e.cmd.Process.Pid))
}

func (e *childEmulator) peakRSS() string {
	return peakRSS(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
}

func (e *childEmulator) stop() {
	e.stdin.Close()
	_ = e.cmd.Wait()
}

// serveEmulator is the child: it serves the emulator on a free loopback
// port, prints its URL, and exits when its stdin closes.
func serveEmulator(schemaPath string) error {
	schema, err := emulator.LoadSchema(schemaPath)
	if err != nil {
		return err
	}
	srv, err := emulator.New(schema, emulator.Options{Token: os.Getenv("PGBACKFILL_TOKEN")})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	fmt.Printf("http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return hs.Close()
}
