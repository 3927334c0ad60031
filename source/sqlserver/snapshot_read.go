package sqlserver

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/dvsync/dvsync/change"
)

// pageSQL reads at most @p1 rows of t in key order, after the key given
// as @p2… when after is set. The key comparison is spelled out column by
// column, (k1 > @p2) OR (k1 = @p2 AND k2 > @p3), which SQL Server answers
// with a seek on the primary key.
func pageSQL(t *table, after bool) string {
	var b strings.Builder
	b.WriteString("SELECT TOP (@p1) ")
	b.WriteString(selectList("", t.columns))
	b.WriteString("\nFROM ")
	b.WriteString(t.quoted)
	if after {
		b.WriteString("\nWHERE ")
		for i := range t.keys {
			if i > 0 {
				b.WriteString(" OR ")
			}
			b.WriteByte('(')
			for j := 0; j < i; j++ {
				fmt.Fprintf(&b, "%s = @p%d AND ", quoteName(t.keys[j]), j+2)
			}
			fmt.Fprintf(&b, "%s > @p%d)", quoteName(t.keys[i]), i+2)
		}
	}
	b.WriteString("\nORDER BY ")
	b.WriteString(selectList("", t.keys))
	return b.String()
}

// startSnapshot puts t into the snapshot phase: it is read whole from
// the next poll on, and streams from resume once read.
func (s *streamer) startSnapshot(t *table, resume cursor) {
	resume.Snap = &snap{}
	s.pos.Tables[t.name] = resume
}

// readPage reads t's next page of rows as OpRead records. When the page
// is not full the table is done: its cursor leaves the snapshot phase, and
// the last record's position says so.
func (s *streamer) readPage(ctx context.Context, t *table) (int, error) {
	cur := s.pos.Tables[t.name]
	args := []any{int64(s.cfg.PageSize)}
	if cur.Snap.After != nil {
		key, err := decodeKey(t.keys, cur.Snap.After)
		if err != nil {
			return 0, err
		}
		for _, c := range key {
			args = append(args, paramValue(c.Value))
		}
	}
	var recs []change.Record
	err := s.db.query(ctx, pageSQL(t, cur.Snap.After != nil), args, func(cols []column, vals []any) error {
		row, err := decodeRow(t.columns, cols, vals)
		if err != nil {
			return err
		}
		recs = append(recs, change.Record{Op: change.OpRead, Table: t.name, Key: keyOf(t, row), After: row,
			Origin: change.Origin{System: "sqlserver"}})
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sqlserver: read %s: %w", t.name, err)
	}
	done := len(recs) < s.cfg.PageSize
	rows := cur.Snap.Rows
	for i := range recs {
		rows++
		at := cur
		at.Snap = &snap{After: encodeKey(recs[i].Key), Rows: rows}
		if done && i == len(recs)-1 {
			at.Snap = nil
		}
		recs[i].Meta = map[string]string{"snapshot_row": strconv.FormatInt(rows, 10)}
		s.place(&recs[i], t, at)
	}
	if done {
		cur.Snap = nil
		s.pos.Tables[t.name] = cur
		s.logger.Info("sqlserver: table read", "table", t.name, "rows", rows)
	}
	s.rowsRead(t.name, rows, done)
	return len(recs), s.emit(ctx, recs...)
}
