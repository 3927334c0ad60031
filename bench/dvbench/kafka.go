package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/dvsync/dvsync/bench/internal/benchenv"
	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/sink/dataverse"
)

const (
	kafkaTopic      = "bench"
	kafkaPartitions = 3
	kafkaBrokers    = 3
)

// benchKafka fills a topic on an in-process kfake cluster (three brokers,
// three partitions, over TCP) with messages JSON messages, then consumes
// it with a bare kafka-go group reader, the limit any kafka-go based
// source reaches on this broker, and then with dvsync: source/kafka →
// mapping → engine → Dataverse sink into the emulator.
func benchKafka(ctx context.Context, messages int) Result {
	r := Result{ID: "kafka", Scenario: "Kafka → Dataverse"}
	c, err := kfake.NewCluster(kfake.NumBrokers(kafkaBrokers), kfake.DefaultNumPartitions(kafkaPartitions),
		kfake.SeedTopics(kafkaPartitions, kafkaTopic))
	if err != nil {
		return failed(r, err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()

	began := time.Now()
	if err := produce(ctx, addrs, messages); err != nil {
		return failed(r, fmt.Errorf("produce: %w", err))
	}
	produced := float64(messages) / time.Since(began).Seconds()

	began = time.Now()
	if err := consumeRaw(ctx, addrs, messages); err != nil {
		return failed(r, fmt.Errorf("raw consume: %w", err))
	}
	raw := float64(messages) / time.Since(began).Seconds()

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
	// The clock starts before the pipeline joins the group, as the raw
	// consumer's did.
	began = time.Now()
	s, err := benchenv.StartKafka(ctx, addrs, "bench-dvsync", dst)
	if err != nil {
		return failed(r, err)
	}
	defer func() { _ = s.Stop() }()
	ready := time.Since(began)
	if err := s.Wait(ctx, messages); err != nil {
		return failed(r, err)
	}
	took := time.Since(began)
	ph := s.Take()
	r.detail("ready after", ready.Seconds(), "s")
	r.detail("first write after", ph.FirstDurable.Sub(began).Seconds(), "s")

	r.Dvsync = Figure{Name: "end to end", Value: float64(messages) / took.Seconds(), Unit: "messages/s"}
	r.limit("kafka-go group consume", raw, "messages/s")
	r.detail("messages", float64(messages), "")
	r.detail("produced", produced, "messages/s")
	r.detail("latency p50", ms(ph.Latencies.Percentile(50)), "ms")
	r.detail("p99", ms(ph.Latencies.Percentile(99)), "ms")
	r.Notes = append(r.Notes,
		"both rates from before joining the group to the last message (durable in the emulator, for dvsync)",
		"latency: message timestamp to durable; the topic was filled before the pipeline started",
		"the broker runs in the benchmark process")
	if _, err := benchenv.CompareGenerated(ctx, messages, em); err != nil {
		return failed(r, err)
	}
	return r
}

// produce writes messages JSON messages keyed by id, durably.
func produce(ctx context.Context, addrs []string, messages int) error {
	w := &kafka.Writer{
		Addr:         kafka.TCP(addrs...),
		Topic:        kafkaTopic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchSize:    1000,
		BatchBytes:   4 << 20,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	const chunk = 10_000
	msgs := make([]kafka.Message, 0, chunk)
	for first := 1; first <= messages; first += chunk {
		msgs = msgs[:0]
		for i := first; i < first+chunk && i <= messages; i++ {
			id := strconv.Itoa(i)
			msgs = append(msgs, kafka.Message{
				Key: []byte(id),
				Value: []byte(`{"id":` + id + `,"name":"Customer ` + id + `","employees":` + strconv.Itoa(i%5000) +
					`,"credit":` + strconv.Itoa(i%100000) + `.25}`),
			})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return err
		}
	}
	return nil
}

// consumeRaw reads the topic with a kafka-go group reader, fetching and
// committing as a source would, until every message key 1…messages has
// been seen; a missing or doubled key is an error.
func consumeRaw(ctx context.Context, addrs []string, messages int) error {
	rd := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     addrs,
		GroupID:     "bench-raw",
		Topic:       kafkaTopic,
		StartOffset: kafka.FirstOffset,
		MinBytes:    1,
		MaxBytes:    16 << 20,
		MaxWait:     100 * time.Millisecond,
	})
	defer rd.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	seen := make([]bool, messages+1)
	const commitEvery = 1000
	pending := make([]kafka.Message, 0, commitEvery)
	for got := 0; got < messages; got++ {
		m, err := rd.FetchMessage(ctx)
		if err != nil {
			return fmt.Errorf("after %d of %d messages: %w", got, messages, err)
		}
		id, err := strconv.Atoi(string(m.Key))
		if err != nil || id < 1 || id > messages || seen[id] {
			return fmt.Errorf("message key %q is unknown or seen twice", m.Key)
		}
		seen[id] = true
		pending = append(pending, m)
		if len(pending) == commitEvery || got == messages-1 {
			if err := rd.CommitMessages(ctx, pending...); err != nil {
				return err
			}
			pending = pending[:0]
		}
	}
	if len(pending) > 0 {
		return errors.New("uncommitted messages left")
	}
	return nil
}
