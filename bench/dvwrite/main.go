// Command dvwrite measures how fast the Dataverse sink writes rows to an
// in-process emulator over loopback HTTP: through single requests, $batch
// and UpsertMultiple, at several concurrency levels, and once more with
// the emulator's service protection limits on (Dataverse's 6,000 requests
// per 5 minutes, scaled down to the same rate over a short window), to
// show the sink stays within them without failing a row.
//
//	go run ./bench/dvwrite -rows 100000 -levels 1,8,52
//
// Every run writes to a fresh emulator and checks afterwards that every row
// is there exactly once.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink/dataverse"
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

// writeBatch is the number of records per Write, the engine's largest
// batch; writers is the number of Writes in flight, as the engine's
// workers would have.
const (
	writeBatch = 1000
	writers    = 8
)

func main() {
	rows := flag.Int("rows", 100_000, "rows written per run")
	levels := flag.String("levels", "1,8,52", "concurrency levels, comma-separated")
	batchSize := flag.Int("batch", 100, "rows per $batch or UpsertMultiple")
	singleRows := flag.Int("single-rows", 0, "rows for single-request runs (0: same as -rows)")
	throttled := flag.Bool("throttled", true, "add runs with the emulator's service protection limits on")
	flag.Parse()

	var lv []int
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > dataverse.MaxConcurrency {
			fmt.Fprintf(os.Stderr, "dvwrite: bad level %q\n", f)
			os.Exit(2)
		}
		lv = append(lv, n)
	}
	if *singleRows == 0 {
		*singleRows = *rows
	}
	schema, err := emulator.ParseSchema([]byte(schemaYAML), "schema.yaml")
	if err != nil {
		fatal(err)
	}

	fmt.Printf("dvwrite: %d rows per run, %d rows per request, %d Writes of %d in flight; GOMAXPROCS-bound, shared machine\n\n",
		*rows, *batchSize, writers, writeBatch)
	fmt.Printf("%-28s %6s %9s %10s %9s %9s %8s\n", "mode", "conc", "rows", "seconds", "rows/s", "requests", "429s")
	for _, mode := range []struct{ name, mode string }{
		{"single requests", dataverse.ModeSingle},
		{"$batch", dataverse.ModeBatch},
		{"UpsertMultiple", dataverse.ModeAuto},
	} {
		n := *rows
		if mode.mode == dataverse.ModeSingle {
			n = *singleRows
		}
		for _, c := range lv {
			run(schema, mode.name, mode.mode, c, n, *batchSize, emulator.Limits{DOPHint: dataverse.MaxConcurrency})
		}
	}
	if *throttled {
		// Dataverse allows 6,000 requests per 5 minutes (20/s) and 52 at
		// once; the same rate over a 3-second window trips within the run.
		limits := emulator.Limits{Requests: 60, Window: 3 * time.Second, Concurrent: 52, DOPHint: dataverse.MaxConcurrency}
		fmt.Println("\nwith service protection on: 60 requests per 3 s sliding window (6,000 / 5 min scaled), 52 concurrent")
		for _, mode := range []struct{ name, mode string }{
			{"$batch, throttled", dataverse.ModeBatch},
			{"UpsertMultiple, throttled", dataverse.ModeAuto},
		} {
			run(schema, mode.name, mode.mode, dataverse.MaxConcurrency, *rows, *batchSize, limits)
		}
	}
}

func run(schema *emulator.Schema, name, mode string, concurrency, rows, batchSize int, limits emulator.Limits) {
	ctx := context.Background()
	url, token, stop := startEmulator(schema, limits)
	defer stop()
	client, err := odataclient.New(odataclient.Options{BaseURL: url, Tokens: odataclient.StaticToken(token)})
	if err != nil {
		fatal(err)
	}
	defer client.CloseIdleConnections()
	sink := dataverse.New(client, dataverse.Config{
		Concurrency: concurrency,
		Mode:        mode,
		BatchSize:   batchSize,
		EntitySets:  map[string]string{"account": "accounts"},
	})
	defer sink.Close(ctx)

	records := make([]change.Record, rows)
	for i := range records {
		number := fmt.Sprintf("A%07d", i)
		records[i] = change.Record{
			Op:    change.OpInsert,
			Table: "account",
			Key:   change.Key{{Name: "accountnumber", Value: change.Text(number)}},
			After: change.Row{
				{Name: "accountnumber", Value: change.Text(number)},
				{Name: "name", Value: change.Text("Account " + number)},
				{Name: "numberofemployees", Value: change.Int(int64(i % 5000))},
				{Name: "creditlimit", Value: change.MustDecimal(strconv.Itoa(i) + ".25")},
			},
		}
	}

	start := time.Now()
	var (
		mu     sync.Mutex
		failed error
		next   = make(chan []change.Record)
		wg     sync.WaitGroup
	)
	for range writers {
		wg.Go(func() {
			for batch := range next {
				// The engine retries what the sink gives back; so does
				// the benchmark, so that a throttled run still completes.
				for {
					err := sink.Write(ctx, batch)
					if err == nil {
						break
					}
					if _, ok := change.RetryWait(err); !ok {
						mu.Lock()
						failed = errors.Join(failed, err)
						mu.Unlock()
						break
					}
				}
			}
		})
	}
	for i := 0; i < len(records); i += writeBatch {
		next <- records[i:min(i+writeBatch, len(records))]
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	if failed != nil {
		fatal(fmt.Errorf("%s at %d: %w", name, concurrency, failed))
	}
	if n := countRows(ctx, client); n != rows {
		fatal(fmt.Errorf("%s at %d: %d rows in the emulator, want %d", name, concurrency, n, rows))
	}
	st := sink.Stats()
	fmt.Printf("%-28s %6d %9d %10.2f %9.0f %9d %8d\n", name, concurrency, rows, elapsed.Seconds(),
		float64(rows)/elapsed.Seconds(), st.Requests, st.Throttled)
}

// countRows pages through the table; a missing or doubled row shows as a
// wrong count (the alternate key forbids doubles anyway).
func countRows(ctx context.Context, c *odataclient.Client) int {
	n := 0
	p, err := c.List(ctx, "accounts", odataclient.Query{Select: []string{"accountnumber"}, MaxPageSize: 5000})
	for ; err == nil; p, err = c.Next(ctx, p) {
		n += len(p.Rows)
		if p.NextLink == "" {
			return n
		}
	}
	fatal(err)
	return 0
}

func startEmulator(schema *emulator.Schema, limits emulator.Limits) (url, token string, stop func()) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token = hex.EncodeToString(b)
	srv, err := emulator.New(schema, emulator.Options{Token: token, Limits: limits})
	if err != nil {
		fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }() // ends with ErrServerClosed at stop
	return "http://" + ln.Addr().String(), token, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "dvwrite:", err)
	os.Exit(1)
}
