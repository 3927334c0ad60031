package kafka

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
	"github.com/dvsync/dvsync/internal/testenv"
)

func TestMain(m *testing.M) {
	// The kill test runs a source in a child process of this binary.
	if os.Getenv(childEnv) != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// testTimeout bounds every wait of these tests; a consumer group that
// never gets its assignment fails the test instead of hanging the suite.
const testTimeout = 60 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testConfig is a source configuration for k with quick group timing.
func testConfig(k *testenv.Kafka, group string, topics ...Topic) Config {
	return Config{
		Connection:       kafkaconn.Config{Brokers: k.Addrs},
		GroupID:          group,
		Topics:           topics,
		SessionTimeout:   6 * time.Second, // the broker's minimum
		RebalanceTimeout: 10 * time.Second,
	}
}

// newSource returns an unopened source, closed at cleanup.
func newSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return s
}

// openSource returns an open source, closed at cleanup.
func openSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	s := newSource(t, cfg)
	if err := s.Open(testContext(t), nil); err != nil {
		t.Fatal(err)
	}
	return s
}

// produce writes msgs to topic and returns once the brokers have them.
// Keyed messages go to the partition kafka.Hash picks, so one key's
// messages share a partition.
func produce(t *testing.T, k *testenv.Kafka, topic string, msgs ...kafka.Message) {
	t.Helper()
	produceVia(t, k, nil, topic, msgs...)
}

// produceVia is produce through transport; nil is kafka-go's default.
func produceVia(t *testing.T, k *testenv.Kafka, transport kafka.RoundTripper, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Transport:    transport,
		Addr:         kafka.TCP(k.Addrs...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	defer w.Close()
	if err := w.WriteMessages(testContext(t), msgs...); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

func msg(key, value string) kafka.Message {
	m := kafka.Message{Key: []byte(key)}
	if value != "" {
		m.Value = []byte(value)
	}
	return m
}

// readN reads exactly n records.
func readN(t *testing.T, s *Source, n int) []change.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	var got []change.Record
	for len(got) < n {
		recs, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read after %d of %d records: %v", len(got), n, err)
		}
		got = append(got, recs...)
	}
	if len(got) > n {
		t.Fatalf("wanted %d records, got %d; extra: %s", n, len(got), got[n].String())
	}
	return got
}

// noMore checks that s returns nothing more within a short while.
func noMore(t *testing.T, s *Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if recs, err := s.Read(ctx); err == nil {
		t.Fatalf("unexpected record %s", recs[0].String())
	}
}

func ack(t *testing.T, s *Source, pos change.Position) {
	t.Helper()
	if err := s.Ack(testContext(t), pos); err != nil {
		t.Fatalf("Ack: %v", err)
	}
}

// byKey indexes records by their key's text.
func byKey(recs []change.Record) map[string][]change.Record {
	m := map[string][]change.Record{}
	for _, r := range recs {
		m[r.Key.String()] = append(m[r.Key.String()], r)
	}
	return m
}

func value(t *testing.T, row change.Row, col string) change.Value {
	t.Helper()
	v, ok := row.Get(col)
	if !ok {
		t.Fatalf("row %v has no column %s", row, col)
	}
	return v
}
