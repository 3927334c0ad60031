//go:build sqlserver_live

package sqlserver

// Tests against a real SQL Server, built only with -tags sqlserver_live
// and run against the database DVSYNC_TEST_SQLSERVER_DSN names (see
// docs/sqlserver.md). They create and drop their own tables.

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/sinktest"
)

func liveDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	dsn := os.Getenv("DVSYNC_TEST_SQLSERVER_DSN")
	if dsn == "" {
		t.Fatal("DVSYNC_TEST_SQLSERVER_DSN is not set; the sqlserver_live tests need a SQL Server (see docs/sqlserver.md)")
	}
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, dsn
}

type liveHarness struct {
	db    *sql.DB
	dsn   string
	table string
	cols  []string
	key   func(i int) change.Key
	row   func(i, version int) change.Row
}

func (h *liveHarness) NewSink(t *testing.T) sink.Sink {
	s, err := New(Config{DSN: h.dsn})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Read selects the row by key over its own connection, decoding values
// by their column types as the SQL Server source does.
func (h *liveHarness) Read(t *testing.T, table string, key change.Key) (change.Row, bool) {
	var where []string
	var args []any
	for i, k := range key {
		where = append(where, fmt.Sprintf("%s = @p%d", quoteName(k.Name), i+1))
		p, err := param(columnType{}, k.Value)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	var sel []string
	for _, c := range h.cols {
		sel = append(sel, quoteName(c))
	}
	rows, err := h.db.Query("SELECT "+strings.Join(sel, ", ")+" FROM "+quoteTable(table)+" WHERE "+strings.Join(where, " AND "), args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		return nil, false
	}
	types, _ := rows.ColumnTypes()
	vals := make([]any, len(h.cols))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	row := change.Row{}
	for i, c := range h.cols {
		row = append(row, change.Column{Name: c, Value: rowValue(types[i].DatabaseTypeName(), vals[i])})
	}
	return row, true
}

func (h *liveHarness) Table() string                 { return h.table }
func (h *liveHarness) Key(i int) change.Key          { return h.key(i) }
func (h *liveHarness) Row(i, version int) change.Row { return h.row(i, version) }

func TestLiveConformance(t *testing.T) {
	db, dsn := liveDB(t)
	for _, s := range []string{
		`DROP TABLE IF EXISTS dbo.dvsync_live_lines`,
		`CREATE TABLE dbo.dvsync_live_lines (id bigint PRIMARY KEY, Name nvarchar(100) NOT NULL, amount decimal(38,4),
			qty int, ratio float, paid bit, placed datetimeoffset(7), stamp datetime2(7), due date, ref uniqueidentifier,
			blob varbinary(max), doc nvarchar(max))`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() { _, _ = db.Exec(`DROP TABLE IF EXISTS dbo.dvsync_live_lines`) })
	base := time.Date(2024, 3, 1, 9, 30, 15, 123456700, time.UTC)
	key := func(i int) change.Key { return change.Key{{Name: "id", Value: change.Int(int64(i))}} }
	sinktest.Run(t, &liveHarness{db: db, dsn: dsn, table: "dbo.dvsync_live_lines", key: key,
		cols: []string{"id", "Name", "amount", "qty", "ratio", "paid", "placed", "stamp", "due", "ref", "blob", "doc"},
		row: func(i, v int) change.Row {
			var ref [16]byte
			ref[0], ref[1], ref[15] = byte(i>>8), byte(i), byte(v+1)
			return append(change.Row(key(i)),
				col("Name", change.Text(fmt.Sprintf("line %d \"v%d\" ü'", i, v))),
				col("amount", change.MustDecimal(fmt.Sprintf("1234567890123456.%04d", i*10+v))),
				col("qty", change.Int(int64(i*10+v))),
				col("ratio", change.Float(0.1+float64(v))),
				col("paid", change.Bool(v == 1)),
				col("placed", change.Timestamp(base.Add(time.Duration(i)*time.Hour+time.Duration(v)*time.Minute).In(time.FixedZone("", 2*3600)))),
				col("stamp", change.Timestamp(base.Add(time.Duration(v)*time.Second))),
				col("due", change.Date(base.AddDate(0, 0, i+v))),
				col("ref", change.UUID(ref)),
				col("blob", change.Bytes([]byte{0, byte(i), byte(v), 0xff})),
				col("doc", change.JSON([]byte(fmt.Sprintf(`{"i":%d,"v":%d}`, i, v)))),
			)
		}})
}

// TestLiveWritesCarryTheContext checks with CHANGETABLE that the sink's
// writes are marked with its change tracking context.
func TestLiveWritesCarryTheContext(t *testing.T) {
	db, dsn := liveDB(t)
	for _, s := range []string{
		`IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID())
			ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)`,
		`DROP TABLE IF EXISTS dbo.dvsync_live_ctx`,
		`CREATE TABLE dbo.dvsync_live_ctx (id int PRIMARY KEY, name nvarchar(50))`,
		`ALTER TABLE dbo.dvsync_live_ctx ENABLE CHANGE_TRACKING`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	t.Cleanup(func() { _, _ = db.Exec(`DROP TABLE IF EXISTS dbo.dvsync_live_ctx`) })
	s, err := New(Config{DSN: dsn, Context: "dvsync-live"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	rec := change.Record{Op: change.OpInsert, Table: "dbo.dvsync_live_ctx", Key: change.Key{{Name: "id", Value: change.Int(1)}},
		After: change.Row{{Name: "id", Value: change.Int(1)}, {Name: "name", Value: change.Text("x")}}}
	if err := s.Write(context.Background(), []change.Record{rec}); err != nil {
		t.Fatal(err)
	}
	var ctx []byte
	if err := db.QueryRow(`SELECT SYS_CHANGE_CONTEXT FROM CHANGETABLE(CHANGES dbo.dvsync_live_ctx, 0) AS ct WHERE ct.id = 1`).Scan(&ctx); err != nil {
		t.Fatal(err)
	}
	if string(ctx) != "dvsync-live" {
		t.Errorf("SYS_CHANGE_CONTEXT %q", ctx)
	}
}
