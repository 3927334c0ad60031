// Command dvbench is dvsync's benchmark suite. It starts its own
// PostgreSQL cluster, Dataverse emulator (in a child process, so that
// dvsync's memory and CPU are measured apart from it) and Kafka-protocol
// broker (kfake, in process over TCP), runs each scenario, and prints a
// table of dvsync's figure beside the limit of the same workload measured
// in the same run: how fast PostgreSQL hands out the rows, how fast the
// emulator takes them, how fast a bare pglogrepl or kafka-go client reads
// the same changes, how fast the emulator posts webhooks to a receiver
// that only counts them. docs/performance.md describes each scenario.
//
// Every scenario checks afterwards that the target equals the source; a
// lossy run fails the scenario, and the program exits 1.
//
//	go run ./bench/dvbench -quick -json bench.json
//	go run ./bench/dvbench -scenarios backfill,streaming -rows 200000
//
// The machine is usually shared: figures vary between runs, ratios much
// less. Compare two commits by their -json files.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dvsync/dvsync/bench/internal/benchenv"
)

// sizes are the scenarios' flags.
type sizes struct {
	Rows          int
	Changes       int
	TxnRows       int
	SteadyRate    int
	SteadyFor     time.Duration
	ThrottledRows int
	Window        time.Duration
	ThrottleScale int
	Messages      int
	Inbound       int
}

// quickSizes replace the defaults under -quick, for flags not given.
var quickSizes = map[string]string{
	"rows":            "50000",
	"changes":         "20000",
	"steady-duration": "15s",
	"throttled-rows":  "20000",
	"throttle-scale":  "1",
	"messages":        "50000",
	"inbound":         "1000",
}

// sizeFlags are the flags recorded in the JSON report.
var sizeFlags = []string{"rows", "changes", "txn-rows", "steady-rate", "steady-duration", "throttled-rows", "throttle-window", "throttle-scale", "messages", "inbound"}

var allScenarios = []string{"backfill", "streaming", "steady", "throttled", "kafka", "inbound", "outbound"}

func main() {
	if child, err := benchenv.ServeEmulatorChild(); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, "dvbench emulator:", err)
			os.Exit(1)
		}
		return
	}
	var s sizes
	flag.IntVar(&s.Rows, "rows", 1_000_000, "backfill: rows in the table")
	flag.IntVar(&s.Changes, "changes", 200_000, "streaming: inserts in each of the two phases")
	flag.IntVar(&s.TxnRows, "txn-rows", 10, "streaming: rows per transaction in the many-small-transactions phase")
	flag.IntVar(&s.SteadyRate, "steady-rate", 1000, "steady: inserts per second")
	flag.DurationVar(&s.SteadyFor, "steady-duration", 60*time.Second, "steady: how long to insert")
	flag.IntVar(&s.ThrottledRows, "throttled-rows", 1_000_000, "throttled: rows backfilled under service protection limits")
	flag.DurationVar(&s.Window, "throttle-window", 2*time.Second,
		"throttled: the limits' window; Dataverse's 5-minute limits are scaled to it")
	flag.IntVar(&s.ThrottleScale, "throttle-scale", 10,
		"throttled: Dataverse's request and execution-time budgets times this, as for that many users or web servers sharing the load")
	flag.IntVar(&s.Messages, "messages", 200_000, "kafka: messages in the topic")
	flag.IntVar(&s.Inbound, "inbound", 100_000, "inbound, outbound: accounts created in Dataverse for each feed")
	quick := flag.Bool("quick", false, "small sizes, under two minutes in all (flags given explicitly win)")
	only := flag.String("scenarios", strings.Join(allScenarios, ","), "scenarios to run, comma-separated")
	jsonOut := flag.String("json", "", "also write the results as JSON to this file")
	commit := flag.String("commit", "", "label for the JSON (default: git describe --always --dirty)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile at the end to this file")
	traceOut := flag.String("trace", "", "write an execution trace of the whole run to this file (go tool trace; -pprof=sync shows where goroutines wait)")
	flag.StringVar(&benchenv.EmulatorCPUProfile, "emulator-cpuprofile", "",
		"write a CPU profile of each emulator child to this file name followed by .1, .2, …")
	flag.Parse()

	if *quick {
		given := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { given[f.Name] = true })
		for name, v := range quickSizes {
			if !given[name] {
				_ = flag.Set(name, v)
			}
		}
	}
	scenarios := strings.Split(*only, ",")
	for _, sc := range scenarios {
		if !slices.Contains(allScenarios, sc) {
			fmt.Fprintf(os.Stderr, "dvbench: -scenarios: unknown %q (known: %s)\n", sc, strings.Join(allScenarios, ", "))
			os.Exit(2)
		}
	}
	if s.Rows < 1 || s.Changes < 1 || s.TxnRows < 1 || s.SteadyRate < 1 || s.SteadyFor <= 0 ||
		s.ThrottledRows < 1 || s.Window <= 0 || s.ThrottleScale < 1 || s.Messages < 1 || s.Inbound < 1 {
		fmt.Fprintln(os.Stderr, "dvbench: sizes, rates and durations must be positive")
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "dvbench:", err)
			os.Exit(1)
		}
	}
	if *traceOut != "" {
		f, err := os.Create(*traceOut)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "dvbench:", err)
			os.Exit(1)
		}
	}
	rep := &Report{
		Commit: *commit, Started: time.Now().UTC().Format(time.RFC3339), GoVersion: runtime.Version(),
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Quick: *quick, Sizes: map[string]string{},
	}
	for _, name := range sizeFlags {
		rep.Sizes[name] = flag.Lookup(name).Value.String()
	}
	if rep.Commit == "" {
		rep.Commit = gitDescribe()
	}
	err := run(rep, s, scenarios)
	pprof.StopCPUProfile()
	trace.Stop()
	if err == nil && *memProfile != "" {
		err = writeHeapProfile(*memProfile)
	}
	if err == nil && *jsonOut != "" {
		err = rep.writeJSON(*jsonOut)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvbench:", err)
		os.Exit(1)
	}
	if rep.failed() {
		fmt.Fprintln(os.Stderr, "dvbench: a scenario failed")
		os.Exit(1)
	}
}

// run runs the scenarios in order, printing the table at the end. A
// scenario's failure is recorded in its Result; run's own error is for
// the environment failing to start.
func run(rep *Report, s sizes, scenarios []string) error {
	// An interrupt fails the running scenario and lets every deferred
	// stop run, so that no cluster or emulator outlives the program.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Hour)
	defer cancel()
	fmt.Printf("dvbench %s: %d CPUs, GOMAXPROCS %d (a shared machine: figures vary between runs)\n",
		rep.Commit, rep.CPUs, rep.GOMAXPROCS)
	var pg *benchenv.Postgres
	if slices.ContainsFunc(scenarios, func(sc string) bool { return sc != "kafka" && sc != "outbound" }) {
		var err error
		if pg, err = benchenv.StartPostgres(ctx); err != nil {
			return err
		}
		defer pg.Stop()
	}
	for _, sc := range scenarios {
		fmt.Printf("==> %s\n", sc)
		began := time.Now()
		var results []Result
		switch sc {
		case "backfill":
			results = []Result{benchBackfill(ctx, pg, s.Rows)}
		case "streaming":
			results = benchStreaming(ctx, pg, s.Changes, s.TxnRows)
		case "steady":
			results = []Result{benchSteady(ctx, pg, s.SteadyRate, s.SteadyFor)}
		case "throttled":
			results = []Result{benchThrottled(ctx, pg, s.ThrottledRows, s.Window, s.ThrottleScale)}
		case "kafka":
			results = []Result{benchKafka(ctx, s.Messages)}
		case "inbound":
			results = benchInbound(ctx, pg, s.Inbound)
		case "outbound":
			results = benchOutbound(ctx, s.Inbound)
		}
		for i := range results {
			if results[i].Seconds == 0 {
				results[i].Seconds = time.Since(began).Seconds()
			}
			switch res := results[i]; {
			case res.Error != "":
				fmt.Printf("    %s FAILED: %s\n", res.Scenario, res.Error)
			case len(res.Limits) > 0:
				fmt.Printf("    %s: %s, %.0f%% of %s\n", res.Scenario, res.Dvsync, 100*res.Limits[0].Ratio, res.Limits[0].Figure)
			default:
				fmt.Printf("    %s: %s\n", res.Scenario, res.Dvsync)
			}
		}
		rep.Results = append(rep.Results, results...)
	}
	fmt.Println()
	rep.printTable(os.Stdout)
	return nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func gitDescribe() string {
	out, err := exec.Command("git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// failed returns r marked failed with err's text.
func failed(r Result, err error) Result {
	r.Error = err.Error()
	return r
}
