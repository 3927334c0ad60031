package benchenv

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/internal/kafkaconn"
	kafkasink "github.com/dvsync/dvsync/sink/kafka"
)

// outboundMapping publishes the emulator's accounts to a topic as
// Debezium change events.
const outboundMapping = `
version: 1
direction: from-dataverse
source: {connection: app, topic: %s, format: debezium}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id,        target: accountnumber}
  - {source: name,      target: name}
  - {source: employees, target: numberofemployees, type: integer}
  - {source: credit,    target: creditlimit, type: money}
`

// StartOutbound starts an emulator fed as feed says and a pipeline
// source/dataverse → mapping (MapToSource) → sink/kafka publishing the
// accounts to topic on brokers, as 'dvsync run' wires a from-dataverse
// mapping to a Kafka topic. Stop it when done.
func StartOutbound(ctx context.Context, brokers []string, topic string, feed InboundFeed) (*Inbound, error) {
	dst, err := kafkasink.New(ctx, kafkasink.Config{
		Connection: kafkaconn.Config{Brokers: brokers},
		Tables:     map[string]kafkasink.Table{topic: {Topic: topic, Format: kafkasink.FormatDebezium}},
		Name:       "bench",
	})
	if err != nil {
		return nil, err
	}
	return startReverse(ctx, feed, fmt.Sprintf(outboundMapping, topic), dst)
}

// CompareOutbound reads topic from the start and checks that its last
// event per key holds exactly the accounts 1 … n with the values
// Emulator.Ingest gives them.
func CompareOutbound(ctx context.Context, brokers []string, topic string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: brokers, Topic: topic, GroupID: "bench-check-" + strconv.FormatInt(time.Now().UnixNano(), 10),
		StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	type after struct {
		ID        string `json:"id"`
		Name      string `json:"name"`
		Employees int64  `json:"employees"`
		Credit    string `json:"credit"`
	}
	last := make(map[string]after, n)
	for len(last) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return fmt.Errorf("compare: read %s after %d keys: %w", topic, len(last), err)
		}
		var ev struct {
			Op    string `json:"op"`
			After *after `json:"after"`
		}
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			return fmt.Errorf("compare: %s at %d/%d: %w", topic, m.Partition, m.Offset, err)
		}
		if ev.After == nil {
			return fmt.Errorf("compare: %s at %d/%d: op %q without after", topic, m.Partition, m.Offset, ev.Op)
		}
		last[ev.After.ID] = *ev.After
	}
	wrong := 0
	for i := 1; i <= n; i++ {
		id := strconv.Itoa(i)
		a, ok := last[id]
		credit, err := strconv.ParseFloat(a.Credit, 64)
		if !ok || err != nil || a.Name != "Customer "+id || a.Employees != int64(i%5000) || credit != float64(i%100000)+0.25 {
			wrong++
		}
	}
	if len(last) != n || wrong > 0 {
		return fmt.Errorf("target differs from source: %d keys on %s, want %d; %d missing or with wrong values", len(last), topic, n, wrong)
	}
	return nil
}
