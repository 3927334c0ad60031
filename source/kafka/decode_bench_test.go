package kafka

import (
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/internal/kafkaconn"
)

// BenchmarkDecode decodes one message of each common shape.
func BenchmarkDecode(b *testing.B) {
	row := `{"id":2,"name":"Customer 2","employees":2,"credit":2.25,"email":"c2@example.com","active":true}`
	schema := `{"type":"struct","fields":[{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},` +
		`{"type":"string","optional":true,"field":"name"},{"type":"int32","optional":true,"field":"employees"},` +
		`{"type":"double","optional":true,"field":"credit"},{"type":"string","optional":true,"field":"email"},` +
		`{"type":"boolean","optional":true,"field":"active"}],"optional":true,"name":"dbserver1.inventory.customers.Value","field":"before"},` +
		`{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},` +
		`{"type":"string","optional":true,"field":"name"},{"type":"int32","optional":true,"field":"employees"},` +
		`{"type":"double","optional":true,"field":"credit"},{"type":"string","optional":true,"field":"email"},` +
		`{"type":"boolean","optional":true,"field":"active"}],"optional":true,"name":"dbserver1.inventory.customers.Value","field":"after"},` +
		`{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},` +
		`{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"},` +
		`{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}],"optional":false,"name":"dbserver1.inventory.customers.Envelope"}`
	payload := `{"before":null,"after":` + row + `,"source":{"version":"2.7.0.Final","connector":"postgresql","name":"dbserver1","ts_ms":1700000000123},"op":"c","ts_ms":1700000000999}`
	for _, tc := range []struct {
		name   string
		format Format
		key    string
		value  string
	}{
		{"json", FormatJSON, `2`, row},
		{"debezium", FormatDebezium, `{"id":2}`, payload},
		{"debezium-schema", FormatDebezium, `{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"}],"optional":false,"name":"dbserver1.inventory.customers.Key"},"payload":{"id":2}}`,
			`{"schema":` + schema + `,"payload":` + payload + `}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := New(Config{Connection: kafkaconn.Config{Brokers: []string{"127.0.0.1:9"}}, GroupID: "g", Topics: []Topic{{Name: "t", Format: tc.format}}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			m := kafka.Message{Topic: "t", Partition: 1, Offset: 1234567, Key: []byte(tc.key), Value: []byte(tc.value)}
			b.SetBytes(int64(len(m.Value)))
			b.ReportAllocs()
			for b.Loop() {
				if d := s.decode(&m); d.skip || d.rec.Meta[MetaDecodeError] != "" {
					b.Fatalf("not decoded: %v", d.rec.Meta)
				}
			}
		})
	}
}
