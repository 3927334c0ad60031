package engine

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/change"
)

// healthSource is a fakeSource that reports its connection's health.
type healthSource struct {
	*fakeSource
	down atomic.Pointer[error]
}

func (s *healthSource) Healthy() error {
	if err := s.down.Load(); err != nil {
		return *err
	}
	return nil
}

func TestReadyFollowsTheSourcesHealth(t *testing.T) {
	e := newEnv(t)
	src := &healthSource{fakeSource: e.src}
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Metrics = reg
	p, err := New(cfg, src, passThrough, e.dst, e.st)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Ready(); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("Ready before Run = %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "ready", func() bool { return p.Ready() == nil })
	if got := gather(t, reg)["dvsync_engine_ready"]; got != 1 {
		t.Errorf("ready gauge = %v, want 1", got)
	}

	down := errors.New("connection refused; reconnecting")
	src.down.Store(&down)
	if err := p.Ready(); err == nil || !errors.Is(err, down) {
		t.Errorf("Ready with the source down = %v", err)
	}
	if got := gather(t, reg)["dvsync_engine_ready"]; got != 0 {
		t.Errorf("ready gauge = %v, want 0", got)
	}
	// The pipeline itself goes on: records read after reconnecting flow.
	src.down.Store(nil)
	e.src.add(row(change.OpInsert, 1))
	eventually(t, "record acked", func() bool { return e.src.lastAck() == 1 })
	if err := p.Ready(); err != nil {
		t.Errorf("Ready after the source came back = %v", err)
	}

	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.Ready(); err == nil {
		t.Error("Ready after Run returned")
	}
}

func TestReadyReportsAStoppedPipeline(t *testing.T) {
	e := newEnv(t)
	e.src.failWith = errors.New("replication slot dropped")
	p := e.start(testConfig())
	if err := e.wait(); err == nil {
		t.Fatal("Run returned nil after the source failed")
	}
	if err := p.Ready(); err == nil || !strings.Contains(err.Error(), "replication slot dropped") {
		t.Errorf("Ready after a fatal error = %v", err)
	}
}

func TestSetMapperAppliesToRecordsReadAfterIt(t *testing.T) {
	e := newEnv(t)
	e.mapFn = version(1)
	p := e.start(testConfig())
	e.src.add(row(change.OpInsert, 1))
	eventually(t, "first record acked", func() bool { return e.src.lastAck() == 1 })
	if err := p.SetMapper(nil); err == nil {
		t.Error("SetMapper(nil) accepted")
	}
	if err := p.SetMapper(version(2)); err != nil {
		t.Fatal(err)
	}
	e.src.add(row(change.OpInsert, 2))
	eventually(t, "second record acked", func() bool { return e.src.lastAck() == 2 })
	for id, want := range map[int64]string{1: "id=1,version=1", 2: "id=2,version=2"} {
		if r, _ := e.dst.row(id); rowText(r) != want {
			t.Errorf("row %d = %s, want %s", id, rowText(r), want)
		}
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}
