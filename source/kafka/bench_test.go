package kafka

import (
	"context"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/internal/testenv"
)

// BenchmarkSourceRead reads a topic of JSON rows, shaped as dvbench's
// Kafka scenario shapes them, through a consumer group and acks each
// Read's last record as the engine does. It reports messages per second
// from the first record to the last, and the process's CPU time per
// message over the same stretch (the in-process brokers included), which
// a busy machine disturbs much less than the rate.
func BenchmarkSourceRead(b *testing.B) {
	const messages = 50_000
	k := testenv.StartKafka(b, "bench")
	msgs := make([]kafka.Message, messages)
	for i := range msgs {
		id := strconv.Itoa(i + 1)
		msgs[i] = kafka.Message{Key: []byte(id), Value: []byte(`{"id":` + id + `,"name":"Customer ` + id +
			`","employees":` + strconv.Itoa(i%5000) + `,"credit":` + strconv.Itoa(i%100000) + `.25}`)}
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Addrs...), Topic: "bench", Balancer: &kafka.Hash{},
		RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchBytes: 4 << 20, BatchTimeout: 5 * time.Millisecond}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		b.Fatal(err)
	}
	w.Close()

	var took, cpu time.Duration
	n := 0
	for b.Loop() {
		s, err := New(testConfig(k, "bench-"+strconv.Itoa(n), Topic{Name: "bench", KeyFields: []string{"id"}}), nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		if err := s.Open(ctx, nil); err != nil {
			b.Fatal(err)
		}
		var began time.Time
		var cpu0 time.Duration
		for got := 0; got < messages; {
			recs, err := s.Read(ctx)
			if err != nil {
				b.Fatalf("Read after %d of %d: %v", got, messages, err)
			}
			if got == 0 {
				began, cpu0 = time.Now(), processCPU()
			}
			got += len(recs)
			if err := s.Ack(ctx, recs[len(recs)-1].Position); err != nil {
				b.Fatal(err)
			}
		}
		took += time.Since(began)
		cpu += processCPU() - cpu0
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		n++
	}
	b.ReportMetric(float64(n*messages)/took.Seconds(), "msgs/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n*messages), "cpu-ns/msg")
}

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
