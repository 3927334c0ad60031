package sqlserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/tdsfake"
)

// ordersCols is a table with a composite key and every common type.
var ordersCols = []tdsfake.Column{
	{Name: "tenant", Type: tdsfake.Int},
	{Name: "code", Type: tdsfake.NVarChar(20)},
	{Name: "amount", Type: tdsfake.Decimal(19, 4)},
	{Name: "price", Type: tdsfake.Money},
	{Name: "placed", Type: tdsfake.DateTime2(7)},
	{Name: "seen", Type: tdsfake.DateTimeOffset(7)},
	{Name: "ref", Type: tdsfake.UniqueIdentifier},
	{Name: "note", Type: tdsfake.NVarCharMax},
	{Name: "blob", Type: tdsfake.VarBinaryMax},
	{Name: "paid", Type: tdsfake.Bit},
	{Name: "due", Type: tdsfake.Date},
	{Name: "ratio", Type: tdsfake.Float},
	{Name: "qty", Type: tdsfake.BigInt},
}

var (
	ref    = [16]byte{0x6f, 0x96, 0x19, 0xff, 0x8b, 0x86, 0xd0, 0x11, 0xb4, 0x2d, 0x00, 0xc0, 0x4f, 0xc9, 0x64, 0xff}
	placed = time.Date(2024, 3, 1, 9, 30, 15, 123456700, time.UTC)
	seen   = time.Date(2024, 3, 1, 11, 30, 15, 100, time.FixedZone("", 2*3600))
	note   = strings.Repeat("ünïcødé ", 1000)
)

func orderRow(tenant int, code string, qty int) []any {
	return []any{int64(tenant), code, "12345678901234.5678", "-922337203685477.5808", placed, seen, ref, note,
		[]byte{0, 1, 0xfe, 0xff}, true, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), 0.1, int64(qty)}
}

// wantOrder is orderRow as a change.Row.
func wantOrder(tenant int, code string, qty int) change.Row {
	return change.Row{
		{Name: "tenant", Value: change.Int(int64(tenant))},
		{Name: "code", Value: change.Text(code)},
		{Name: "amount", Value: change.MustDecimal("12345678901234.5678")},
		{Name: "price", Value: change.MustDecimal("-922337203685477.5808")},
		{Name: "placed", Value: change.Timestamp(placed)},
		{Name: "seen", Value: change.Timestamp(seen)},
		{Name: "ref", Value: change.MustDecimal("0")}, // replaced below
		{Name: "note", Value: change.Text(note)},
		{Name: "blob", Value: change.Bytes([]byte{0, 1, 0xfe, 0xff})},
		{Name: "paid", Value: change.Bool(true)},
		{Name: "due", Value: change.Date(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC))},
		{Name: "ratio", Value: change.Float(0.1)},
		{Name: "qty", Value: change.Int(int64(qty))},
	}.Set("ref", mustUUID("6f9619ff-8b86-d011-b42d-00c04fc964ff"))
}

func mustUUID(s string) change.Value {
	v, err := change.ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return v
}

func checkRow(t *testing.T, what string, got, want change.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d columns, want %d: %v", what, len(got), len(want), got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || !got[i].Value.Equal(want[i].Value) {
			t.Errorf("%s: column %d: got %s=%v (%s), want %s=%v (%s)", what, i, got[i].Name, got[i].Value, got[i].Value.Kind(),
				want[i].Name, want[i].Value, want[i].Value.Kind())
		}
	}
}

func newOrders() (*server, *fakeTable) {
	srv := newServer()
	t := srv.addTable("dbo.orders", ordersCols, "tenant", "code")
	return srv, t
}

func TestChangeTrackingStreamsChangesInVersionOrder(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, _ := newOrders()
		src := newTestSource(t, tr, srv, Config{Tables: []string{"dbo.orders"}}, nil)
		ctx := context.Background()
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, "a", 1)}, fakeChange{"I", orderRow(1, "b", 1)})
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(2, "a", 1)})
		got := readN(t, src, 3)
		if s := ops(got); s != "c dbo.orders tenant=1,code=a; c dbo.orders tenant=1,code=b; c dbo.orders tenant=2,code=a" {
			t.Fatalf("got %s", s)
		}
		checkRow(t, "insert", got[0].After, wantOrder(1, "a", 1))
		if got[0].Origin.System != "sqlserver" || got[0].Origin.Name != "" || got[0].Meta["version"] != "1" {
			t.Errorf("origin %+v meta %v", got[0].Origin, got[0].Meta)
		}

		// An update and a delete; then a write made by dvsync's sink
		// (under its context), which is not echoed; then an update by
		// another application's context, which is.
		srv.write("dbo.orders", nil, fakeChange{"U", orderRow(1, "a", 2)}, fakeChange{"D", orderRow(1, "b", 0)})
		srv.write("dbo.orders", []byte("dvsync"), fakeChange{"U", orderRow(2, "a", 9)})
		srv.write("dbo.orders", []byte("erp"), fakeChange{"I", orderRow(3, "z", 1)})
		got = readN(t, src, 3)
		if s := ops(got); s != "u dbo.orders tenant=1,code=a; d dbo.orders tenant=1,code=b; c dbo.orders tenant=3,code=z" {
			t.Fatalf("got %s", s)
		}
		checkRow(t, "update", got[0].After, wantOrder(1, "a", 2))
		if got[1].After != nil || !got[1].Key.Equal(intKey("tenant", 1, "code", "b")) {
			t.Errorf("delete: %+v", got[1])
		}
		if got[2].Origin.Name != "erp" {
			t.Errorf("origin of another application's write: %+v", got[2].Origin)
		}
		readNone(t, src)

		// Every poll ran in a snapshot transaction.
		for _, req := range srv.statements() {
			if strings.Contains(req.SQL, "CHANGETABLE") && (req.Transaction == 0 || req.Isolation != 5) {
				t.Errorf("change query outside a snapshot transaction: tx %d, isolation %d", req.Transaction, req.Isolation)
			}
		}
	})
}

func TestChangeTrackingResumesFromAckedPosition(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, _ := newOrders()
		cfg := Config{Tables: []string{"dbo.orders"}}
		src := newTestSource(t, tr, srv, cfg, nil)
		ctx := context.Background()
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		// Two rows share version 1, one has version 2.
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, "a", 1)}, fakeChange{"I", orderRow(1, "b", 1)})
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, "c", 1)})
		got := readN(t, src, 3)
		if err := src.Ack(ctx, got[0].Position); err != nil {
			t.Fatal(err)
		}
		if err := src.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// Resuming after the first of version 1 replays version 1 (at
		// least once), then version 2.
		if err := src.Open(ctx, got[0].Position); err != nil {
			t.Fatal(err)
		}
		again := readN(t, src, 3)
		if s := ops(again); s != ops(got) {
			t.Fatalf("after resuming mid-version: %s, want %s", s, ops(got))
		}
		if err := src.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// Resuming after the last record replays nothing.
		if err := src.Open(ctx, got[2].Position); err != nil {
			t.Fatal(err)
		}
		readNone(t, src)
		srv.write("dbo.orders", nil, fakeChange{"U", orderRow(1, "c", 2)})
		if s := ops(readN(t, src, 1)); s != "u dbo.orders tenant=1,code=c" {
			t.Fatalf("got %s", s)
		}
		// Positions are distinct.
		seen := map[string]bool{}
		for _, r := range append(got, again...)[:3] {
			if seen[string(r.Position)] {
				t.Errorf("position of %s repeats", r.String())
			}
			seen[string(r.Position)] = true
		}
	})
}

func TestChangeTrackingBehindMinValidVersionReadsTheTableAgain(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, tbl := newOrders()
		lb, logger := newLog()
		cfg := Config{Tables: []string{"dbo.orders"}, PageSize: 2}
		src := newTestSource(t, tr, srv, cfg, logger)
		ctx := context.Background()
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, "a", 1)})
		first := readN(t, src, 1)
		if err := src.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// While dvsync is away, rows change and cleanup drops the
		// changes since its version.
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, "b", 1)}, fakeChange{"I", orderRow(1, "c", 1)})
		srv.write("dbo.orders", nil, fakeChange{"D", orderRow(1, "a", 0)})
		srv.mu.Lock()
		minValid := *srv.ctCurrent
		tbl.ctMin = &minValid
		srv.mu.Unlock()

		if err := src.Open(ctx, first[0].Position); err != nil {
			t.Fatal(err)
		}
		got := readN(t, src, 2)
		if s := ops(got); s != "r dbo.orders tenant=1,code=b; r dbo.orders tenant=1,code=c" {
			t.Fatalf("re-snapshot: %s", s)
		}
		checkRow(t, "re-read row", got[1].After, wantOrder(1, "c", 1))
		if !strings.Contains(lb.String(), "reading the table again") || !strings.Contains(lb.String(), "min_valid_version=3") {
			t.Errorf("no warning about the re-snapshot in the log:\n%s", lb)
		}
		// Then it streams from the version taken before the read.
		srv.write("dbo.orders", nil, fakeChange{"U", orderRow(1, "b", 5)})
		if s := ops(readN(t, src, 1)); s != "u dbo.orders tenant=1,code=b" {
			t.Fatalf("after the re-snapshot: %s", s)
		}

		// A re-snapshot interrupted after its first record resumes after
		// that record's key, then streams.
		if err := src.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if err := src.Open(ctx, got[0].Position); err != nil {
			t.Fatal(err)
		}
		resumed := readN(t, src, 2)
		if s := ops(resumed); s != "r dbo.orders tenant=1,code=c; u dbo.orders tenant=1,code=b" {
			t.Fatalf("resumed re-snapshot: %s", s)
		}
	})
}

func TestChangeTrackingOpenNamesWhatIsMissing(t *testing.T) {
	cases := []struct {
		name  string
		setup func(*server, *fakeTable)
		want  string
	}{
		{"snapshot isolation", func(s *server, _ *fakeTable) { s.snapshotIsolation = 0 }, "ALTER DATABASE [sales] SET ALLOW_SNAPSHOT_ISOLATION ON"},
		{"database", func(s *server, _ *fakeTable) { s.ctCurrent = nil }, "SET CHANGE_TRACKING = ON"},
		{"table", func(_ *server, t *fakeTable) { t.ctMin = nil }, "ALTER TABLE [dbo].[orders] ENABLE CHANGE_TRACKING"},
		{"primary key", func(_ *server, t *fakeTable) { t.keys = nil }, "has no primary key, which change tracking requires"},
	}
	eachTransport(t, func(t *testing.T, tr transport) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				srv, tbl := newOrders()
				c.setup(srv, tbl)
				src := newTestSource(t, tr, srv, Config{Tables: []string{"dbo.orders"}}, nil)
				err := src.Open(context.Background(), nil)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("got %v, want an error containing %q", err, c.want)
				}
			})
		}
		t.Run("missing table", func(t *testing.T) {
			srv, _ := newOrders()
			src := newTestSource(t, tr, srv, Config{Tables: []string{"dbo.nope"}}, nil)
			err := src.Open(context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), "table dbo.nope does not exist") {
				t.Fatalf("got %v", err)
			}
		})
	})
}

func TestStartEarliestReadsRetainedChanges(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, _ := newOrders()
		srv.write("dbo.orders", nil, fakeChange{"I", orderRow(1, "a", 1)})
		ctx := context.Background()
		latest := newTestSource(t, tr, srv, Config{Tables: []string{"dbo.orders"}}, nil)
		if err := latest.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		readNone(t, latest)
		earliest := newTestSource(t, tr, srv, Config{Tables: []string{"dbo.orders"}, Start: StartEarliest}, nil)
		if err := earliest.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if s := ops(readN(t, earliest, 1)); s != "c dbo.orders tenant=1,code=a" {
			t.Fatalf("got %s", s)
		}
	})
}

func TestHealthFollowsPolling(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv, tbl := newOrders()
		src := newTestSource(t, tr, srv, Config{Tables: []string{"dbo.orders"}}, nil)
		if src.Healthy() == nil {
			t.Error("healthy before Open")
		}
		ctx := context.Background()
		if err := src.Open(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := src.Healthy(); err != nil {
			t.Errorf("unhealthy while polling: %v", err)
		}
		// Change tracking is turned off for the table: the next poll
		// fails, Read reports it, and Healthy says why.
		srv.mu.Lock()
		tbl.ctMin = nil
		srv.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := src.Read(rctx); err == nil || !strings.Contains(err.Error(), "ENABLE CHANGE_TRACKING") {
			t.Fatalf("Read: %v", err)
		}
		if err := src.Healthy(); err == nil || !strings.Contains(err.Error(), "ENABLE CHANGE_TRACKING") {
			t.Errorf("Healthy: %v", err)
		}
		if err := src.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if src.Healthy() == nil {
			t.Error("healthy after Close")
		}
	})
}
