package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/sinktest"
)

// harness reads a topic back as the rows a consumer would hold after
// applying every message in partition order.
type harness struct {
	k      *testenv.Kafka
	topic  string
	format Format
}

func (h *harness) NewSink(t *testing.T) sink.Sink {
	s, err := New(testContext(t), Config{
		Connection: plainConn(h.k),
		Tables:     map[string]Table{"public.rows": {Topic: h.topic, Format: h.format, Tombstones: true}},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func (h *harness) Read(t *testing.T, _ string, key change.Key) (change.Row, bool) {
	rows := fold(t, readTopic(t, h.k, h.topic), h.format)
	cols, ok := rows[keyJSON(t, key)]
	if !ok {
		return nil, false
	}
	return rowOf(t, cols), true
}

func (h *harness) Table() string { return "public.rows" }

func (h *harness) Key(i int) change.Key {
	return change.Key{{Name: "id", Value: change.Int(int64(i))}}
}

func (h *harness) Row(i, version int) change.Row {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600000000, time.FixedZone("", 3600)).Add(time.Duration(version) * time.Hour)
	return change.Row{
		{Name: "id", Value: change.Int(int64(i))},
		{Name: "name", Value: change.Text(fmt.Sprintf("row %d v%d", i, version))},
		{Name: "amount", Value: change.MustDecimal(fmt.Sprintf("%d.%02d00", i, version))},
		{Name: "at", Value: change.Timestamp(at)},
		{Name: "active", Value: change.Bool(version == 1)},
	}
}

func TestConformanceDebezium(t *testing.T) {
	sinktest.Run(t, &harness{k: testenv.StartKafka(t, "rows"), topic: "rows", format: FormatDebezium})
}

func TestConformanceJSON(t *testing.T) {
	sinktest.Run(t, &harness{k: testenv.StartKafka(t, "rows"), topic: "rows", format: FormatJSON})
}
