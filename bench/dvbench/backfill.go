package main

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/dvsync/dvsync/bench/internal/benchenv"
	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/sink/dataverse"
)

// ingestWorkers is how many UpsertMultiple requests the emulator-ingest
// limit keeps in flight: the emulator's x-ms-dop-hint, which is also the
// most the Dataverse sink sends it at once.
const ingestWorkers = 4

// load empties the table and fills it with rows rows.
func load(ctx context.Context, pg *benchenv.Postgres, rows int) error {
	if err := pg.Truncate(ctx); err != nil {
		return err
	}
	for first := 1; first <= rows; first += 500_000 {
		if err := pg.Insert(ctx, int64(first), min(500_000, rows-first+1)); err != nil {
			return err
		}
	}
	return pg.Exec(ctx, "VACUUM ANALYZE "+benchenv.Table)
}

// benchBackfill loads rows rows and backfills them into the emulator as
// 'dvsync backfill' does. Limits: COPY … TO STDOUT of the same table, and
// the emulator's UpsertMultiple ingest of the same rows in requests of
// the sink's size.
func benchBackfill(ctx context.Context, pg *benchenv.Postgres, rows int) Result {
	r := Result{ID: "backfill", Scenario: "backfill PostgreSQL → Dataverse"}
	if err := load(ctx, pg, rows); err != nil {
		return failed(r, err)
	}

	began := time.Now()
	n, err := pg.CopyOut(ctx)
	if err != nil {
		return failed(r, err)
	}
	copyRate := float64(n) / time.Since(began).Seconds()

	ingestRate, err := emulatorIngest(ctx, rows)
	if err != nil {
		return failed(r, fmt.Errorf("emulator ingest: %w", err))
	}

	em, err := benchenv.StartEmulator(emulator.Limits{})
	if err != nil {
		return failed(r, err)
	}
	defer em.Stop()
	dst, client, err := benchenv.NewSink(em, dataverse.Config{})
	if err != nil {
		return failed(r, err)
	}
	defer client.CloseIdleConnections()
	benchenv.ResetPeakRSS()
	usage, emCPU := benchenv.ReadUsage(), em.CPU()
	read, err := benchenv.Backfill(ctx, pg.DSN(), "bench_backfill", dst)
	wall, cpu, pct := usage.Since()
	peak := benchenv.PeakRSS()
	if err != nil {
		return failed(r, err)
	}
	if err := pg.DropSlot(ctx, "bench_backfill"); err != nil {
		return failed(r, err)
	}
	if read != int64(rows) {
		return failed(r, fmt.Errorf("backfill read %d rows, want %d", read, rows))
	}
	r.Dvsync = Figure{Name: "backfill", Value: float64(rows) / wall.Seconds(), Unit: "rows/s"}
	r.limit("COPY TO STDOUT", copyRate, "rows/s")
	r.limit("emulator UpsertMultiple", ingestRate, "rows/s")
	r.detail("rows", float64(rows), "")
	r.detail("peak RSS", float64(peak)/(1<<20), "MiB")
	r.detail("CPU", cpu.Seconds(), "s")
	r.detail("CPU", pct, "% of a core")
	r.detail("emulator CPU", (em.CPU() - emCPU).Seconds(), "s")
	r.detail("emulator peak RSS", float64(em.PeakRSS())/(1<<20), "MiB")
	r.Notes = append(r.Notes, "peak RSS and CPU are the dvsync process's (the emulator runs in a child process, PostgreSQL in its own)")
	if _, err := benchenv.Compare(ctx, pg, em); err != nil {
		return failed(r, err)
	}
	return r
}

// emulatorIngest creates rows accounts in a fresh emulator, in requests
// of the sink's size, and returns rows/s.
func emulatorIngest(ctx context.Context, rows int) (float64, error) {
	em, err := benchenv.StartEmulator(emulator.Limits{})
	if err != nil {
		return 0, err
	}
	defer em.Stop()
	took, err := em.Ingest(ctx, 1, rows, dataverse.DefaultBatchSize, ingestWorkers)
	if err != nil {
		return 0, err
	}
	return float64(rows) / took.Seconds(), nil
}

// benchThrottled backfills rows rows into an emulator enforcing
// Dataverse's service protection limits (6,000 requests and 20 minutes of
// execution time per 5 minutes, 52 concurrent requests), scaled to
// window, with the budgets multiplied by users. The limit is the rows/s
// those limits allow at the sink's rows per request.
//
// Dataverse enforces the limits per user and per web server, so an
// environment with several of either takes proportionally more; users
// stands for that, and lets a million rows meet the limits in under a
// minute instead of eight.
func benchThrottled(ctx context.Context, pg *benchenv.Postgres, rows int, window time.Duration, users int) Result {
	r := Result{ID: "throttled", Scenario: "backfill, throttled"}
	scale := float64(users) * window.Seconds() / (5 * time.Minute).Seconds()
	perWindow := max(1, int(math.Round(6000*scale)))
	limits := emulator.Limits{
		Requests:      perWindow,
		ExecutionTime: time.Duration(float64(20*time.Minute) * scale),
		Window:        window,
		Concurrent:    52,
	}
	if err := load(ctx, pg, rows); err != nil {
		return failed(r, err)
	}
	em, err := benchenv.StartEmulator(limits)
	if err != nil {
		return failed(r, err)
	}
	defer em.Stop()
	dst, client, err := benchenv.NewSink(em, dataverse.Config{})
	if err != nil {
		return failed(r, err)
	}
	defer client.CloseIdleConnections()
	began := time.Now()
	read, err := benchenv.Backfill(ctx, pg.DSN(), "bench_throttled", dst)
	took := time.Since(began)
	if err != nil {
		return failed(r, err)
	}
	if err := pg.DropSlot(ctx, "bench_throttled"); err != nil {
		return failed(r, err)
	}
	if read != int64(rows) {
		return failed(r, fmt.Errorf("backfill read %d rows, want %d", read, rows))
	}
	st := dst.Stats()
	// The fewest requests the rows need, and the soonest the limits let
	// them all start: a full window's worth at once, then a window's
	// worth per window.
	need := (rows + dataverse.DefaultBatchSize - 1) / dataverse.DefaultBatchSize
	windows := (need+perWindow-1)/perWindow - 1
	theory := float64(perWindow*dataverse.DefaultBatchSize) / window.Seconds()
	if windows > 0 {
		theory = float64(rows) / (float64(windows) * window.Seconds())
	}
	if windows < 2 {
		r.Notes = append(r.Notes, fmt.Sprintf("too few rows for the limits to bind; give -throttled-rows %d or more",
			3*perWindow*dataverse.DefaultBatchSize))
	}
	r.Dvsync = Figure{Name: "backfill", Value: float64(rows) / took.Seconds(), Unit: "rows/s"}
	r.limit("allowed by the limits", theory, "rows/s")
	r.detail("rows", float64(rows), "")
	r.detail("429s", float64(st.Throttled), "")
	r.detail("requests", float64(st.Requests), "")
	r.detail("requests per row", float64(st.Requests)/float64(rows), "")
	r.Notes = append(r.Notes, fmt.Sprintf("limits: %d requests and %s of execution time per %s window, 52 concurrent (Dataverse's per 5 minutes, scaled, times %d)",
		limits.Requests, limits.ExecutionTime, window, users))
	if _, err := benchenv.Compare(ctx, pg, em); err != nil {
		return failed(r, err)
	}
	return r
}
