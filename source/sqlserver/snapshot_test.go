package sqlserver

import (
	"context"
	"fmt"
	"testing"
)

func newTestSnapshot(t *testing.T, tr transport, srv *server, cfg Config, pageSize int) *Snapshot {
	t.Helper()
	open, dsn := tr.connect(t, srv)
	cfg.DSN = dsn
	s, err := NewSnapshot(fast(cfg), SnapshotOptions{PageSize: pageSize}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.open = open
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestSnapshotReadsPagesResumesAndHandsOverToStreaming(t *testing.T) {
	for _, mode := range []Mode{ModeChangeTracking, ModeCDC} {
		t.Run(string(mode), func(t *testing.T) {
			eachTransport(t, func(t *testing.T, tr transport) {
				srv, _ := newOrders()
				srv.addTable("dbo.empty", ordersCols, "tenant", "code")
				for i := range 5 {
					srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, fmt.Sprintf("k%d", i), 1)})
				}
				cfg := Config{Mode: mode, Tables: []string{"dbo.orders", "dbo.empty"}}
				ctx := context.Background()
				snap := newTestSnapshot(t, tr, srv, cfg, 2)
				if err := snap.Open(ctx, nil); err != nil {
					t.Fatal(err)
				}
				got := readN(t, snap, 5)
				want := "r dbo.orders tenant=1,code=k0; r dbo.orders tenant=1,code=k1; r dbo.orders tenant=1,code=k2; r dbo.orders tenant=1,code=k3; r dbo.orders tenant=1,code=k4"
				if s := ops(got); s != want {
					t.Fatalf("got %s", s)
				}
				checkRow(t, "row", got[4].After, wantOrder(1, "k4", 1))
				// Interrupted after the third row, a backfill goes on after it.
				if err := snap.Ack(ctx, got[2].Position); err != nil {
					t.Fatal(err)
				}
				if err := snap.Close(ctx); err != nil {
					t.Fatal(err)
				}
				// Meanwhile a row changes: the backfill recorded the
				// stream's starting point before reading, so streaming
				// from its end delivers this change.
				srv.write("dbo.orders", nil, fakeChange{"U", orderRow(1, "k0", 2)})

				snap = newTestSnapshot(t, tr, srv, cfg, 2)
				if err := snap.Open(ctx, got[2].Position); err != nil {
					t.Fatal(err)
				}
				rest := readN(t, snap, 2)
				if s := ops(rest); s != "r dbo.orders tenant=1,code=k3; r dbo.orders tenant=1,code=k4" {
					t.Fatalf("resumed: %s", s)
				}
				select {
				case <-snap.Done():
					t.Fatal("done before the last record was acked")
				default:
				}
				if err := snap.Ack(ctx, rest[1].Position); err != nil {
					t.Fatal(err)
				}
				waitFor(t, "Done", func() bool {
					select {
					case <-snap.Done():
						return true
					default:
						return false
					}
				})
				prog := snap.Progress()
				if len(prog) != 2 || !prog[0].Done || prog[0].Read != 5 || !prog[1].Done || prog[1].Read != 0 {
					t.Errorf("progress %+v", prog)
				}
				complete := snap.Complete()
				if complete == nil {
					t.Fatal("no complete position")
				}

				src := newTestSource(t, tr, srv, cfg, nil)
				if err := src.Open(ctx, complete); err != nil {
					t.Fatal(err)
				}
				if s := ops(readN(t, src, 1)); s != "u dbo.orders tenant=1,code=k0" {
					t.Fatalf("streaming after the backfill: %s", s)
				}
			})
		})
	}
}

func TestSnapshotOfNothingIsDoneAtOnce(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, _ := newOrders()
		snap := newTestSnapshot(t, tr, srv, Config{Tables: []string{"dbo.orders"}}, 0)
		if err := snap.Open(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "Done", func() bool {
			select {
			case <-snap.Done():
				return true
			default:
				return false
			}
		})
	})
}
