package sqlserver

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dvsync/dvsync/change"
)

func TestDecodeValue(t *testing.T) {
	wire := []byte{0xff, 0x19, 0x96, 0x6f, 0x86, 0x8b, 0x11, 0xd0, 0xb4, 0x2d, 0x00, 0xc0, 0x4f, 0xc9, 0x64, 0xff}
	local := time.Date(2024, 3, 1, 9, 30, 0, 5, time.FixedZone("x", 3600))
	cases := []struct {
		typ  string
		in   any
		want change.Value
	}{
		{"INT", nil, change.Null()},
		{"BIGINT", int64(math.MinInt64), change.Int(math.MinInt64)},
		{"TINYINT", int64(255), change.Int(255)},
		{"BIT", false, change.Bool(false)},
		{"FLOAT", 0.1, change.Float(0.1)},
		{"REAL", float32(0.1), change.Float(0.1)},
		{"DECIMAL", []byte("-0.0000000001"), change.MustDecimal("-0.0000000001")},
		{"DECIMAL", []byte("99999999999999999999999999999999999999"), change.MustDecimal("99999999999999999999999999999999999999")},
		{"MONEY", []byte("922337203685477.5807"), change.MustDecimal("922337203685477.5807")},
		{"SMALLMONEY", []byte("-214748.3648"), change.MustDecimal("-214748.3648")},
		{"DATE", time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), change.Date(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))},
		// datetime2 has no zone: whatever location the driver used, the
		// wall clock is read as UTC.
		{"DATETIME2", local, change.Timestamp(time.Date(2024, 3, 1, 9, 30, 0, 5, time.UTC))},
		{"DATETIME", time.Date(2024, 3, 1, 9, 30, 0, 3e6, time.UTC), change.Timestamp(time.Date(2024, 3, 1, 9, 30, 0, 3e6, time.UTC))},
		{"DATETIMEOFFSET", local, change.Timestamp(local)},
		{"TIME", time.Date(1, 1, 1, 8, 5, 1, 1200, time.UTC), change.Text("08:05:01.0000012")},
		{"TIME", time.Date(1, 1, 1, 8, 5, 0, 0, time.UTC), change.Text("08:05:00")},
		{"UNIQUEIDENTIFIER", wire, mustUUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")},
		{"VARBINARY", []byte{0, 0xff}, change.Bytes([]byte{0, 0xff})},
		{"BINARY", []byte{1}, change.Bytes([]byte{1})},
		{"NVARCHAR", "ü", change.Text("ü")},
		{"VARCHAR", []byte("abc"), change.Text("abc")},
		{"XML", "<a/>", change.Text("<a/>")},
	}
	for _, c := range cases {
		got, err := decodeValue(c.typ, c.in)
		if err != nil {
			t.Errorf("%s %v: %v", c.typ, c.in, err)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("%s %v: got %v (%s), want %v (%s)", c.typ, c.in, got, got.Kind(), c.want, c.want.Kind())
		}
	}
	for _, bad := range []struct {
		typ string
		in  any
	}{{"INT", "1"}, {"GEOGRAPHY", []byte{1}}, {"UNIQUEIDENTIFIER", []byte{1}}, {"DECIMAL", []byte("1e")}} {
		if _, err := decodeValue(bad.typ, bad.in); err == nil {
			t.Errorf("%s %#v: no error", bad.typ, bad.in)
		}
	}
}

func TestKeysSurviveThePosition(t *testing.T) {
	key := change.Key{
		{Name: "i", Value: change.Int(-3)},
		{Name: "s", Value: change.Text("ü,=")},
		{Name: "d", Value: change.MustDecimal("1.50")},
		{Name: "u", Value: mustUUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")},
		{Name: "t", Value: change.Timestamp(time.Date(2024, 3, 1, 9, 30, 0, 5, time.FixedZone("", -3600)))},
		{Name: "dt", Value: change.Date(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC))},
		{Name: "b", Value: change.Bytes([]byte{0, 0xff})},
		{Name: "bit", Value: change.Bool(true)},
	}
	p := &position{Tables: map[string]cursor{"dbo.t": {Version: 7, Snap: &snap{After: encodeKey(key), Rows: 3}}}, Seq: 9}
	back, err := decodePosition(p.encode())
	if err != nil {
		t.Fatal(err)
	}
	c := back.Tables["dbo.t"]
	names := []string{"i", "s", "d", "u", "t", "dt", "b", "bit"}
	got, err := decodeKey(names, c.Snap.After)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(key) || c.Version != 7 || c.Snap.Rows != 3 || back.Seq != 9 {
		t.Errorf("got %v %+v, want %v", got, c, key)
	}
	// Parameters keep the column's type.
	params := map[string]any{"u": mssql.UniqueIdentifier{0x6f, 0x96, 0x19, 0xff, 0x8b, 0x86, 0xd0, 0x11, 0xb4, 0x2d, 0x00, 0xc0, 0x4f, 0xc9, 0x64, 0xff},
		"dt": civil.Date{Year: 2024, Month: 2, Day: 29}, "i": int64(-3), "d": "1.50"}
	for _, col := range got {
		if want, ok := params[col.Name]; ok && paramValue(col.Value) != want {
			t.Errorf("%s: param %#v, want %#v", col.Name, paramValue(col.Value), want)
		}
	}
	for _, bad := range []string{"x", "P{}", "S{"} {
		if _, err := decodePosition([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestStatementText(t *testing.T) {
	tbl := &table{name: "Sales.Order]Lines", quoted: quoteTable("Sales.Order]Lines"), columns: []string{"tenant", "code", "qty"},
		keys: []string{"tenant", "code"}, captured: []string{"tenant", "code", "qty"}, instance: "Sales_OrderLines"}
	cases := []struct{ got, want string }{
		{ctChangesSQL(tbl), `SELECT ct.SYS_CHANGE_VERSION, ct.SYS_CHANGE_OPERATION, ct.SYS_CHANGE_CONTEXT, ct.[tenant], ct.[code], t.[tenant], t.[code], t.[qty]
FROM CHANGETABLE(CHANGES [Sales].[Order]]Lines], @p1) AS ct
LEFT OUTER JOIN [Sales].[Order]]Lines] AS t ON t.[tenant] = ct.[tenant] AND t.[code] = ct.[code]
WHERE ct.SYS_CHANGE_VERSION <= @p2
ORDER BY ct.SYS_CHANGE_VERSION, ct.[tenant], ct.[code]`},
		{cdcChangesSQL(tbl), `SELECT TOP (@p1) c.__$start_lsn, c.__$seqval, c.__$operation, c.[tenant], c.[code], c.[qty]
FROM cdc.[fn_cdc_get_all_changes_Sales_OrderLines](@p2, @p3, N'all update old') AS c
WHERE c.__$start_lsn > @p2 OR (c.__$start_lsn = @p2 AND (c.__$seqval > @p4 OR (c.__$seqval = @p4 AND c.__$operation > @p5)))
ORDER BY c.__$start_lsn, c.__$seqval, c.__$operation`},
		{pageSQL(tbl, false), "SELECT TOP (@p1) [tenant], [code], [qty]\nFROM [Sales].[Order]]Lines]\nORDER BY [tenant], [code]"},
		{pageSQL(tbl, true), "SELECT TOP (@p1) [tenant], [code], [qty]\nFROM [Sales].[Order]]Lines]\nWHERE ([tenant] > @p2) OR ([tenant] = @p2 AND [code] > @p3)\nORDER BY [tenant], [code]"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got\n%s\nwant\n%s", c.got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	bad := Config{Mode: "log", Tables: []string{"orders", "dbo.a", "dbo.a"}, Keys: map[string][]string{"dbo.b": {"x"}},
		CaptureInstances: map[string]string{"dbo.c": "x"}, Context: strings.Repeat("x", 129), Start: "now",
		PollInterval: time.Second, MaxPollInterval: time.Millisecond, PageSize: 1}
	err := bad.Validate()
	for _, want := range []string{"dsn: required", `mode: "log"`, `tables[0]: "orders" is not schema-qualified`, `tables[2]: "dbo.a" is listed twice`,
		`keys: "dbo.b" is not one of tables`, `capture_instances: "dbo.c"`, "context: longer than 128", `start: "now"`,
		"max_poll_interval", "page_size: must be at least 2"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	ct := Config{DSN: "x", Tables: []string{"dbo.a"}, Keys: map[string][]string{"dbo.a": {"id"}}}
	if err := ct.Validate(); err == nil || !strings.Contains(err.Error(), "keys apply in cdc mode only") {
		t.Errorf("keys in change tracking mode: %v", err)
	}
	ok := Config{DSN: "sqlserver://u:secret@h", Tables: []string{"dbo.a"}}
	if err := ok.Validate(); err != nil {
		t.Error(err)
	}
	if got := ok.captureInstance("dbo.a"); got != "dbo_a" {
		t.Errorf("default capture instance %q", got)
	}
	if _, err := New(Config{DSN: "sqlserver://u:secret@h"}, nil); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("New: %v", err)
	}
}

func TestPollIntervalAdapts(t *testing.T) {
	cfg := Config{PollInterval: 100 * time.Millisecond, MaxPollInterval: time.Second}
	w := cfg.PollInterval
	var waits []time.Duration
	for range 5 {
		w = nextWait(cfg, w, 0, false)
		waits = append(waits, w)
	}
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("empty polls: %v, want %v", waits, want)
		}
	}
	if got := nextWait(cfg, time.Second, 3, false); got != cfg.PollInterval {
		t.Errorf("after changes: %v", got)
	}
	if got := nextWait(cfg, time.Second, 0, true); got != 0 {
		t.Errorf("while reading a table: %v", got)
	}
}

func TestBadDSNIsNotQuoted(t *testing.T) {
	_, err := openDatabase("sqlserver://u:secret@host?dial+timeout=nope")
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("got %v", err)
	}
}
