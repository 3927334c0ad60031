package tdsfake_test

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dvsync/dvsync/internal/tdsfake"
)

// start runs a server with h and returns a database/sql handle on it.
func start(t *testing.T, h tdsfake.Handler) (*tdsfake.Server, *sql.DB) {
	t.Helper()
	srv, err := tdsfake.Start(h)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlserver", srv.DSN("sales"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = db.Close()
		_ = srv.Close()
		if err := srv.Err(); err != nil {
			t.Errorf("protocol error: %v", err)
		}
	})
	return srv, db
}

var (
	uuid  = [16]byte{0x6f, 0x96, 0x19, 0xff, 0x8b, 0x86, 0xd0, 0x11, 0xb4, 0x2d, 0x00, 0xc0, 0x4f, 0xc9, 0x64, 0xff}
	when  = time.Date(2024, 2, 29, 13, 45, 30, 123456700, time.FixedZone("", -5*3600-30*60))
	long  = strings.Repeat("ü€x", 5000) // beyond one PLP chunk and one packet
	bytes = []byte{0, 1, 2, 0xff}
)

func TestResultTypesDecodeInTheDriver(t *testing.T) {
	cols := []tdsfake.Column{
		{Name: "i", Type: tdsfake.Int}, {Name: "b", Type: tdsfake.BigInt}, {Name: "t", Type: tdsfake.TinyInt},
		{Name: "bit", Type: tdsfake.Bit}, {Name: "f", Type: tdsfake.Float}, {Name: "r", Type: tdsfake.Real},
		{Name: "d", Type: tdsfake.Decimal(38, 10)}, {Name: "neg", Type: tdsfake.Decimal(9, 2)},
		{Name: "m", Type: tdsfake.Money}, {Name: "g", Type: tdsfake.UniqueIdentifier},
		{Name: "dt", Type: tdsfake.Date}, {Name: "dt2", Type: tdsfake.DateTime2(7)}, {Name: "dto", Type: tdsfake.DateTimeOffset(7)},
		{Name: "tm", Type: tdsfake.Time(3)},
		{Name: "s", Type: tdsfake.NVarChar(50)}, {Name: "smax", Type: tdsfake.NVarCharMax},
		{Name: "vb", Type: tdsfake.VarBinary(20)}, {Name: "vbmax", Type: tdsfake.VarBinaryMax}, {Name: "lsn", Type: tdsfake.Binary(10)},
		{Name: "null", Type: tdsfake.NVarChar(10)},
	}
	lsn := []byte{0, 0, 0, 0x2a, 0, 0, 0x01, 0x10, 0, 3}
	row := []any{int64(-7), int64(1) << 40, int64(255), true, 0.1, 1.5,
		"1234567890123456789012345678.0123456789", "-12.30", "-922337203685477.5808", uuid,
		time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 13, 45, 30, 123456700, time.UTC), when,
		time.Date(1, 1, 1, 8, 30, 1, 500000000, time.UTC),
		"héllo", long, bytes, bytes, lsn, nil}
	_, db := start(t, func(req tdsfake.Request) ([]tdsfake.Result, error) {
		return []tdsfake.Result{{Columns: cols, Rows: [][]any{row}}}, nil
	})
	got := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range got {
		ptrs[i] = &got[i]
	}
	if err := db.QueryRow("SELECT everything").Scan(ptrs...); err != nil {
		t.Fatal(err)
	}
	var wireGUID mssql.UniqueIdentifier
	if err := wireGUID.Scan(got[9]); err != nil {
		t.Fatal(err)
	}
	want := []any{int64(-7), int64(1) << 40, int64(255), true, 0.1, 1.5,
		[]byte("1234567890123456789012345678.0123456789"), []byte("-12.30"), []byte("-922337203685477.5808"), got[9],
		time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 13, 45, 30, 123456700, time.UTC), when,
		time.Date(1, 1, 1, 8, 30, 1, 500000000, time.UTC),
		"héllo", long, bytes, bytes, lsn, nil}
	for i := range want {
		w, g := want[i], got[i]
		if wt, ok := w.(time.Time); ok {
			gt, _ := g.(time.Time)
			_, wo := wt.Zone()
			_, gof := gt.Zone()
			if !wt.Equal(gt) || wo != gof {
				t.Errorf("%s: got %v, want %v", cols[i].Name, g, w)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %#v, want %#v", cols[i].Name, g, w)
		}
	}
	if wireGUID != mssql.UniqueIdentifier(uuid) {
		t.Errorf("uniqueidentifier: got %s, want %x", wireGUID, uuid)
	}
}

func TestParametersDecodeInTheServer(t *testing.T) {
	var mu sync.Mutex
	var got tdsfake.Request
	_, db := start(t, func(req tdsfake.Request) ([]tdsfake.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		got = req
		return []tdsfake.Result{{RowsAffected: 1}}, nil
	})
	_, err := db.Exec("UPDATE t SET a = @p1 WHERE b = @p2",
		int64(-42), "ünïcode", long, "", bytes, true, 2.5, when, civil.DateOf(when),
		civil.DateTimeOf(time.Date(2024, 2, 29, 13, 45, 30, 100, time.UTC)),
		mssql.UniqueIdentifier(uuid), nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !got.RPC || got.SQL != "UPDATE t SET a = @p1 WHERE b = @p2" {
		t.Fatalf("request %+v", got)
	}
	want := []any{int64(-42), "ünïcode", long, "", bytes, true, 2.5, when,
		time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 13, 45, 30, 100, time.UTC), uuid, nil}
	if len(got.Params) != len(want) {
		t.Fatalf("%d params, want %d", len(got.Params), len(want))
	}
	for i, w := range want {
		g := got.Params[i].Value
		if wt, ok := w.(time.Time); ok {
			if gt, _ := g.(time.Time); !gt.Equal(wt) {
				t.Errorf("@p%d: got %v, want %v", i+1, g, w)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("@p%d: got %#v, want %#v", i+1, g, w)
		}
	}
}

func TestTransactionsCarryTheirDescriptorAndIsolation(t *testing.T) {
	var mu sync.Mutex
	var log []tdsfake.Request
	_, db := start(t, func(req tdsfake.Request) ([]tdsfake.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, req)
		return []tdsfake.Result{{Columns: []tdsfake.Column{{Name: "n", Type: tdsfake.Int}}, Rows: [][]any{{int64(1)}}}}, nil
	})
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(log) != 3 || log[0].SQL != "BEGIN TRANSACTION" || log[2].SQL != "COMMIT TRANSACTION" {
		t.Fatalf("requests: %+v", log)
	}
	if log[1].Transaction == 0 || log[1].Transaction != log[0].Transaction || log[1].Isolation != 5 {
		t.Errorf("the query ran in transaction %d at isolation %d, want %d at 5 (snapshot)", log[1].Transaction, log[1].Isolation, log[0].Transaction)
	}
}

func TestErrorsReachTheClient(t *testing.T) {
	_, db := start(t, func(req tdsfake.Request) ([]tdsfake.Result, error) {
		return nil, &tdsfake.Error{Number: 3952, State: 1, Class: 16, Message: "Snapshot isolation transaction failed"}
	})
	for _, args := range [][]any{nil, {int64(1)}} {
		_, err := db.Exec("SELECT 1", args...)
		var me mssql.Error
		if !errors.As(err, &me) || me.Number != 3952 || !strings.Contains(me.Message, "Snapshot isolation") {
			t.Errorf("args %v: got %v, want error 3952", args, err)
		}
	}
}

func TestSeveralResultSets(t *testing.T) {
	col := []tdsfake.Column{{Name: "n", Type: tdsfake.BigInt}}
	_, db := start(t, func(req tdsfake.Request) ([]tdsfake.Result, error) {
		return []tdsfake.Result{{Columns: col, Rows: [][]any{{int64(1)}, {int64(2)}}}, {Columns: col, Rows: [][]any{{int64(3)}}}}, nil
	})
	for _, args := range [][]any{nil, {int64(1)}} {
		rows, err := db.Query("SELECT n", args...)
		if err != nil {
			t.Fatal(err)
		}
		var got []int64
		for {
			for rows.Next() {
				var n int64
				if err := rows.Scan(&n); err != nil {
					t.Fatal(err)
				}
				got = append(got, n)
			}
			if !rows.NextResultSet() {
				break
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
		if !reflect.DeepEqual(got, []int64{1, 2, 3}) {
			t.Errorf("args %v: got %v", args, got)
		}
	}
}
