package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/dvsync/dvsync/bench/internal/benchenv"
	"github.com/dvsync/dvsync/sink/dataverse"
)

// benchOutbound creates changes accounts in the emulator and measures how
// fast dvsync publishes them to a Kafka topic as Debezium events: once
// from webhooks, once from delta polling. Each topic is read back and
// checked afterwards.
func benchOutbound(ctx context.Context, changes int) []Result {
	hooks := Result{ID: "outbound-webhooks", Scenario: "Dataverse → Kafka, webhooks"}
	delta := Result{ID: "outbound-delta", Scenario: "Dataverse → Kafka, delta"}
	c, err := kfake.NewCluster(kfake.NumBrokers(kafkaBrokers), kfake.DefaultNumPartitions(kafkaPartitions),
		kfake.SeedTopics(kafkaPartitions, "dataverse.webhooks", "dataverse.delta"))
	if err != nil {
		return []Result{failed(hooks, err), failed(delta, err)}
	}
	defer c.Close()
	began := time.Now()
	hooks = outbound(ctx, c.ListenAddrs(), "dataverse.webhooks", benchenv.Webhooks, hooks, changes)
	hooks.Seconds = time.Since(began).Seconds()
	began = time.Now()
	delta = outbound(ctx, c.ListenAddrs(), "dataverse.delta", benchenv.Delta, delta, changes)
	delta.Seconds = time.Since(began).Seconds()
	return []Result{hooks, delta}
}

func outbound(ctx context.Context, brokers []string, topic string, feed benchenv.InboundFeed, r Result, n int) Result {
	out, err := benchenv.StartOutbound(ctx, brokers, topic, feed)
	if err != nil {
		return failed(r, err)
	}
	defer func() { _ = out.Stop() }()
	began := time.Now()
	if _, err := out.Emulator.Ingest(ctx, 1, n, dataverse.DefaultBatchSize, ingestWorkers); err != nil {
		return failed(r, err)
	}
	if err := out.Wait(ctx, n); err != nil {
		return failed(r, err)
	}
	took := time.Since(began)
	ph := out.Take()
	if err := benchenv.CompareOutbound(ctx, brokers, topic, n); err != nil {
		return failed(r, err)
	}
	r.Dvsync = Figure{Name: "end to end", Value: float64(n) / took.Seconds(), Unit: "changes/s"}
	r.detail("changes", float64(n), "")
	r.detail("latency p50", ms(ph.Latencies.Percentile(50)), "ms")
	r.detail("p99", ms(ph.Latencies.Percentile(99)), "ms")
	r.Notes = append(r.Notes, fmt.Sprintf("rate from the first UpsertMultiple to the last event acknowledged by the brokers (acks=all); delta polled every %s", benchenv.PollInterval),
		"latency: the change's time in Dataverse to acknowledged by the brokers")
	return r
}
