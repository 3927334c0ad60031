package sqlserver

import (
	"context"
	"fmt"
	"testing"

	"github.com/dvsync/dvsync/change"
)

// finishSnapshot opens a backfill at from, acks every record it reads and
// waits for it to be done.
func finishSnapshot(t *testing.T, srv *server, cfg Config, from change.Position, rows int) *Snapshot {
	t.Helper()
	ctx := context.Background()
	snap := newTestSnapshot(t, transports[0], srv, cfg, 2)
	if err := snap.Open(ctx, from); err != nil {
		t.Fatal(err)
	}
	if rows > 0 {
		got := readN(t, snap, rows)
		if err := snap.Ack(ctx, got[len(got)-1].Position); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "Done", func() bool {
		select {
		case <-snap.Done():
			return true
		default:
			return false
		}
	})
	return snap
}

func cursors(t *testing.T, pos change.Position) string {
	t.Helper()
	p, err := decodePosition(pos)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("orders=%+v empty=%+v", p.Tables["dbo.orders"], p.Tables["dbo.empty"])
}

func TestSnapshotStreamPositionMovesOnlyTheTablesItRead(t *testing.T) {
	srv, _ := newOrders()
	srv.addTable("dbo.empty", ordersCols, "tenant", "code")
	for i := range 3 {
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, fmt.Sprintf("k%d", i), 1)})
	}
	cfg := Config{Tables: []string{"dbo.orders", "dbo.empty"}}

	first := newTestSnapshot(t, transports[0], srv, cfg, 2)
	if _, err := first.StreamPosition(nil); err == nil {
		t.Error("StreamPosition before the read ended: no error")
	}
	first = finishSnapshot(t, srv, cfg, nil, 3)
	prog := first.Progress()
	if prog[0].Read != 3 || prog[0].Earlier != 0 || prog[0].Began.IsZero() {
		t.Errorf("progress %+v", prog)
	}
	fresh, err := first.StreamPosition(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cursors(t, fresh), "orders={Version:3 LSN:[] Seqval:[] Op:0 Snap:<nil>} empty={Version:3 LSN:[] Seqval:[] Op:0 Snap:<nil>}"; got != want {
		t.Errorf("after a first backfill: %s, want %s", got, want)
	}

	// Streaming went on to version 7 for orders; running the finished
	// backfill again must not move it back, and adds only what the
	// stream does not know.
	stream := (&position{Tables: map[string]cursor{"dbo.orders": {Version: 7}}}).encode()
	again := finishSnapshot(t, srv, cfg, first.Complete(), 0)
	if p := again.Progress(); !p[0].Done || p[0].Read != 0 || !p[0].Began.IsZero() {
		t.Errorf("a finished backfill's progress: %+v", p)
	}
	pos, err := again.StreamPosition(stream)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cursors(t, pos), "orders={Version:7 LSN:[] Seqval:[] Op:0 Snap:<nil>} empty={Version:3 LSN:[] Seqval:[] Op:0 Snap:<nil>}"; got != want {
		t.Errorf("after a finished backfill ran again: %s, want %s", got, want)
	}

	// A backfill resumed part-way through orders hands its recorded
	// point over for it: the stream's own cursor predates the rows read.
	partial := (&position{Tables: map[string]cursor{
		"dbo.orders": {Version: 2, Snap: &snap{After: encodeKey(change.Key{
			{Name: "tenant", Value: change.Int(1)}, {Name: "code", Value: change.Text("k0")}}), Rows: 1}},
		"dbo.empty": {Version: 2},
	}}).encode()
	resumed := finishSnapshot(t, srv, cfg, partial, 2)
	if p := resumed.Progress(); p[0].Read != 3 || p[0].Earlier != 1 {
		t.Errorf("a resumed backfill's progress: %+v", p)
	}
	pos, err = resumed.StreamPosition(stream)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cursors(t, pos), "orders={Version:2 LSN:[] Seqval:[] Op:0 Snap:<nil>} empty={Version:2 LSN:[] Seqval:[] Op:0 Snap:<nil>}"; got != want {
		t.Errorf("after a resumed backfill: %s, want %s", got, want)
	}
}
