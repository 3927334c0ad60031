package sqlserver

import (
	"context"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/change"
)

func cdcConfig(pageSize int) Config {
	return Config{Mode: ModeCDC, Tables: []string{"dbo.orders"}, PageSize: pageSize}
}

func TestCDCPairsUpdatesAndKeepsStatementOrder(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, _ := newOrders()
		// A page of three rows splits the update below between its
		// before and after images.
		src := newTestSource(t, tr, srv, cdcConfig(3), nil)
		ctx := context.Background()
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		srv.write("dbo.orders", nil,
			fakeChange{"I", orderRow(1, "a", 1)},
			fakeChange{"I", orderRow(1, "b", 1)},
			fakeChange{"U", orderRow(1, "a", 2)},
			fakeChange{"D", orderRow(1, "b", 0)})
		got := readN(t, src, 4)
		if s := ops(got); s != "c dbo.orders tenant=1,code=a; c dbo.orders tenant=1,code=b; u dbo.orders tenant=1,code=a; d dbo.orders tenant=1,code=b" {
			t.Fatalf("got %s", s)
		}
		checkRow(t, "update before", got[2].Before, wantOrder(1, "a", 1))
		checkRow(t, "update after", got[2].After, wantOrder(1, "a", 2))
		checkRow(t, "delete before", got[3].Before, wantOrder(1, "b", 1))
		if got[3].After != nil {
			t.Errorf("delete has After")
		}
		if got[2].Meta["lsn"] == "" || got[2].Meta["seqval"] == "" {
			t.Errorf("meta: %v", got[2].Meta)
		}

		// Resuming after the insert of b replays from the update on.
		if err := src.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := src.Open(ctx, got[1].Position); err != nil {
			t.Fatal(err)
		}
		if s := ops(readN(t, src, 2)); s != "u dbo.orders tenant=1,code=a; d dbo.orders tenant=1,code=b" {
			t.Fatalf("resumed: %s", s)
		}
		readNone(t, src)
	})
}

func TestCDCKeyChangeBecomesDeleteAndInsert(t *testing.T) {
	s := &streamer{cfg: fast(cdcConfig(10)).withDefaults(), pos: &position{Tables: map[string]cursor{}}}
	ft := &table{name: "dbo.orders", keys: []string{"tenant", "code"}, captured: []string{"tenant", "code", "qty"}}
	row := func(code string, qty int64) change.Row {
		return change.Row{{Name: "tenant", Value: change.Int(1)}, {Name: "code", Value: change.Text(code)}, {Name: "qty", Value: change.Int(qty)}}
	}
	recs := s.cdcRecords(ft, []cdcRow{
		{lsn: lsn(5, 0), seqval: lsn(5, 1), op: cdcUpdateBefore, row: row("a", 1)},
		{lsn: lsn(5, 0), seqval: lsn(5, 1), op: cdcUpdateAfter, row: row("b", 1)},
	})
	if got := ops(recs); got != "d dbo.orders tenant=1,code=a; c dbo.orders tenant=1,code=b" {
		t.Fatalf("got %s", got)
	}
	if string(recs[0].Position) == string(recs[1].Position) {
		t.Errorf("delete and insert share a position")
	}
}

func TestCDCBehindMinLSNReadsTheTableAgain(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, tbl := newOrders()
		lb, logger := newLog()
		src := newTestSource(t, tr, srv, cdcConfig(10), logger)
		ctx := context.Background()
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, "a", 1)})
		first := readN(t, src, 1)
		if err := src.Close(ctx); err != nil {
			t.Fatal(err)
		}
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, "b", 1)})
		srv.write("dbo.orders", nil, fakeChange{"U", orderRow(1, "a", 7)})
		// Cleanup removes everything before the last transaction.
		srv.mu.Lock()
		tbl.minLSN = srv.maxLSN
		tbl.cdc = tbl.cdc[len(tbl.cdc)-2:]
		srv.mu.Unlock()

		if err := src.Open(ctx, first[0].Position); err != nil {
			t.Fatal(err)
		}
		got := readN(t, src, 2)
		if s := ops(got); s != "r dbo.orders tenant=1,code=a; r dbo.orders tenant=1,code=b" {
			t.Fatalf("re-snapshot: %s", s)
		}
		checkRow(t, "re-read", got[0].After, wantOrder(1, "a", 7))
		if !strings.Contains(lb.String(), "reading the table again") {
			t.Errorf("no warning:\n%s", lb)
		}
		srv.write("dbo.orders", nil, fakeChange{"D", orderRow(1, "a", 0)})
		if s := ops(readN(t, src, 1)); s != "d dbo.orders tenant=1,code=a" {
			t.Fatalf("after the re-snapshot: %s", s)
		}
	})
}

func TestCDCWarnsWhenTheCaptureInstanceNoLongerMatches(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, tbl := newOrders()
		// A column was added to the table after the instance was
		// created, and one the instance captures has been dropped.
		srv.mu.Lock()
		tbl.captured = append(append([]string{}, tbl.captured[:len(tbl.captured)-1]...), "legacy")
		srv.mu.Unlock()
		lb, logger := newLog()
		src := newTestSource(t, tr, srv, cdcConfig(10), logger)
		ctx := context.Background()
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		log := lb.String()
		for _, want := range []string{"capture instance no longer matches", "capture_instance=dbo_orders", "not captured: qty", "captured but no longer in the table: legacy"} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %q:\n%s", want, log)
			}
		}
		// Changes still flow with the captured columns.
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(4, "x", 1)})
		got := readN(t, src, 1)
		if v, ok := got[0].After.Get("legacy"); !ok || !v.IsNull() {
			t.Errorf("dropped column: %v %v", v, ok)
		}
		if _, ok := got[0].After.Get("qty"); ok {
			t.Errorf("an uncaptured column has a value")
		}
	})
}

func TestCDCOpenNamesWhatIsMissing(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		for _, c := range []struct {
			name  string
			setup func(*server, *fakeTable)
			want  string
		}{
			{"database", func(s *server, _ *fakeTable) { s.cdcEnabled = false }, "EXEC sys.sp_cdc_enable_db"},
			{"instance", func(_ *server, t *fakeTable) { t.minLSN = nil }, "capture instance dbo_orders of table dbo.orders does not exist"},
		} {
			t.Run(c.name, func(t *testing.T) {
				srv, tbl := newOrders()
				c.setup(srv, tbl)
				src := newTestSource(t, tr, srv, cdcConfig(10), nil)
				if err := src.Open(context.Background(), nil); err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("got %v, want %q", err, c.want)
				}
			})
		}
	})
}
