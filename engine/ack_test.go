package engine

import (
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// Once every record read is durable, the watermark is saved and acked at
// once, not at the next tick: a backfill ends as soon as its last rows
// are written.
func TestAckAsSoonAsNothingIsInFlight(t *testing.T) {
	e := newEnv(t)
	const n = 50
	for i := range n {
		e.src.add(row(change.OpInsert, int64(i), col("n", change.Int(int64(i)))))
	}
	e.src.readSize = n // one Read: the pipeline is idle once, when all are done
	cfg := testConfig()
	cfg.AckInterval = time.Hour
	e.start(cfg)
	eventually(t, "the last record acked", func() bool { return e.src.lastAck() == n })
	if got := e.st.saved(); got != n {
		t.Fatalf("saved position %d, want %d", got, n)
	}

	// The next idle moment comes within AckInterval/4 of that commit: it
	// waits for the next tick, so that a trickle of changes does not save
	// the position for each one.
	e.src.add(row(change.OpInsert, n, col("n", change.Int(n))))
	eventually(t, "the new record written", func() bool { _, ok := e.dst.row(n); return ok })
	eventually(t, "nothing in flight", func() bool { return e.p.Stats().InFlight == 0 })
	if got := e.src.lastAck(); got != n {
		t.Fatalf("acked %d within AckInterval/4 of the previous ack, want still %d", got, n)
	}
	if err := e.shutdown(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if got := e.src.lastAck(); got != n+1 {
		t.Fatalf("acked %d after shutdown, want %d", got, n+1)
	}
}
