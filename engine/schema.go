package engine

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/dvsync/dvsync/change"
)

// Meta keys a source sets on the first record of a table after columns
// of the table were dropped or changed type. Each value is a JSON array of
// column names. The PostgreSQL source sets them; the engine names them
// here rather than import a source.
const (
	MetaDroppedColumns = "dropped_columns"
	MetaRetypedColumns = "retyped_columns"
)

// ColumnReader is implemented by a Mapper that can tell which source
// columns it reads. It lets the pipeline pause a table after a schema
// change only when the change touches a column the mapping reads. It is
// called from the read loop, like Map.
type ColumnReader interface {
	// ReadsColumn reports whether mapping a record of the source table
	// reads column: as a mapped column, a key, or in an expression or
	// filter.
	ReadsColumn(table, column string) bool
}

// schemaChange returns why rec's table must be paused before rec is
// mapped, or "" if it need not be. It must be: rec is the first record of
// its table after columns were dropped or retyped, and the mapper reads
// one of them. A mapper that cannot tell which columns it reads is
// assumed to read them all, when it maps (or fails to map) rec at all:
// writing on with a column gone or of another type may corrupt the rows,
// whereas a pause only waits for an operator.
func schemaChange(m Mapper, rec *change.Record) string {
	if len(rec.Meta) == 0 {
		return ""
	}
	dropped := columnList(rec.Meta[MetaDroppedColumns])
	retyped := columnList(rec.Meta[MetaRetypedColumns])
	if len(dropped)+len(retyped) == 0 {
		return ""
	}
	if cr, ok := m.(ColumnReader); ok {
		dropped = readBy(cr, rec.Table, dropped)
		retyped = readBy(cr, rec.Table, retyped)
		if len(dropped)+len(retyped) == 0 {
			return ""
		}
	} else if _, mapped, err := m.Map(rec); !mapped && err == nil {
		return ""
	}
	var parts []string
	if len(dropped) > 0 {
		parts = append(parts, "dropped "+strings.Join(dropped, ", "))
	}
	if len(retyped) > 0 {
		parts = append(parts, "changed type of "+strings.Join(retyped, ", "))
	}
	return fmt.Sprintf("the source %s; check the mapping, then resume the table", strings.Join(parts, " and "))
}

// columnList decodes a JSON array of column names; a malformed one yields
// none.
func columnList(v string) []string {
	if v == "" {
		return nil
	}
	var names []string
	if json.Unmarshal([]byte(v), &names) != nil {
		return nil
	}
	return names
}

func readBy(cr ColumnReader, table string, cols []string) []string {
	var out []string
	for _, c := range cols {
		if cr.ReadsColumn(table, c) {
			out = append(out, c)
		}
	}
	return out
}

// pauseForSchema pauses table with reason, if it is not paused already.
// The caller holds p.pause.mu.
func (p *Pipeline) pauseForSchema(table, reason string) {
	if _, ok := p.pause.tables[table]; !ok {
		p.pause.tables[table] = nil
	}
	p.pause.reasons[table] = reason
	p.log.Error("table paused after a schema change: its changes are held until it is resumed",
		"table", table, "reason", reason)
}

// schemaPaused returns the tables paused after a schema change, with why;
// nil when none is.
func (p *Pipeline) schemaPaused() map[string]string {
	p.pause.mu.Lock()
	defer p.pause.mu.Unlock()
	if len(p.pause.reasons) == 0 {
		return nil
	}
	return maps.Clone(p.pause.reasons)
}
