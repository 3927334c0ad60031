package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/sourcetest"
)

// harness runs the conformance suite over a Debezium topic: each insert,
// update and delete is one change event, keyed by the row's id. Every
// event goes to partition 0: the suite acks "the first three records" and
// expects the rest after a restart, which presumes one commit order over
// all keys, and Kafka orders only within a partition. (TestResumeAfterRestart
// covers acks across partitions.)
type harness struct {
	k    *testenv.Kafka
	next int
}

func TestConformance(t *testing.T) {
	sourcetest.Run(t, &harness{k: testenv.StartKafka(t, "conformance")})
}

func (h *harness) NewSource(t *testing.T) source.Source {
	s, err := New(testConfig(h.k, "conformance", Topic{Name: "conformance", Format: FormatDebezium}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) write(t *testing.T, msgs ...kafka.Message) {
	t.Helper()
	// A transport of its own, closed after each write, so that the
	// suite's goroutine count sees no connections of the producer.
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(h.k.Addrs...), Topic: "conformance", Transport: tr,
		Balancer: onePartition, RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(testContext(t), msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

var onePartition = kafka.BalancerFunc(func(_ kafka.Message, partitions ...int) int { return partitions[0] })

func event(id int64, op, before, after string) kafka.Message {
	return msg(fmt.Sprintf(`{"id":%d}`, id), fmt.Sprintf(`{"before":%s,"after":%s,"source":{"ts_ms":%d},"op":%q}`,
		before, after, time.Now().UnixMilli(), op))
}

func (h *harness) Insert(t *testing.T, n int) []change.Key {
	keys := make([]change.Key, n)
	msgs := make([]kafka.Message, n)
	for i := range n {
		h.next++
		id := int64(h.next)
		keys[i] = change.Key{{Name: "id", Value: change.Int(id)}}
		msgs[i] = event(id, "c", "null", fmt.Sprintf(`{"id":%d,"v":0}`, id))
	}
	h.write(t, msgs...)
	return keys
}

func (h *harness) Update(t *testing.T, key change.Key) {
	id := key[0].Value.Int()
	h.write(t, event(id, "u", "null", fmt.Sprintf(`{"id":%d,"v":1}`, id)))
}

func (h *harness) Delete(t *testing.T, key change.Key) {
	id := key[0].Value.Int()
	h.write(t, event(id, "d", fmt.Sprintf(`{"id":%d}`, id), "null"))
}
