package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dvsync/dvsync/bench/internal/benchenv"
	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/sink/dataverse"
)

// steadyTick is how often the steady scenario commits: about rate×tick
// rows per transaction.
const steadyTick = 10 * time.Millisecond

// benchSteady inserts rate rows per second for d through the running
// pipeline and reports the latency from commit to durable, and the CPU
// and memory the dvsync process used. The limit is the offered rate.
func benchSteady(ctx context.Context, pg *benchenv.Postgres, rate int, d time.Duration) Result {
	r := Result{ID: "steady", Scenario: fmt.Sprintf("steady streaming, %d/s", rate)}
	if err := pg.Truncate(ctx); err != nil {
		return failed(r, err)
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
	s, err := benchenv.StartStreaming(ctx, pg.DSN(), "bench_steady", dst)
	if err != nil {
		return failed(r, err)
	}
	defer func() {
		_ = s.Stop()
		_ = pg.DropSlot(context.Background(), "bench_steady")
	}()

	benchenv.ResetPeakRSS()
	usage, emCPU := benchenv.ReadUsage(), em.CPU()
	// Each tick commits what the rate owes by then, so that a slow
	// insert is made up at the next tick rather than lowering the rate.
	ticker := time.NewTicker(steadyTick)
	defer ticker.Stop()
	began := time.Now()
	next := int64(1)
	for {
		elapsed := time.Since(began)
		if elapsed >= d {
			break
		}
		if owed := int64(elapsed.Seconds()*float64(rate)) + 1 - next; owed > 0 {
			if err := pg.Insert(ctx, next, int(owed)); err != nil {
				return failed(r, err)
			}
			next += owed
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return failed(r, ctx.Err())
		}
	}
	offered := float64(next-1) / time.Since(began).Seconds()
	if err := s.Wait(ctx, int(next-1)); err != nil {
		return failed(r, err)
	}
	ph := s.Take()
	wall, cpu, pct := usage.Since()
	peak := benchenv.PeakRSS()

	r.Dvsync = Figure{Name: "sustained", Value: float64(next-1) / ph.Span().Seconds(), Unit: "changes/s"}
	r.limit("offered", offered, "changes/s")
	r.detail("changes", float64(next-1), "")
	r.detail("latency p50", ms(ph.Latencies.Percentile(50)), "ms")
	r.detail("p99", ms(ph.Latencies.Percentile(99)), "ms")
	r.detail("max", ms(ph.Latencies.Percentile(100)), "ms")
	r.detail("CPU", pct, "% of a core")
	r.detail("peak RSS", float64(peak)/(1<<20), "MiB")
	r.detail("emulator CPU", 100*(em.CPU()-emCPU).Seconds()/wall.Seconds(), "% of a core")
	r.Notes = append(r.Notes, "a commit every 10ms; CPU and RSS are the dvsync process's; CPU "+cpu.Round(10*time.Millisecond).String()+" in all")
	if _, err := benchenv.Compare(ctx, pg, em); err != nil {
		return failed(r, err)
	}
	return r
}
