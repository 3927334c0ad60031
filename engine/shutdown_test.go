package engine

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func TestShutdownDrainsAndAcksTheFinalWatermark(t *testing.T) {
	e := newEnv(t)
	const total = 100
	for i := range total {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	cfg := testConfig()
	// Workers would hold these records for ever: only the drain writes them.
	cfg.BatchSize, cfg.BatchWait = 1000, 1<<40
	e.start(cfg)

	eventually(t, "every record routed", func() bool { return e.p.Stats().Mapped == total })
	if st := e.p.Stats(); st.Written != 0 || e.src.lastAck() != 0 {
		t.Fatalf("written %d, acked %d before shutdown", st.Written, e.src.lastAck())
	}
	if err := e.shutdown(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	for i := int64(1); i <= total; i++ {
		if _, ok := e.dst.row(i); !ok {
			t.Fatalf("row %d not written", i)
		}
	}
	if e.src.lastAck() != total || e.st.saved() != total {
		t.Errorf("acked %d, saved %d; want %d", e.src.lastAck(), e.st.saved(), total)
	}
	if st := e.p.Stats(); indexOf(st.Acked) != total || st.LastAck.IsZero() || st.Running {
		t.Errorf("stats = %+v", st)
	}
	if !e.src.isClosed() || !e.dst.isClosed() {
		t.Error("source or sink not closed")
	}
}

func TestShutdownTimeoutCancelsAHungWrite(t *testing.T) {
	e := newEnv(t)
	for i := range 50 {
		e.src.add(row(change.OpInsert, int64(i+1)))
	}
	var cancelled atomic.Bool
	e.dst.hook = func(ctx context.Context, batch []change.Record) error {
		for _, r := range batch {
			if r.Key[0].Value.Int() == 2 {
				<-ctx.Done() // hangs until the engine gives up
				cancelled.Store(true)
				return ctx.Err()
			}
		}
		return nil
	}
	cfg := testConfig()
	cfg.BatchSize = 1
	cfg.ShutdownTimeout = 200 * time.Millisecond
	p := e.start(cfg)

	blocked := 0
	for id, same := range sameWorker(p, 2, 50) {
		if same && id > 2 {
			blocked++
		}
	}
	eventually(t, "the other records written", func() bool { return p.Stats().Written == uint64(49-blocked) })
	if err := e.shutdown(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if !cancelled.Load() {
		t.Error("the hung write was not cancelled")
	}
	// Records after 2 on the other workers are durable, but the watermark
	// stops before 2: it and what follows are replayed after a restart.
	if e.src.lastAck() != 1 || e.st.saved() != 1 {
		t.Errorf("acked %d, saved %d; want 1", e.src.lastAck(), e.st.saved())
	}
	if !e.src.isClosed() || !e.dst.isClosed() {
		t.Error("source or sink not closed")
	}
}

func TestShutdownAbandonsASinkThatIgnoresCancellation(t *testing.T) {
	e := newEnv(t)
	unblock := make(chan struct{})
	t.Cleanup(func() { close(unblock) }) // runs before the leak check
	e.dst.hook = func(context.Context, []change.Record) error {
		<-unblock
		return nil
	}
	e.src.add(row(change.OpInsert, 1), row(change.OpInsert, 2))
	cfg := testConfig()
	// Long enough that a loaded machine still runs the reader's return
	// and the source's Close within it; the test waits it out in full.
	cfg.ShutdownTimeout = time.Second
	e.start(cfg)

	eventually(t, "the write to start", func() bool { return e.dst.batchCount() > 0 })
	err := e.shutdown()
	if err == nil || !strings.Contains(err.Error(), "sink not closed") {
		t.Fatalf("Run = %v, want an error saying the sink was not closed", err)
	}
	if e.dst.isClosed() {
		t.Error("sink closed while a Write was running")
	}
	if !e.src.isClosed() || e.src.lastAck() != 0 {
		t.Errorf("source closed: %v, acked %d", e.src.isClosed(), e.src.lastAck())
	}
}
