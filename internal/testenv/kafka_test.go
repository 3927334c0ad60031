package testenv_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/internal/testenv"
)

// kafkaTestTimeout bounds each test; a consumer group that never gets its
// assignment fails the test instead of hanging the suite.
const kafkaTestTimeout = 60 * time.Second

func TestKafkaTopicsAndBrokers(t *testing.T) {
	k := testenv.StartKafka(t, "orders", "customers")
	ctx := kafkaContext(t)

	if len(k.Addrs) != 3 {
		t.Fatalf("Addrs = %v, want 3 brokers", k.Addrs)
	}
	for _, addr := range k.Addrs {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Errorf("broker address %q is not on 127.0.0.1 (err %v)", addr, err)
		}
	}

	client := &kafka.Client{Addr: kafka.TCP(k.Addrs...)}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"orders", "customers", "missing"}})
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(md.Brokers) != 3 {
		t.Errorf("metadata lists %d brokers, want 3", len(md.Brokers))
	}
	for _, topic := range md.Topics {
		switch topic.Name {
		case "orders", "customers":
			if topic.Error != nil {
				t.Errorf("topic %s: %v", topic.Name, topic.Error)
			}
			if len(topic.Partitions) != 3 {
				t.Errorf("topic %s has %d partitions, want 3", topic.Name, len(topic.Partitions))
			}
		case "missing":
			if !errors.Is(topic.Error, kafka.UnknownTopicOrPartition) {
				t.Errorf("topic missing: error %v, want %v", topic.Error, kafka.UnknownTopicOrPartition)
			}
		default:
			t.Errorf("unexpected topic %q in metadata", topic.Name)
		}
	}
}

// TestKafkaConsumerGroupResumes produces keyed messages, consumes part of
// them in a consumer group and commits part of what it consumed, then
// checks that the next member of the group gets exactly the uncommitted
// rest: nothing committed again, nothing lost, each key in order.
func TestKafkaConsumerGroupResumes(t *testing.T) {
	const (
		topic    = "orders"
		group    = "dvsync"
		keys     = 10
		versions = 3
		total    = keys * versions
		fetched  = 12 // by the first member
		commits  = 8  // of those, committed before it leaves
	)
	k := testenv.StartKafka(t, topic)
	ctx := kafkaContext(t)

	var msgs []kafka.Message
	for v := range versions {
		for key := range keys {
			msgs = append(msgs, kafka.Message{
				Key:   []byte("key-" + strconv.Itoa(key)),
				Value: []byte(strconv.Itoa(v)),
			})
		}
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(k.Addrs...),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 5 * time.Millisecond,
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}

	first := newGroupReader(t, k, topic, group)
	got1 := fetchN(ctx, t, first, fetched)
	if err := first.CommitMessages(ctx, got1[:commits]...); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("close first reader: %v", err)
	}

	second := newGroupReader(t, k, topic, group)
	got2 := fetchN(ctx, t, second, total-commits)
	if err := second.CommitMessages(ctx, got2...); err != nil {
		t.Fatalf("commit: %v", err)
	}

	// Within a partition a member fetches in offset order, so the first
	// `commits` messages are a prefix of each partition's log: the second
	// member must start right after them, which redelivers the fetched but
	// uncommitted ones (at-least-once) and everything never fetched.
	committed := make(map[string]bool)
	for _, m := range got1[:commits] {
		committed[msgID(m)] = true
	}
	seen := make(map[string]bool)
	for _, m := range got2 {
		id := msgID(m)
		if committed[id] {
			t.Errorf("second member got %s again although it was committed", id)
		}
		if seen[id] {
			t.Errorf("second member got %s twice", id)
		}
		seen[id] = true
	}
	if len(committed)+len(seen) != total {
		t.Errorf("committed %d + redelivered %d messages, want %d in all", len(committed), len(seen), total)
	}

	// Per key: one partition, values in production order. Together the two
	// members saw every message, so collect them by offset.
	partitionOf := make(map[string]int)
	byOffset := make(map[string]map[int64]string)
	for _, m := range append(got1[:commits], got2...) {
		key := string(m.Key)
		if p, ok := partitionOf[key]; ok && p != m.Partition {
			t.Errorf("key %s on partitions %d and %d", key, p, m.Partition)
		}
		partitionOf[key] = m.Partition
		if byOffset[key] == nil {
			byOffset[key] = make(map[int64]string)
		}
		byOffset[key][m.Offset] = string(m.Value)
	}
	partitions := make(map[int]bool)
	for key, vals := range byOffset {
		partitions[partitionOf[key]] = true
		if len(vals) != versions {
			t.Errorf("key %s: %d messages, want %d", key, len(vals), versions)
			continue
		}
		last := -1
		for _, off := range sortedOffsets(vals) {
			v, _ := strconv.Atoi(vals[off])
			if v <= last {
				t.Errorf("key %s: value %d at offset %d after value %d", key, v, off, last)
			}
			last = v
		}
	}
	if len(partitions) < 2 {
		t.Errorf("all %d keys landed on partitions %v; want them spread", keys, partitions)
	}
}

func TestKafkaAutoCreatesTopicsOnRequest(t *testing.T) {
	k := testenv.StartKafka(t)
	ctx := kafkaContext(t)

	w := &kafka.Writer{
		Addr:                   kafka.TCP(k.Addrs...),
		Topic:                  "created-on-demand",
		AllowAutoTopicCreation: true,
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
	}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("hello")}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}

	client := &kafka.Client{Addr: kafka.TCP(k.Addrs...)}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{"created-on-demand"}})
	if err != nil {
		t.Fatalf("metadata: %v", err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("metadata = %+v, want one topic with 3 partitions", md.Topics)
	}
}

func TestKafkaClosedAtCleanup(t *testing.T) {
	var addrs []string
	t.Run("cluster", func(t *testing.T) {
		k := testenv.StartKafka(t, "t")
		addrs = k.Addrs
		for _, addr := range addrs {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatalf("dial running broker: %v", err)
			}
			_ = conn.Close()
		}
	})
	for _, addr := range addrs {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			t.Errorf("broker %s still accepts connections after cleanup", addr)
		}
	}
}

func kafkaContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), kafkaTestTimeout)
	t.Cleanup(cancel)
	return ctx
}

func newGroupReader(t *testing.T, k *testenv.Kafka, topic, group string) *kafka.Reader {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.Addrs,
		GroupID: group,
		Topic:   topic,
		// Fetches wait at most this long for new data; a short wait keeps
		// the reader responsive, the context bounds the test.
		MaxWait: 100 * time.Millisecond,
	})
	// Close is idempotent: tests close a reader early to leave the group,
	// and this catches the ones a failing test leaves open.
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func fetchN(ctx context.Context, t *testing.T, r *kafka.Reader, n int) []kafka.Message {
	t.Helper()
	msgs := make([]kafka.Message, 0, n)
	for len(msgs) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch message %d of %d: %v", len(msgs)+1, n, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func msgID(m kafka.Message) string {
	return fmt.Sprintf("%s/%d@%d", m.Topic, m.Partition, m.Offset)
}

func sortedOffsets(m map[int64]string) []int64 {
	return slices.Sorted(maps.Keys(m))
}
