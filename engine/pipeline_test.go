package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/dvsync/dvsync/change"
)

func TestOrderPerKeyWithManyWorkers(t *testing.T) {
	e := newEnv(t)
	const keys, changes = 40, 100
	for n := range changes {
		for k := range keys {
			e.src.add(row(change.OpUpdate, int64(k), col("n", change.Int(int64(n)))))
		}
	}
	// Every seventh write fails retryably, so that some batches are written
	// late while other workers go on.
	var writes atomic.Int64
	e.dst.hook = func(context.Context, []change.Record) error {
		if writes.Add(1)%7 == 0 {
			return change.Retryable(errors.New("busy"), 0)
		}
		return nil
	}
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize = 8, 5
	e.src.readSize = 13
	e.start(cfg)

	eventually(t, "every record acked", func() bool { return e.src.lastAck() == keys*changes })
	for k := range keys {
		var last int64 = -1
		for _, w := range e.dst.writesOf(int64(k)) {
			n, _ := w.After.Get("n")
			if n.Int() <= last {
				t.Fatalf("key %d: wrote n=%d after n=%d", k, n.Int(), last)
			}
			last = n.Int()
		}
		if last != changes-1 {
			t.Errorf("key %d ends at n=%d, want %d", k, last, changes-1)
		}
	}
	st := e.p.Stats()
	if st.Read != keys*changes || st.Mapped != keys*changes || st.Retries == 0 || st.InFlight != 0 {
		t.Errorf("stats = %+v", st)
	}
	if err := e.shutdown(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

func TestChangesToOneKeyAreFoldedIntoOneWrite(t *testing.T) {
	e := newEnv(t)
	e.src.add(
		row(change.OpInsert, 1, col("x", change.Text("a")), col("y", change.Text("a"))),
		row(change.OpUpdate, 2, col("x", change.Text("a"))),
		row(change.OpUpdate, 1, col("x", change.Text("b")), col("y", change.Unchanged())),
		row(change.OpDelete, 2),
		row(change.OpUpdate, 1, col("x", change.Text("c"))),
		row(change.OpInsert, 2, col("y", change.Text("new"))),
	)
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize = 1, 6 // one batch, written when all six are in
	cfg.BatchWait = 1 << 40
	e.src.readSize = 6
	e.start(cfg)

	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 6 })
	if n := e.dst.batchCount(); n != 1 {
		t.Fatalf("%d batches written, want 1", n)
	}
	w1, w2 := e.dst.writesOf(1), e.dst.writesOf(2)
	if len(w1) != 1 || len(w2) != 1 {
		t.Fatalf("writes per key: %d and %d, want 1 and 1", len(w1), len(w2))
	}
	assertRecord(t, w1[0], row(change.OpInsert, 1, col("x", change.Text("c")), col("y", change.Text("a"))))
	assertRecord(t, w2[0], row(change.OpInsert, 2, col("y", change.Text("new"))))
	if st := e.p.Stats(); st.Mapped != 6 || st.Written != 2 {
		t.Errorf("Mapped, Written = %d, %d; want 6, 2", st.Mapped, st.Written)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestSlowEarlierRecordHoldsBackTheAck(t *testing.T) {
	e := newEnv(t)
	for i := range 50 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	release := make(chan struct{})
	var released atomic.Bool
	t.Cleanup(func() {
		if !released.Load() {
			close(release)
		}
	})
	e.dst.hook = func(ctx context.Context, batch []change.Record) error {
		for _, r := range batch {
			if r.Key[0].Value.Int() == 2 {
				<-release
			}
		}
		return nil
	}
	e.src.onAck = func(pos change.Position) {
		if indexOf(pos) > 1 && !released.Load() {
			t.Errorf("acked position %d while record 2 was not durable", indexOf(pos))
		}
	}
	cfg := testConfig()
	cfg.BatchSize = 1
	p := e.start(cfg)

	// Records after 2 on its worker wait behind it; the others do not.
	blocked := 0
	for id, same := range sameWorker(p, 2, 50) {
		if same && id > 2 {
			blocked++
		}
	}
	eventually(t, "the other records written and record 1 acked", func() bool {
		return p.Stats().Written == uint64(49-blocked) && e.src.lastAck() == 1
	})
	if got := e.st.saved(); got != 1 {
		t.Fatalf("saved position %d, want 1", got)
	}
	released.Store(true)
	close(release)
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 50 })
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestAcksArePersistedFirst(t *testing.T) {
	e := newEnv(t)
	// fakeSource.Ack fails the test if the store has not saved the
	// position it is acking; here every record gets its own ack.
	e.src.readSize = 1
	cfg := testConfig()
	cfg.BatchSize = 1
	e.start(cfg)
	for i := range 20 {
		e.src.add(row(change.OpInsert, int64(i)))
		eventually(t, "the record acked", func() bool { return e.src.lastAck() == i+1 })
	}
	if got := e.st.saved(); got != 20 {
		t.Errorf("saved position %d, want 20", got)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestRunResumesAtSavedPosition(t *testing.T) {
	e := newEnv(t)
	for i := range 10 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	_ = e.st.SavePosition(context.Background(), testPipeline, posOf(6))
	e.start(testConfig())
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 10 })
	if indexOf(e.src.from) != 6 {
		t.Errorf("source opened at %d, want 6", indexOf(e.src.from))
	}
	for i := int64(1); i <= 10; i++ {
		if _, ok := e.dst.row(i); ok != (i > 6) {
			t.Errorf("row %d written: %v", i, ok)
		}
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestBackpressureBoundsInFlight(t *testing.T) {
	e := newEnv(t)
	const limit, total = 20, 500
	for i := range total {
		e.src.add(row(change.OpInsert, int64(i)))
	}
	gate := make(chan struct{})
	e.dst.hook = func(ctx context.Context, batch []change.Record) error {
		select {
		case <-gate:
		case <-ctx.Done():
		}
		return nil
	}
	var p atomic.Pointer[Pipeline]
	e.src.onRead = func() {
		if p := p.Load(); p != nil && p.Stats().InFlight > limit {
			t.Errorf("%d records in flight, limit %d", p.Stats().InFlight, limit)
		}
	}
	e.src.readSize = 7
	cfg := testConfig()
	cfg.MaxInFlight = limit
	p.Store(e.start(cfg))

	eventually(t, "in-flight records to reach the limit", func() bool { return e.p.Stats().InFlight == limit })
	// The reader holds at most one Read's records beyond the limit.
	if got := e.src.emitted(); got > limit+e.src.readSize {
		t.Fatalf("source emitted %d records with %d in flight", got, limit)
	}
	close(gate)
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == total })
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestRunOnlyOnce(t *testing.T) {
	e := newEnv(t)
	p := e.start(testConfig())
	eventually(t, "Run to start", func() bool { return p.Stats().Running })
	if err := p.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if p.Stats().Running {
		t.Error("Running after Run returned")
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.mapFn = MapperFunc(func(r *change.Record) (change.Record, bool, error) {
		switch r.Key[0].Value.Int() {
		case 1:
			return change.Record{}, false, nil
		case 2:
			return change.Record{}, false, errors.New("unmappable")
		}
		return *r, true, nil
	})
	var failed atomic.Bool
	e.dst.hook = func(_ context.Context, batch []change.Record) error {
		if batch[0].Key[0].Value.Int() == 3 {
			return change.Permanent(errors.New("rejected"))
		}
		if failed.CompareAndSwap(false, true) {
			return change.Retryable(errors.New("busy"), 0)
		}
		return nil
	}
	for i := range 10 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Metrics, cfg.BatchSize, cfg.Workers = reg, 1, 1
	e.start(cfg)
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 10 })

	want := map[string]float64{
		"dvsync_engine_records_read_total{op=insert,table=t}":                      10,
		"dvsync_engine_records_mapped_total":                                       8,
		"dvsync_engine_records_skipped_total":                                      1,
		"dvsync_engine_records_written_total{op=insert,table=t}":                   7,
		"dvsync_engine_records_failed_total{op=insert,table=t}":                    3, // 1 unmappable, 1 rejected, 1 retried
		"dvsync_engine_records_dead_lettered_total{op=insert,stage=map,table=t}":   1,
		"dvsync_engine_records_dead_lettered_total{op=insert,stage=write,table=t}": 1,
		"dvsync_engine_write_retries_total":                                        1,
		"dvsync_engine_in_flight_records":                                          0,
		"dvsync_engine_batch_size_records":                                         9, // 7 written, 1 rejected, 1 retried
	}
	got := gather(t, reg)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("%s = %v, want %v", name, got[name], v)
		}
	}
	if got["dvsync_engine_write_duration_seconds"] != 9 {
		t.Errorf("write latency observations = %v, want 9", got["dvsync_engine_write_duration_seconds"])
	}
	if got["dvsync_engine_last_ack_timestamp_seconds"] <= 0 {
		t.Error("last ack time not set")
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

// gather returns each metric of pipeline "test" by name{label=value}, with
// histograms as their sample count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := f.GetName()
			var labels []string
			pipeline := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "pipeline" {
					pipeline = l.GetValue()
					continue
				}
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if pipeline != testPipeline {
				t.Errorf("%s has pipeline label %q", name, pipeline)
			}
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out[name] = metricValue(m)
		}
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	panic(fmt.Sprintf("unexpected metric %v", m))
}
