package sqlserver

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
)

// conditional reports whether r asks for a conditional write.
func conditional(r *change.Record) bool {
	v := r.Meta[change.MetaExpectedVersion]
	return v == change.ExpectedRow || v == change.ExpectedAbsent
}

func anyConditional(batch []change.Record) bool {
	for i := range batch {
		if conditional(&batch[i]) {
			return true
		}
	}
	return false
}

// lockSQL reads r's row with an update lock held to the end of the
// transaction (HOLDLOCK also locks the key's range when the row is
// missing), so nobody can change or insert it between the comparison and
// the write.
func lockSQL(t *tableInfo, r *change.Record) (statement, error) {
	var where []string
	var args []any
	for _, k := range r.Key {
		ct, ok := t.columns[k.Name]
		if !ok {
			return statement{}, fmt.Errorf("%s: %w: %s", t.quoted, errNoColumn, k.Name)
		}
		p, err := param(ct, k.Value)
		if err != nil {
			return statement{}, fmt.Errorf("column %s: %w", k.Name, err)
		}
		args = append(args, p)
		where = append(where, fmt.Sprintf("%s = CAST(@p%d AS %s)", quoteName(k.Name), len(args), ct.spec))
	}
	var cols []string
	for _, c := range t.order {
		cols = append(cols, quoteName(c))
	}
	return statement{
		sql:  "SELECT " + strings.Join(cols, ", ") + " FROM " + t.quoted + " WITH (UPDLOCK, HOLDLOCK)\nWHERE " + strings.Join(where, " AND "),
		args: args,
	}, nil
}

// check reads r's row inside tx and returns a *change.ConflictError, with
// the row as found, if it does not hold what r expects: the values of
// r.Before (change.ExpectedRow), or no row (change.ExpectedAbsent).
func check(ctx context.Context, tx *sql.Tx, t *tableInfo, r *change.Record) error {
	st, err := lockSQL(t, r)
	if err != nil {
		return change.Permanent(fmt.Errorf("sqlserver sink: %s: %w", r.String(), err))
	}
	rows, err := tx.QueryContext(ctx, st.sql, st.args...)
	if err != nil {
		return fmt.Errorf("sqlserver sink: %s: read the current row: %w", r.String(), err)
	}
	defer rows.Close()
	var current change.Row
	found := rows.Next()
	if found {
		types, err := rows.ColumnTypes()
		if err != nil {
			return err
		}
		vals := make([]any, len(types))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("sqlserver sink: %s: read the current row: %w", r.String(), err)
		}
		for i, ct := range types {
			current = append(current, change.Column{Name: ct.Name(), Value: rowValue(ct.DatabaseTypeName(), vals[i])})
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	expectAbsent := r.Meta[change.MetaExpectedVersion] == change.ExpectedAbsent
	switch {
	case !found && expectAbsent, found && !expectAbsent && conflict.Equal(r.Before, current):
		return nil
	case !found:
		return &change.ConflictError{Err: fmt.Errorf("sqlserver sink: %s: the row was deleted since it was last synced", r.String()), Deleted: true}
	}
	return &change.ConflictError{Err: fmt.Errorf("sqlserver sink: %s: the row changed since it was last synced", r.String()), Current: current}
}

// rowValue converts a value go-mssqldb read from a column of type typ to
// the change value of the same meaning.
func rowValue(typ string, v any) change.Value {
	switch x := v.(type) {
	case nil:
		return change.Null()
	case int64:
		return change.Int(x)
	case float64:
		return change.Float(x)
	case bool:
		return change.Bool(x)
	case string:
		return change.Text(x)
	case time.Time:
		switch typ {
		case "DATE":
			return change.Date(x)
		case "DATETIME", "DATETIME2", "SMALLDATETIME":
			y, mo, d := x.Date()
			return change.Timestamp(time.Date(y, mo, d, x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), time.UTC))
		}
		return change.Timestamp(x)
	case []byte:
		switch typ {
		case "DECIMAL", "MONEY", "SMALLMONEY":
			if d, err := change.Decimal(string(x)); err == nil {
				return d
			}
		case "UNIQUEIDENTIFIER":
			if len(x) == 16 {
				// SQL Server stores the first three groups little-endian.
				return change.UUID([16]byte{x[3], x[2], x[1], x[0], x[5], x[4], x[7], x[6],
					x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15]})
			}
		case "VARCHAR", "CHAR", "TEXT":
			return change.Text(string(x))
		}
		return change.Bytes(x)
	}
	return change.Text(fmt.Sprint(v))
}

// writeChecked writes the records not yet in failed one transaction
// each, checking each conditional record's row first in the same
// transaction; a record whose row does not match is not written and is
// added to failed with its *change.ConflictError, one the server rejects
// for its data with a permanent error.
func (s *Sink) writeChecked(ctx context.Context, batch []change.Record, tables []*tableInfo, stmts []statement, failed map[int]error) error {
	for i, st := range stmts {
		if _, skip := failed[i]; skip {
			continue
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if conditional(&batch[i]) {
				if err := check(ctx, tx, tables[i], &batch[i]); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, st.sql, st.args...)
			return err
		})
		switch {
		case err == nil:
		case change.AsConflict(err) != nil || change.IsPermanent(err):
			failed[i] = err
		case recordError(err):
			failed[i] = change.Permanent(fmt.Errorf("sqlserver sink: %s: %w", batch[i].String(), err))
		default:
			return fmt.Errorf("sqlserver sink: %s: %w", batch[i].String(), err)
		}
	}
	return nil
}
