package engine

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// genSource emits total records as fast as they are read, cycling over a
// pool of prepared rows so that the benchmark measures the engine rather
// than record construction.
type genSource struct {
	pool  []change.Record
	total atomic.Int64
	next  int64
	start chan struct{}
}

func (s *genSource) Open(context.Context, change.Position) error { return nil }
func (s *genSource) Ack(context.Context, change.Position) error  { return nil }
func (s *genSource) Close(context.Context) error                 { return nil }

func (s *genSource) Read(ctx context.Context) ([]change.Record, error) {
	select {
	case <-s.start:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	n := min(512, s.total.Load()-s.next)
	if n == 0 {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	out := make([]change.Record, n)
	for i := range out {
		out[i] = s.pool[int(s.next)%len(s.pool)]
		s.next++
	}
	return out, nil
}

type nopSink struct{}

func (nopSink) Write(context.Context, []change.Record) error { return nil }
func (nopSink) Close(context.Context) error                  { return nil }

// BenchmarkPipeline measures records per second through the whole engine
// (read, map, route, fold, write, ack) with a sink that does nothing.
// One op is one record, so allocs/op is allocations per record.
func BenchmarkPipeline(b *testing.B) {
	src := &genSource{start: make(chan struct{})}
	for i := range 10_000 {
		r := row(change.OpUpdate, int64(i), col("name", change.Text("customer")), col("n", change.Int(int64(i))))
		r.Position = posOf(i + 1)
		src.pool = append(src.pool, r)
	}
	st := newMemStore()
	p, err := New(Config{Name: testPipeline, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		src, passThrough, nopSink{}, st)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	b.ReportAllocs()
	b.ResetTimer()
	src.total.Store(int64(b.N))
	close(src.start)
	tick := time.NewTicker(100 * time.Microsecond)
	defer tick.Stop()
	for {
		if passed, _ := p.tracker.watermark(); passed == uint64(b.N) {
			break
		}
		<-tick.C
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
