package sqlserver

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"

	"github.com/dvsync/dvsync/change"
)

// lsnSQL reads the oldest LSN a capture instance still holds and the
// newest LSN captured in the database. The first is 0x00… when the
// instance does not exist (or the login may not read it).
const lsnSQL = `SELECT sys.fn_cdc_get_min_lsn(@p1) AS min_lsn, sys.fn_cdc_get_max_lsn() AS max_lsn`

// CDC operations, as __$operation reports them.
const (
	cdcDelete       = 1
	cdcInsert       = 2
	cdcUpdateBefore = 3
	cdcUpdateAfter  = 4
)

// cdcChangesSQL reads at most @p1 change rows of t's capture instance
// after (@p2 LSN, @p4 seqval, @p5 operation) up to LSN @p3, with updates
// as before/after pairs, in commit and statement order. Its columns:
// __$start_lsn, __$seqval, __$operation, then the captured columns.
func cdcChangesSQL(t *table) string {
	return "SELECT TOP (@p1) c.__$start_lsn, c.__$seqval, c.__$operation, " + selectList("c.", t.captured) +
		"\nFROM cdc." + quoteName("fn_cdc_get_all_changes_"+t.instance) + "(@p2, @p3, N'all update old') AS c" +
		"\nWHERE c.__$start_lsn > @p2 OR (c.__$start_lsn = @p2 AND (c.__$seqval > @p4 OR (c.__$seqval = @p4 AND c.__$operation > @p5)))" +
		"\nORDER BY c.__$start_lsn, c.__$seqval, c.__$operation"
}

// cdcMeta is the number of CDC columns before the captured ones.
const cdcMeta = 3

// cdcLSNs reads t's instance's minimum LSN and the database's maximum.
func cdcLSNs(ctx context.Context, q queryer, t *table) (minLSN, maxLSN []byte, err error) {
	err = q.query(ctx, lsnSQL, []any{t.instance}, func(_ []column, v []any) error {
		minLSN, _ = v[0].([]byte)
		maxLSN, _ = v[1].([]byte)
		return nil
	})
	switch {
	case err != nil:
		return nil, nil, fmt.Errorf("sqlserver: read the LSNs of capture instance %s: %w", t.instance, err)
	case len(minLSN) != 10 || bytes.Equal(minLSN, make([]byte, 10)):
		return nil, nil, fmt.Errorf("sqlserver: capture instance %s of table %s does not exist, or the login may not read it", t.instance, t.name)
	case len(maxLSN) != 10:
		return nil, nil, fmt.Errorf("sqlserver: sys.fn_cdc_get_max_lsn() returned nothing: CDC is not enabled on the database, or its capture job has not run yet")
	}
	return minLSN, maxLSN, nil
}

// pollCDC reads t's changes since its cursor, page by page, up to the
// maximum LSN at the start of the poll.
//
// A cursor older than the instance's minimum LSN has lost changes to
// cleanup: the table is read whole again instead, and streams from the
// current maximum LSN afterwards.
func (s *streamer) pollCDC(ctx context.Context, t *table) (int, error) {
	minLSN, maxLSN, err := cdcLSNs(ctx, s.db, t)
	if err != nil {
		return 0, err
	}
	cur := s.pos.Tables[t.name]
	if bytes.Compare(cur.LSN, minLSN) < 0 {
		s.logger.Warn("sqlserver: the capture instance no longer holds the changes since the saved LSN; reading the table again",
			"table", t.name, "capture_instance", t.instance, "lsn", hex.EncodeToString(cur.LSN), "min_lsn", hex.EncodeToString(minLSN))
		s.startSnapshot(t, cursor{LSN: maxLSN, Seqval: allSeqval})
		return 0, nil
	}
	if c := bytes.Compare(maxLSN, cur.LSN); c < 0 || c == 0 && bytes.Equal(cur.Seqval, allSeqval) {
		return 0, nil
	}
	n := 0
	for {
		var rows []cdcRow
		args := []any{int64(s.cfg.PageSize), cur.LSN, maxLSN, seqvalOrZero(cur.Seqval), cur.Op}
		err := s.db.query(ctx, cdcChangesSQL(t), args, func(cols []column, vals []any) error {
			r, err := s.cdcRow(t, cols, vals)
			if err != nil {
				return err
			}
			rows = append(rows, r)
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("sqlserver: read changes of %s from capture instance %s: %w", t.name, t.instance, err)
		}
		full := len(rows) == s.cfg.PageSize
		// An update's before image waits for its after image, which the
		// next page starts with.
		if full && rows[len(rows)-1].op == cdcUpdateBefore {
			rows = rows[:len(rows)-1]
		}
		recs := s.cdcRecords(t, rows)
		n += len(recs)
		if err := s.emit(ctx, recs...); err != nil {
			return n, err
		}
		if !full {
			s.pos.Tables[t.name] = cursor{LSN: maxLSN, Seqval: allSeqval}
			return n, nil
		}
		cur = s.pos.Tables[t.name]
	}
}

// seqvalOrZero is the seqval to compare with: a cursor that never saw a
// row has none.
func seqvalOrZero(b []byte) []byte {
	if b == nil {
		return make([]byte, 10)
	}
	return b
}

// cdcRow is one row of a change function.
type cdcRow struct {
	lsn, seqval []byte
	op          int64
	row         change.Row
}

func (s *streamer) cdcRow(t *table, cols []column, vals []any) (cdcRow, error) {
	var r cdcRow
	var ok1, ok2, ok3 bool
	r.lsn, ok1 = vals[0].([]byte)
	r.seqval, ok2 = vals[1].([]byte)
	r.op, ok3 = vals[2].(int64)
	if !ok1 || !ok2 || !ok3 {
		return r, fmt.Errorf("unexpected CDC columns %T, %T, %T", vals[0], vals[1], vals[2])
	}
	r.lsn, r.seqval = bytes.Clone(r.lsn), bytes.Clone(r.seqval)
	row, err := decodeRow(t.captured, cols[cdcMeta:], vals[cdcMeta:])
	if err != nil {
		return r, err
	}
	r.row = row
	return r, nil
}

// cdcRecords turns change rows into records, joining each update's before
// and after images into one record (or, when the update changed the key,
// into a delete of the old key and an insert of the new one).
func (s *streamer) cdcRecords(t *table, rows []cdcRow) []change.Record {
	var recs []change.Record
	var before *cdcRow
	for i := range rows {
		r := &rows[i]
		at := cursor{LSN: r.lsn, Seqval: r.seqval, Op: r.op}
		rec := change.Record{Table: t.name, Key: keyOf(t, r.row), Origin: change.Origin{System: "sqlserver"},
			Meta: map[string]string{"lsn": hex.EncodeToString(r.lsn), "seqval": hex.EncodeToString(r.seqval)}}
		switch r.op {
		case cdcDelete:
			rec.Op, rec.Before = change.OpDelete, r.row
		case cdcInsert:
			rec.Op, rec.After = change.OpInsert, r.row
		case cdcUpdateBefore:
			before = r
			continue
		case cdcUpdateAfter:
			rec.Op, rec.After = change.OpUpdate, r.row
			if before != nil && bytes.Equal(before.lsn, r.lsn) && bytes.Equal(before.seqval, r.seqval) {
				rec.Before = before.row
				if old := keyOf(t, before.row); !old.Equal(rec.Key) {
					del := change.Record{Op: change.OpDelete, Table: t.name, Key: old, Before: before.row,
						Origin: rec.Origin, Meta: rec.Meta}
					s.place(&del, t, cursor{LSN: r.lsn, Seqval: r.seqval, Op: cdcUpdateBefore})
					recs = append(recs, del)
					rec.Op, rec.Before = change.OpInsert, nil
				}
			}
			before = nil
		default:
			continue
		}
		s.place(&rec, t, at)
		recs = append(recs, rec)
	}
	return recs
}

// keyOf picks t's key columns out of row.
func keyOf(t *table, row change.Row) change.Key {
	k := make(change.Key, len(t.keys))
	for i, name := range t.keys {
		v, _ := row.Get(name)
		k[i] = change.Column{Name: name, Value: v}
	}
	return k
}
