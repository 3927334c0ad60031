package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dvsync/dvsync/bench/internal/benchenv"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink/dataverse"
)

// benchInbound creates changes accounts in the emulator and measures how
// fast dvsync carries them into PostgreSQL: once from webhooks, once from
// delta polling. Limits: the emulator posting the same webhooks to a bare
// receiver, and a bare delta read of the same rows.
func benchInbound(ctx context.Context, pg *benchenv.Postgres, changes int) []Result {
	hooks := Result{ID: "inbound-webhooks", Scenario: "Dataverse → PostgreSQL, webhooks"}
	delta := Result{ID: "inbound-delta", Scenario: "Dataverse → PostgreSQL, delta"}
	began := time.Now()
	hooks = inboundWebhooks(ctx, pg, hooks, changes)
	hooks.Seconds = time.Since(began).Seconds()
	began = time.Now()
	delta = inboundDelta(ctx, pg, delta, changes)
	delta.Seconds = time.Since(began).Seconds()
	return []Result{hooks, delta}
}

func inboundWebhooks(ctx context.Context, pg *benchenv.Postgres, r Result, n int) Result {
	// The limit: the emulator delivering the same creates' webhooks to a
	// receiver that only counts them.
	counter, err := benchenv.StartWebhookCounter()
	if err != nil {
		return failed(r, err)
	}
	defer counter.Stop()
	em, err := benchenv.StartEmulatorWebhook(counter.URL, "bench")
	if err != nil {
		return failed(r, err)
	}
	began := time.Now()
	if _, err := em.Ingest(ctx, 1, n, dataverse.DefaultBatchSize, ingestWorkers); err != nil {
		em.Stop()
		return failed(r, err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	err = counter.WaitFor(waitCtx, int64(n))
	cancel()
	limit := float64(n) / time.Since(began).Seconds()
	em.Stop()
	if err != nil {
		return failed(r, fmt.Errorf("webhooks to a bare receiver: %w", err))
	}

	in, err := benchenv.StartInbound(ctx, pg, benchenv.Webhooks)
	if err != nil {
		return failed(r, err)
	}
	defer func() { _ = in.Stop() }()
	began = time.Now()
	if _, err := in.Emulator.Ingest(ctx, 1, n, dataverse.DefaultBatchSize, ingestWorkers); err != nil {
		return failed(r, err)
	}
	if err := in.Wait(ctx, n); err != nil {
		return failed(r, err)
	}
	took := time.Since(began)
	ph := in.Take()
	r.Dvsync = Figure{Name: "end to end", Value: float64(n) / took.Seconds(), Unit: "changes/s"}
	r.limit("emulator webhooks to a bare receiver", limit, "changes/s")
	r.detail("changes", float64(n), "")
	r.detail("latency p50", ms(ph.Latencies.Percentile(50)), "ms")
	r.detail("p99", ms(ph.Latencies.Percentile(99)), "ms")
	r.Notes = append(r.Notes, "rates from the first UpsertMultiple to the last row durable in PostgreSQL (or the last webhook received)",
		"latency: the context's operation time to durable in PostgreSQL")
	if err := benchenv.CompareInbound(ctx, pg, n); err != nil {
		return failed(r, err)
	}
	return r
}

func inboundDelta(ctx context.Context, pg *benchenv.Postgres, r Result, n int) Result {
	in, err := benchenv.StartInbound(ctx, pg, benchenv.Delta)
	if err != nil {
		return failed(r, err)
	}
	defer func() { _ = in.Stop() }()
	began := time.Now()
	if _, err := in.Emulator.Ingest(ctx, 1, n, dataverse.DefaultBatchSize, ingestWorkers); err != nil {
		return failed(r, err)
	}
	if err := in.Wait(ctx, n); err != nil {
		return failed(r, err)
	}
	took := time.Since(began)
	ph := in.Take()
	if err := benchenv.CompareInbound(ctx, pg, n); err != nil {
		return failed(r, err)
	}

	// The limit: a bare delta read of the same rows, pages of the
	// poller's size.
	client, err := in.Emulator.Client()
	if err != nil {
		return failed(r, err)
	}
	defer client.CloseIdleConnections()
	began = time.Now()
	read := 0
	page, err := client.TrackChanges(ctx, benchenv.EntitySet, odataclient.DeltaQuery{
		Select: []string{"accountnumber", "name", "numberofemployees", "creditlimit"}, MaxPageSize: 1000,
	})
	for ; err == nil; page, err = client.NextDelta(ctx, page.NextLink, 1000) {
		read += len(page.Changes)
		if page.NextLink == "" {
			break
		}
	}
	if err != nil {
		return failed(r, fmt.Errorf("bare delta read: %w", err))
	}
	if read != n {
		return failed(r, fmt.Errorf("bare delta read %d rows, want %d", read, n))
	}
	limit := float64(n) / time.Since(began).Seconds()

	r.Dvsync = Figure{Name: "end to end", Value: float64(n) / took.Seconds(), Unit: "changes/s"}
	r.limit("bare delta read", limit, "changes/s")
	r.detail("changes", float64(n), "")
	r.detail("latency p50", ms(ph.Latencies.Percentile(50)), "ms")
	r.detail("p99", ms(ph.Latencies.Percentile(99)), "ms")
	r.Notes = append(r.Notes, fmt.Sprintf("polled every %s; rate from the first UpsertMultiple to the last row durable in PostgreSQL", benchenv.PollInterval))
	return r
}
