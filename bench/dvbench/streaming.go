package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dvsync/dvsync/bench/internal/benchenv"
	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/sink/dataverse"
)

// streamSlot is the slot, and publication, of the streaming pipelines.
const streamSlot = "bench_stream"

// benchStreaming streams changes inserts through the running pipeline
// twice, first in one transaction, then in transactions of txnRows, and
// returns one result for each. Limit: pglogrepl alone reading the same
// changes from a slot created just before them.
func benchStreaming(ctx context.Context, pg *benchenv.Postgres, changes, txnRows int) []Result {
	big := Result{ID: "streaming-one-txn", Scenario: "streaming, one transaction"}
	small := Result{ID: "streaming-small-txns", Scenario: fmt.Sprintf("streaming, transactions of %d", txnRows)}
	backlog := Result{ID: "streaming-small-txns-backlog", Scenario: fmt.Sprintf("streaming, a backlog of transactions of %d", txnRows)}
	fail := func(err error) []Result { return []Result{failed(big, err), failed(small, err), failed(backlog, err)} }
	if err := pg.Truncate(ctx); err != nil {
		return fail(err)
	}
	em, err := benchenv.StartEmulator(emulator.Limits{})
	if err != nil {
		return fail(err)
	}
	defer em.Stop()
	dst, client, err := benchenv.NewSink(em, dataverse.Config{})
	if err != nil {
		return fail(err)
	}
	defer client.CloseIdleConnections()
	s, err := benchenv.StartStreaming(ctx, pg.DSN(), streamSlot, dst)
	if err != nil {
		return fail(err)
	}
	defer func() {
		_ = s.Stop()
		_ = pg.DropSlot(context.Background(), streamSlot)
	}()

	began := time.Now()
	big = streamPhase(ctx, pg, s, big, "bench_raw_big", changes, func() error { return pg.Insert(ctx, 1, changes) })
	big.Seconds = time.Since(began).Seconds()
	began = time.Now()
	small = streamPhase(ctx, pg, s, small, "bench_raw_small", changes, func() error {
		for first := changes + 1; first <= 2*changes; first += txnRows {
			if err := pg.Insert(ctx, int64(first), min(txnRows, 2*changes-first+1)); err != nil {
				return err
			}
		}
		return nil
	})
	small.Seconds = time.Since(began).Seconds()
	began = time.Now()
	backlog = backlogPhase(ctx, pg, em, s, backlog, "bench_raw_backlog", 2*changes+1, changes, txnRows)
	backlog.Seconds = time.Since(began).Seconds()
	if _, err := benchenv.Compare(ctx, pg, em); err != nil {
		return fail(err)
	}
	return []Result{big, small, backlog}
}

// backlogPhase commits n inserts from id first in transactions of txnRows
// while the pipeline is stopped, then times it from its restart until all
// of them are durable, against pglogrepl reading the same backlog. Live,
// dvsync keeps up with small transactions as fast as this machine commits
// them, so the live phase's rate is the workload's; a backlog shows how
// fast dvsync itself goes, as the decode limit does for pglogrepl.
func backlogPhase(ctx context.Context, pg *benchenv.Postgres, em *benchenv.Emulator, s *benchenv.Streaming, r Result, rawSlot string, first, n, txnRows int) Result {
	if err := pg.CreateSlot(ctx, rawSlot); err != nil {
		return failed(r, err)
	}
	defer func() { _ = pg.DropSlot(context.Background(), rawSlot) }()
	if err := s.Pause(); err != nil {
		return failed(r, err)
	}
	for id := first; id < first+n; id += txnRows {
		if err := pg.Insert(ctx, int64(id), min(txnRows, first+n-id)); err != nil {
			return failed(r, err)
		}
	}
	dst, client, err := benchenv.NewSink(em, dataverse.Config{})
	if err != nil {
		return failed(r, err)
	}
	defer client.CloseIdleConnections()
	began := time.Now()
	if err := s.Resume(ctx, dst); err != nil {
		return failed(r, err)
	}
	if err := s.Wait(ctx, n); err != nil {
		return failed(r, err)
	}
	ph := s.Take()
	took := ph.Last.Sub(began)

	rawBegan := time.Now()
	if err := benchenv.ReadRaw(ctx, pg.DSN(), rawSlot, streamSlot, n); err != nil {
		return failed(r, err)
	}
	raw := float64(n) / time.Since(rawBegan).Seconds()

	r.Dvsync = Figure{Name: "catch-up", Value: float64(n) / took.Seconds(), Unit: "changes/s"}
	r.limit("pglogrepl decode", raw, "changes/s")
	r.detail("changes", float64(n), "")
	r.Notes = append(r.Notes, "committed while dvsync was stopped; catch-up: from its restart, connecting included, to the last change durable in the emulator")
	return r
}

// streamPhase commits n inserts with insert while the pipeline runs,
// waits for all of them to be durable in the emulator, then reads the
// same changes with pglogrepl from rawSlot.
func streamPhase(ctx context.Context, pg *benchenv.Postgres, s *benchenv.Streaming, r Result, rawSlot string, n int, insert func() error) Result {
	if err := pg.CreateSlot(ctx, rawSlot); err != nil {
		return failed(r, err)
	}
	defer func() { _ = pg.DropSlot(context.Background(), rawSlot) }()
	began := time.Now()
	if err := insert(); err != nil {
		return failed(r, err)
	}
	committed := time.Since(began)
	if err := s.Wait(ctx, n); err != nil {
		return failed(r, err)
	}
	ph := s.Take()

	rawBegan := time.Now()
	if err := benchenv.ReadRaw(ctx, pg.DSN(), rawSlot, streamSlot, n); err != nil {
		return failed(r, err)
	}
	raw := float64(n) / time.Since(rawBegan).Seconds()

	r.Dvsync = Figure{Name: "end to end", Value: float64(n) / ph.Span().Seconds(), Unit: "changes/s"}
	r.limit("pglogrepl decode", raw, "changes/s")
	r.detail("changes", float64(n), "")
	r.detail("committed", float64(n)/committed.Seconds(), "changes/s")
	r.detail("latency p50", ms(ph.Latencies.Percentile(50)), "ms")
	r.detail("p99", ms(ph.Latencies.Percentile(99)), "ms")
	r.Notes = append(r.Notes, "end to end: first commit to last change durable in the emulator; latency: commit to durable")
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
