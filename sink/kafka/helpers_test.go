package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
	"github.com/dvsync/dvsync/internal/testenv"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(testContext(t), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// readTopic returns every message of topic currently below each
// partition's high watermark, partition by partition in offset order. It
// reads through its own connections, not the sink's.
func readTopic(t *testing.T, k *testenv.Kafka, topic string) [][]kafkago.Message {
	t.Helper()
	ctx := testContext(t)
	conn, err := kafkago.DialContext(ctx, "tcp", k.Addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	slices.SortFunc(parts, func(a, b kafkago.Partition) int { return a.ID - b.ID })
	out := make([][]kafkago.Message, len(parts))
	for _, p := range parts {
		out[p.ID] = readPartition(ctx, t, k, topic, p.ID)
	}
	return out
}

func readPartition(ctx context.Context, t *testing.T, k *testenv.Kafka, topic string, partition int) []kafkago.Message {
	t.Helper()
	lc, err := kafkago.DialLeader(ctx, "tcp", k.Addrs[0], topic, partition)
	if err != nil {
		t.Fatalf("leader of %s/%d: %v", topic, partition, err)
	}
	defer lc.Close()
	first, last, err := lc.ReadOffsets()
	if err != nil {
		t.Fatal(err)
	}
	var msgs []kafkago.Message
	for off := first; off < last; {
		if _, err := lc.Seek(off, kafkago.SeekAbsolute); err != nil {
			t.Fatal(err)
		}
		_ = lc.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := lc.ReadBatch(1, 16<<20)
		for {
			m, err := b.ReadMessage()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("read %s/%d at %d: %v", topic, partition, off, err)
				}
				break
			}
			msgs = append(msgs, m)
			off = m.Offset + 1
		}
		if err := b.Close(); err != nil && !errors.Is(err, io.EOF) {
			t.Fatalf("read %s/%d: %v", topic, partition, err)
		}
	}
	return msgs
}

// allMessages flattens readTopic's partitions.
func allMessages(t *testing.T, k *testenv.Kafka, topic string) []kafkago.Message {
	t.Helper()
	var out []kafkago.Message
	for _, p := range readTopic(t, k, topic) {
		out = append(out, p...)
	}
	return out
}

// envelope is a Debezium event as a consumer decodes it.
type envelope struct {
	Before map[string]json.RawMessage `json:"before"`
	After  map[string]json.RawMessage `json:"after"`
	Source struct {
		Version   string `json:"version"`
		Connector string `json:"connector"`
		Name      string `json:"name"`
		TsMs      int64  `json:"ts_ms"`
		Snapshot  string `json:"snapshot"`
		Table     string `json:"table"`
		Position  []byte `json:"position"`
		Origin    *struct {
			System string `json:"system"`
			Name   string `json:"name"`
		} `json:"origin"`
	} `json:"source"`
	Op   string `json:"op"`
	TsMs int64  `json:"ts_ms"`
}

func decodeEnvelope(t *testing.T, m kafkago.Message) envelope {
	t.Helper()
	var e envelope
	d := json.NewDecoder(bytes.NewReader(m.Value))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		t.Fatalf("message at offset %d: %v: %s", m.Offset, err, m.Value)
	}
	return e
}

func header(m kafkago.Message, key string) (string, bool) {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// fold replays a topic's messages into the rows a consumer applying them
// would hold: an event's after laid over the row (absent columns keep
// their values), a delete or tombstone removing it. Keys are the message
// keys' JSON text.
func fold(t *testing.T, parts [][]kafkago.Message, format Format) map[string]map[string]json.RawMessage {
	t.Helper()
	rows := map[string]map[string]json.RawMessage{}
	for _, msgs := range parts {
		for _, m := range msgs {
			k := string(m.Key)
			if m.Value == nil {
				delete(rows, k)
				continue
			}
			var after map[string]json.RawMessage
			if format == FormatJSON {
				if err := json.Unmarshal(m.Value, &after); err != nil {
					t.Fatalf("message at offset %d: %v", m.Offset, err)
				}
			} else {
				e := decodeEnvelope(t, m)
				if e.Op == "d" {
					delete(rows, k)
					continue
				}
				after = e.After
			}
			row := rows[k]
			if row == nil {
				row = map[string]json.RawMessage{}
				rows[k] = row
			}
			for c, v := range after {
				row[c] = v
			}
		}
	}
	return rows
}

func keyJSON(t *testing.T, key change.Key) string {
	t.Helper()
	b, err := appendKey(nil, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rowOf turns decoded JSON columns back into values the conformance
// suite compares loosely: strings as text, numbers exactly as decimals.
func rowOf(t *testing.T, cols map[string]json.RawMessage) change.Row {
	t.Helper()
	var row change.Row
	for name, raw := range cols {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
		switch v := v.(type) {
		case nil:
			row = append(row, change.Column{Name: name, Value: change.Null()})
		case string:
			row = append(row, change.Column{Name: name, Value: change.Text(v)})
		case bool:
			row = append(row, change.Column{Name: name, Value: change.Bool(v)})
		case json.Number:
			row = append(row, change.Column{Name: name, Value: change.MustDecimal(v.String())})
		default:
			row = append(row, change.Column{Name: name, Value: change.JSON(raw)})
		}
	}
	return row
}

func plainConn(k *testenv.Kafka) kafkaconn.Config {
	return kafkaconn.Config{Brokers: k.Addrs}
}
