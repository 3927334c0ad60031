package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
)

// conditional reports whether r asks for a conditional write.
func conditional(r *change.Record) bool {
	v := r.Meta[change.MetaExpectedVersion]
	return v == change.ExpectedRow || v == change.ExpectedAbsent
}

// check locks r's row (SELECT … FOR UPDATE) inside tx and returns a
// *change.ConflictError, with the row as found, if it does not match what
// r expects. A row that matches stays locked until tx ends, so nobody can
// change it between the comparison and the write.
func check(ctx context.Context, tx pgx.Tx, r *change.Record) error {
	args := make([]any, len(r.Key))
	cols := make([]string, len(r.Key))
	for i, c := range r.Key {
		a, err := param(c.Value)
		if err != nil {
			return change.Permanent(fmt.Errorf("postgres sink: %s: key column %s: %w", r, c.Name, err))
		}
		args[i], cols[i] = a, c.Name
	}
	rows, err := tx.Query(ctx, "SELECT * FROM "+tableIdent(r.Table)+whereKey(cols)+" FOR UPDATE", args...)
	if err != nil {
		return fmt.Errorf("postgres sink: %s: read the current row: %w", r, err)
	}
	defer rows.Close()
	var current change.Row
	found := false
	if rows.Next() {
		found = true
		vals, err := rows.Values()
		if err != nil {
			return fmt.Errorf("postgres sink: %s: read the current row: %w", r, err)
		}
		for i, fd := range rows.FieldDescriptions() {
			current = append(current, change.Column{Name: fd.Name, Value: valueOf(vals[i], fd.DataTypeOID)})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres sink: %s: read the current row: %w", r, err)
	}
	expectAbsent := r.Meta[change.MetaExpectedVersion] == change.ExpectedAbsent
	switch {
	case !found && expectAbsent, found && !expectAbsent && conflict.Equal(r.Before, current):
		return nil
	case !found:
		return &change.ConflictError{Err: fmt.Errorf("postgres sink: %s: the row was deleted since it was last synced", r), Deleted: true}
	}
	return &change.ConflictError{Err: fmt.Errorf("postgres sink: %s: the row changed since it was last synced", r), Current: current}
}

// valueOf converts a value pgx decoded into the change value of the same
// meaning. Types without a natural kind become their text.
func valueOf(v any, oid uint32) change.Value {
	switch x := v.(type) {
	case nil:
		return change.Null()
	case string:
		if oid == pgtype.JSONOID || oid == pgtype.JSONBOID {
			return change.JSON([]byte(x))
		}
		return change.Text(x)
	case bool:
		return change.Bool(x)
	case int16:
		return change.Int(int64(x))
	case int32:
		return change.Int(int64(x))
	case int64:
		return change.Int(x)
	case float32:
		return change.Float(float64(x))
	case float64:
		return change.Float(x)
	case time.Time:
		if oid == pgtype.DateOID {
			return change.Date(x)
		}
		return change.Timestamp(x)
	case [16]byte:
		return change.UUID(x)
	case []byte:
		if oid == pgtype.JSONOID || oid == pgtype.JSONBOID {
			return change.JSON(x)
		}
		return change.Bytes(x)
	case pgtype.Numeric:
		if !x.Valid {
			return change.Null()
		}
		if x.NaN || x.InfinityModifier != pgtype.Finite {
			return change.Text(fmt.Sprint(v))
		}
		if d, err := change.Decimal(numericText(x)); err == nil {
			return d
		}
	}
	if b, err := jsonOf(v, oid); err == nil {
		return change.JSON(b)
	}
	return change.Text(fmt.Sprint(v))
}

// numericText writes a finite numeric as Int×10^Exp in decimal notation.
func numericText(n pgtype.Numeric) string {
	digits := new(big.Int).Set(n.Int).String()
	return digits + "E" + fmt.Sprint(n.Exp)
}

// jsonOf re-encodes the Go value pgx made of a json or jsonb column.
func jsonOf(v any, oid uint32) ([]byte, error) {
	if oid != pgtype.JSONOID && oid != pgtype.JSONBOID {
		return nil, errors.New("not json")
	}
	return json.Marshal(v)
}

// writeChecked writes batch like writeEach, one transaction with a
// savepoint per record, first checking each conditional record's row; a
// record whose row does not match is not written and is added to failed
// with its *change.ConflictError.
func writeChecked(ctx context.Context, conn *pgx.Conn, batch []change.Record, stmts []statement, failed map[int]error) error {
	return writeEach(ctx, conn, batch, stmts, failed, func(tx pgx.Tx, i int) error {
		if !conditional(&batch[i]) {
			return nil
		}
		return check(ctx, tx, &batch[i])
	})
}
