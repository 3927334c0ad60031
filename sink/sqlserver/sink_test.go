package sqlserver

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/tdsfake"
)

func upsertRec(table string, id int64, cols ...change.Column) change.Record {
	return change.Record{Op: change.OpUpdate, Table: table, Key: change.Key{{Name: "id", Value: change.Int(id)}},
		After: append(change.Row{{Name: "id", Value: change.Int(id)}}, cols...)}
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func TestBatchIsOneTransactionUnderTheContext(t *testing.T) {
	st := newStore()
	st.addTable("dbo.lines", orderLines, "id", "Name")
	s := newSink(t, Config{DSN: startStore(t, st), Context: "dvsync-test"})
	batch := []change.Record{
		upsertRec("dbo.lines", 1, col("Name", change.Text("a")), col("qty", change.Unchanged())),
		upsertRec("dbo.lines", 2, col("Name", change.Text("b"))),
		{Op: change.OpDelete, Table: "dbo.lines", Key: change.Key{{Name: "id", Value: change.Int(3)}}},
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	var tx uint64
	var writes int
	for _, req := range st.statements() {
		if !strings.HasPrefix(req.SQL, "WITH CHANGE_TRACKING_CONTEXT") {
			continue
		}
		writes++
		if tx == 0 {
			tx = req.Transaction
		}
		if req.Transaction == 0 || req.Transaction != tx {
			t.Errorf("statement in transaction %d, want all in %d", req.Transaction, tx)
		}
		if ctx, _ := req.Params[0].Value.([]byte); string(ctx) != "dvsync-test" {
			t.Errorf("context %q", req.Params[0].Value)
		}
		if strings.Contains(req.SQL, "[qty]") {
			t.Errorf("an Unchanged column is written: %s", req.SQL)
		}
	}
	if writes != 3 {
		t.Errorf("%d writes, want 3", writes)
	}
	if row, ok := st.read("dbo.lines", change.Key{{Name: "id", Value: change.Int(2)}}); !ok || row[1].Value.String() != "b" {
		t.Errorf("row 2: %v %v", row, ok)
	}
}

func TestRejectedRecordsFailAloneAndTheRestCommit(t *testing.T) {
	st := newStore()
	st.addTable("dbo.lines", orderLines, "id", "Name")
	s := newSink(t, Config{DSN: startStore(t, st)})
	batch := []change.Record{
		upsertRec("dbo.lines", 1, col("Name", change.Text("a"))),
		upsertRec("dbo.lines", 2, col("Name", change.Null())),      // NOT NULL: error 515
		upsertRec("dbo.lines", 3, col("nope", change.Text("x"))),   // no such column
		upsertRec("dbo.lines", 4, col("qty", change.Text("many"))), // conversion: error 245
		upsertRec("dbo.lines", 5, col("Name", change.Text("e"))),
	}
	err := s.Write(context.Background(), batch)
	var be *change.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("got %v, want a BatchError", err)
	}
	if len(be.Failed) != 3 {
		t.Fatalf("failed %v", be.Failed)
	}
	for _, i := range []int{1, 2, 3} {
		if !change.IsPermanent(be.Failed[i]) {
			t.Errorf("#%d: %v is not permanent", i, be.Failed[i])
		}
	}
	for _, id := range []int64{1, 5} {
		if _, ok := st.read("dbo.lines", change.Key{{Name: "id", Value: change.Int(id)}}); !ok {
			t.Errorf("row %d not written", id)
		}
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	st := newStore()
	st.addTable("dbo.lines", orderLines, "id", "Name")
	dsn := startStore(t, st)
	s := newSink(t, Config{DSN: dsn})
	ctx := context.Background()
	rec := upsertRec("dbo.lines", 1, col("Name", change.Text("a")))

	err := s.Write(ctx, []change.Record{upsertRec("dbo.missing", 1)})
	if !change.IsFatal(err) || !strings.Contains(err.Error(), "dbo.missing") {
		t.Errorf("missing table: %v", err)
	}

	st.fail = func(tdsfake.Request) error { return &tdsfake.Error{Number: 1205, Message: "deadlock victim"} }
	err = s.Write(ctx, []change.Record{rec})
	if _, ok := change.RetryWait(err); !ok {
		t.Errorf("deadlock: %v is not retryable", err)
	}
	st.fail = func(tdsfake.Request) error {
		return &tdsfake.Error{Number: 229, Message: "The UPDATE permission was denied"}
	}
	if err := s.Write(ctx, []change.Record{rec}); !change.IsFatal(err) {
		t.Errorf("permission: %v is not fatal", err)
	}
	st.fail = nil

	if err := s.Write(ctx, []change.Record{{Op: change.OpTruncate, Table: "dbo.lines"}}); err == nil {
		t.Error("truncate: no error")
	}
}

func TestStatementsAndParameters(t *testing.T) {
	tbl := &tableInfo{quoted: quoteTable("Sales.Order]Lines"), columns: map[string]columnType{
		"tenant": {name: "tenant", base: "int", spec: "int"},
		"code":   {name: "code", base: "nvarchar", spec: "nvarchar(20)"},
		"amount": {name: "amount", base: "decimal", spec: "decimal(19,4)"},
		"stamp":  {name: "stamp", base: "datetime2", spec: "datetime2(7)"},
		"seen":   {name: "seen", base: "datetimeoffset", spec: "datetimeoffset(7)"},
		"due":    {name: "due", base: "date", spec: "date"},
		"ref":    {name: "ref", base: "uniqueidentifier", spec: "uniqueidentifier"},
	}}
	key := change.Key{{Name: "tenant", Value: change.Int(7)}, {Name: "code", Value: change.Text("A")}}
	at := time.Date(2024, 3, 1, 23, 30, 0, 100, time.FixedZone("", -2*3600))
	u, _ := change.ParseUUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
	rec := change.Record{Op: change.OpInsert, Key: key, After: append(change.Row(key),
		change.Column{Name: "amount", Value: change.MustDecimal("1.5E+3")},
		change.Column{Name: "stamp", Value: change.Timestamp(at)},
		change.Column{Name: "seen", Value: change.Timestamp(at)},
		change.Column{Name: "due", Value: change.Date(at)},
		change.Column{Name: "ref", Value: u})}
	st, err := plan(tbl, &rec, []byte("dvsync"))
	if err != nil {
		t.Fatal(err)
	}
	want := `WITH CHANGE_TRACKING_CONTEXT (@p1)
MERGE INTO [Sales].[Order]]Lines] WITH (HOLDLOCK) AS t
USING (SELECT CAST(@p2 AS int) AS [tenant], CAST(@p3 AS nvarchar(20)) AS [code], CAST(@p4 AS decimal(19,4)) AS [amount], CAST(@p5 AS datetime2(7)) AS [stamp], CAST(@p6 AS datetimeoffset(7)) AS [seen], CAST(@p7 AS date) AS [due], CAST(@p8 AS uniqueidentifier) AS [ref]) AS s
ON t.[tenant] = s.[tenant] AND t.[code] = s.[code]
WHEN MATCHED THEN UPDATE SET t.[amount] = s.[amount], t.[stamp] = s.[stamp], t.[seen] = s.[seen], t.[due] = s.[due], t.[ref] = s.[ref]
WHEN NOT MATCHED THEN INSERT ([tenant], [code], [amount], [stamp], [seen], [due], [ref]) VALUES (s.[tenant], s.[code], s.[amount], s.[stamp], s.[seen], s.[due], s.[ref]);`
	if st.sql != want {
		t.Errorf("got\n%s\nwant\n%s", st.sql, want)
	}
	wantArgs := []any{[]byte("dvsync"), int64(7), "A", "1500",
		civil.DateTime{Date: civil.Date{Year: 2024, Month: 3, Day: 2}, Time: civil.Time{Hour: 1, Minute: 30, Nanosecond: 100}},
		at, civil.Date{Year: 2024, Month: 3, Day: 1}, mssql.UniqueIdentifier(u.UUID())}
	for i, w := range wantArgs {
		if b, ok := w.([]byte); ok {
			if string(st.args[i].([]byte)) != string(b) {
				t.Errorf("@p%d: %v", i+1, st.args[i])
			}
			continue
		}
		if st.args[i] != w {
			t.Errorf("@p%d: got %#v, want %#v", i+1, st.args[i], w)
		}
	}
	del := change.Record{Op: change.OpDelete, Key: key}
	st, err = plan(tbl, &del, []byte("dvsync"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "WITH CHANGE_TRACKING_CONTEXT (@p1)\nDELETE FROM [Sales].[Order]]Lines]\nWHERE [tenant] = CAST(@p2 AS int) AND [code] = CAST(@p3 AS nvarchar(20));"; st.sql != want {
		t.Errorf("got\n%s\nwant\n%s", st.sql, want)
	}
	// A record of key columns only inserts when missing and leaves an
	// existing row alone.
	only := change.Record{Op: change.OpInsert, Key: key, After: change.Row(key)}
	st, _ = plan(tbl, &only, nil)
	if strings.Contains(st.sql, "WHEN MATCHED") {
		t.Errorf("key-only upsert updates: %s", st.sql)
	}
}

func TestConfig(t *testing.T) {
	err := Config{Context: strings.Repeat("x", 129), MaxConns: -1}.Validate()
	for _, want := range []string{"dsn: required", "context: longer than 128", "max_conns"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if _, err := New(Config{DSN: "sqlserver://u:secret@host?database=x&dial+timeout=nope"}); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("bad DSN: %v", err)
	}
	if got := typeSpec("nvarchar", -1, 0, 0); got != "nvarchar(max)" {
		t.Error(got)
	}
	if got := typeSpec("nchar", 20, 0, 0); got != "nchar(10)" {
		t.Error(got)
	}
	if got := typeSpec("binary", 10, 0, 0); got != "binary(10)" {
		t.Error(got)
	}
}

func TestColumnAddedLaterIsWritten(t *testing.T) {
	st := newStore()
	st.addTable("dbo.c", []memCol{{"id", "bigint", 8, 19, 0}, {"name", "nvarchar", 100, 0, 0}}, "id")
	s := newSink(t, Config{DSN: startStore(t, st)})
	ctx := context.Background()
	if err := s.Write(ctx, []change.Record{upsertRec("dbo.c", 1, col("name", change.Text("a")))}); err != nil {
		t.Fatal(err)
	}
	st.mu.Lock()
	tbl := st.tables["[dbo].[c]"]
	tbl.cols = append(tbl.cols, memCol{"email", "nvarchar", 200, 0, 0})
	st.mu.Unlock()
	if err := s.Write(ctx, []change.Record{upsertRec("dbo.c", 2, col("email", change.Text("x@example.com")))}); err != nil {
		t.Fatal(err)
	}
	got, _ := st.read("dbo.c", change.Key{{Name: "id", Value: change.Int(2)}})
	if v, _ := got.Get("email"); v.String() != "x@example.com" {
		t.Errorf("email: %v", got)
	}
}
