package sqlserver

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/dvsync/dvsync/change"
)

// versionsSQL reads the database's current change tracking version and
// the oldest version a table's changes can still be read from. Both are
// NULL when change tracking is off (for the database, for the table).
const versionsSQL = `SELECT CHANGE_TRACKING_CURRENT_VERSION() AS current_version, CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(@p1)) AS min_valid_version`

// ctChangesSQL is the net changes of t after a version (@p1) up to
// another (@p2), joined to the table for the rows' current values, in
// version order. Its columns: version, operation, context, the key
// columns as change tracking recorded them, then every table column
// (NULL when the row is gone).
func ctChangesSQL(t *table) string {
	var on []string
	for _, k := range t.keys {
		on = append(on, "t."+quoteName(k)+" = ct."+quoteName(k))
	}
	return "SELECT ct.SYS_CHANGE_VERSION, ct.SYS_CHANGE_OPERATION, ct.SYS_CHANGE_CONTEXT, " +
		selectList("ct.", t.keys) + ", " + selectList("t.", t.columns) +
		"\nFROM CHANGETABLE(CHANGES " + t.quoted + ", @p1) AS ct" +
		"\nLEFT OUTER JOIN " + t.quoted + " AS t ON " + strings.Join(on, " AND ") +
		"\nWHERE ct.SYS_CHANGE_VERSION <= @p2" +
		"\nORDER BY ct.SYS_CHANGE_VERSION, " + selectList("ct.", t.keys)
}

// ctMeta is the number of change tracking columns before the key.
const ctMeta = 3

// pollCT reads t's changes since its cursor in one snapshot transaction,
// so the versions, the change table and the joined rows agree.
//
// A cursor older than the table's minimum valid version has lost changes
// to cleanup: the table is read whole again instead, and streams from the
// current version afterwards.
func (s *streamer) pollCT(ctx context.Context, t *table) (int, error) {
	n := 0
	err := s.db.snapshot(ctx, func(q queryer) error {
		cur, minValid, err := ctVersions(ctx, q, t)
		if err != nil {
			return err
		}
		from := s.pos.Tables[t.name].Version
		if from < minValid {
			s.logger.Warn("sqlserver: change tracking no longer holds the changes since the saved version; reading the table again",
				"table", t.name, "version", from, "min_valid_version", minValid)
			s.startSnapshot(t, cursor{Version: cur})
			return nil
		}
		if cur <= from {
			return nil
		}
		var pending *change.Record
		var pendingVersion int64
		flush := func(final bool, next int64) error {
			if pending == nil {
				return nil
			}
			// The cursor after a record covers its version only when
			// no row of the same version follows it.
			v := pendingVersion
			switch {
			case final:
				v = cur
			case next == pendingVersion:
				v--
			}
			s.place(pending, t, cursor{Version: v})
			n++
			err := s.emit(ctx, *pending)
			pending = nil
			return err
		}
		err = q.query(ctx, ctChangesSQL(t), []any{from, cur}, func(cols []column, vals []any) error {
			version, ok := vals[0].(int64)
			if !ok {
				return fmt.Errorf("SYS_CHANGE_VERSION: unexpected %T", vals[0])
			}
			if err := flush(false, version); err != nil {
				return err
			}
			marker, _ := vals[2].([]byte)
			if len(marker) > 0 && bytes.Equal(marker, s.context) {
				return nil // dvsync's own write: do not echo it
			}
			rec, err := s.ctRecord(t, cols, vals)
			if err != nil {
				return err
			}
			if len(marker) > 0 {
				rec.Origin.Name = string(marker)
			}
			rec.Meta = map[string]string{"version": strconv.FormatInt(version, 10)}
			pending, pendingVersion = &rec, version
			return nil
		})
		if err != nil {
			return fmt.Errorf("sqlserver: read changes of %s: %w", t.name, err)
		}
		if err := flush(true, 0); err != nil {
			return err
		}
		c := s.pos.Tables[t.name]
		c.Version = cur
		s.pos.Tables[t.name] = c
		return nil
	})
	return n, err
}

// ctVersions reads the current version and t's minimum valid version,
// failing with the statement that enables what is off.
func ctVersions(ctx context.Context, q queryer, t *table) (cur, minValid int64, err error) {
	var curOK, minOK bool
	err = q.query(ctx, versionsSQL, []any{t.quoted}, func(_ []column, v []any) error {
		cur, curOK = v[0].(int64)
		minValid, minOK = v[1].(int64)
		return nil
	})
	switch {
	case err != nil:
		return 0, 0, fmt.Errorf("sqlserver: read change tracking versions of %s: %w", t.name, err)
	case !curOK:
		return 0, 0, fmt.Errorf("sqlserver: change tracking is not enabled on the database (ALTER DATABASE … SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON))")
	case !minOK:
		return 0, 0, fmt.Errorf("sqlserver: change tracking is not enabled on table %s (ALTER TABLE %s ENABLE CHANGE_TRACKING), or the login lacks VIEW CHANGE TRACKING on it", t.name, t.quoted)
	}
	return cur, minValid, nil
}

// ctRecord builds the record of one change row of ctChangesSQL.
func (s *streamer) ctRecord(t *table, cols []column, vals []any) (change.Record, error) {
	op, _ := vals[1].(string)
	nk := len(t.keys)
	key, err := decodeRow(t.keys, cols[ctMeta:ctMeta+nk], vals[ctMeta:ctMeta+nk])
	if err != nil {
		return change.Record{}, fmt.Errorf("key: %w", err)
	}
	rec := change.Record{Table: t.name, Key: change.Key(key), Origin: change.Origin{System: "sqlserver"}}
	rowCols, rowVals := cols[ctMeta+nk:], vals[ctMeta+nk:]
	// The joined row is gone when its first key column is NULL: key
	// columns are never NULL in a row that exists.
	gone := rowVals[indexOf(t.columns, t.keys[0])] == nil
	switch {
	case op == "D" || gone:
		rec.Op = change.OpDelete
		return rec, nil
	case op == "I":
		rec.Op = change.OpInsert
	case op == "U":
		rec.Op = change.OpUpdate
	default:
		return change.Record{}, fmt.Errorf("SYS_CHANGE_OPERATION %q", op)
	}
	rec.After, err = decodeRow(t.columns, rowCols, rowVals)
	if err != nil {
		return change.Record{}, err
	}
	return rec, nil
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// decodeRow decodes vals, named by names, typed by cols.
func decodeRow(names []string, cols []column, vals []any) (change.Row, error) {
	row := make(change.Row, len(names))
	for i, name := range names {
		v, err := decodeValue(cols[i].Type, vals[i])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", name, err)
		}
		row[i] = change.Column{Name: name, Value: v}
	}
	return row, nil
}
