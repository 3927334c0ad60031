package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// db is a fresh database of the shared test cluster (testenv.DB) with
// this package's helpers.
type db struct{ *testenv.DB }

func newDB(t *testing.T) *db { return &db{testenv.NewDB(t)} }

// sink returns a sink on d for cfg (DSN filled in), closed at cleanup.
func (d *db) sink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	cfg.DSN = d.DSN
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

// read returns table's row for key, typed the way the sink conformance
// suite compares values, and false if there is none.
func (d *db) read(t *testing.T, table string, key change.Key) (change.Row, bool) {
	t.Helper()
	cols := make([]string, len(key))
	args := make([]any, len(key))
	for i, c := range key {
		cols[i] = c.Name
		args[i] = c.Value.String()
	}
	rows, err := d.Conn.Query(context.Background(), "SELECT * FROM "+tableIdent(table)+whereKey(cols), args...)
	if err != nil {
		t.Fatalf("read %s %s: %v", table, key, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			t.Fatalf("read %s %s: %v", table, key, err)
		}
		return nil, false
	}
	vals, err := rows.Values()
	if err != nil {
		t.Fatalf("read %s %s: %v", table, key, err)
	}
	var row change.Row
	for i, f := range rows.FieldDescriptions() {
		row = append(row, change.Column{Name: f.Name, Value: fromPG(t, f.DataTypeOID, vals[i])})
	}
	return row, true
}

// fromPG converts a value pgx decoded into the change.Value of the same
// meaning.
func fromPG(t *testing.T, oid uint32, v any) change.Value {
	t.Helper()
	switch v := v.(type) {
	case nil:
		return change.Null()
	case string:
		return change.Text(v)
	case int16:
		return change.Int(int64(v))
	case int32:
		return change.Int(int64(v))
	case int64:
		return change.Int(v)
	case float32:
		return change.Float(float64(v))
	case float64:
		return change.Float(v)
	case bool:
		return change.Bool(v)
	case pgtype.Numeric:
		text, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		return change.MustDecimal(text.(string))
	case time.Time:
		if oid == pgtype.DateOID {
			return change.Date(v)
		}
		return change.Timestamp(v)
	case [16]byte:
		return change.UUID(v)
	case []byte:
		return change.Bytes(v)
	case map[string]any, []any:
		return change.JSON(mustJSON(t, oid, v))
	}
	t.Fatalf("read: unexpected %T for type %d", v, oid)
	return change.Value{}
}

func mustJSON(t *testing.T, oid uint32, v any) []byte {
	t.Helper()
	b, err := pgtype.NewMap().Encode(oid, pgtype.TextFormatCode, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// write writes batch and fails the test on any error.
func write(t *testing.T, s *Sink, batch ...change.Record) {
	t.Helper()
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// batchError returns err as a *change.BatchError, failing the test if it
// is not one.
func batchError(t *testing.T, err error) *change.BatchError {
	t.Helper()
	var be *change.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write = %v, want a *change.BatchError", err)
	}
	return be
}

// count returns the number of rows of table matching the SQL condition.
func (d *db) count(t *testing.T, table, where string) int {
	t.Helper()
	var n int
	q := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s", tableIdent(table), where)
	if err := d.Conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func upsert(table string, key change.Key, cols ...change.Column) change.Record {
	return change.Record{Op: change.OpInsert, Table: table, Key: key, After: append(change.Row(key).Clone(), cols...)}
}

func del(table string, key change.Key) change.Record {
	return change.Record{Op: change.OpDelete, Table: table, Key: key}
}

func intKey(name string, i int) change.Key {
	return change.Key{{Name: name, Value: change.Int(int64(i))}}
}

func col(name string, v change.Value) change.Column { return change.Column{Name: name, Value: v} }
