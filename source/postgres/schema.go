package postgres

import (
	"encoding/json"
	"slices"
)

// Meta keys of the first record of a table after its columns were
// dropped or changed type. Each value is a JSON array of column names.
//
// pgoutput describes a table again (a Relation message) before its
// first change after an ALTER TABLE. Added columns need no notice: they
// simply appear in the rows. A dropped or retyped column may break what
// the destination expects of it, so the record says which columns; the
// engine decides whether to pause the table. The notice is given once per
// Open, on the first record delivered after the change.
const (
	MetaDroppedColumns = "dropped_columns"
	MetaRetypedColumns = "retyped_columns"
)

// schemaChanged compares a captured table's new description with the one
// before, logs what changed, and keeps a notice of dropped and retyped
// columns for the table's next record.
func (s *stream) schemaChanged(rel *relation) {
	prev, known := s.schemas[rel.table]
	s.schemas[rel.table] = rel.columns
	if !known {
		return
	}
	var added, dropped, retyped []string
	for _, c := range rel.columns {
		i := slices.IndexFunc(prev, func(p relColumn) bool { return p.name == c.name })
		switch {
		case i < 0:
			added = append(added, c.name)
		case prev[i].typ != c.typ:
			retyped = append(retyped, c.name)
		}
	}
	for _, p := range prev {
		if !slices.ContainsFunc(rel.columns, func(c relColumn) bool { return c.name == p.name }) {
			dropped = append(dropped, p.name)
		}
	}
	if len(added)+len(dropped)+len(retyped) == 0 {
		return
	}
	s.logger.Info("postgres: table schema changed", "table", rel.table, "added", added, "dropped", dropped, "retyped", retyped)
	if len(dropped)+len(retyped) == 0 {
		return
	}
	note := s.notes[rel.table]
	if note == nil {
		note = map[string]string{}
		s.notes[rel.table] = note
	}
	// Changes not yet delivered accumulate into one notice.
	addNames(note, MetaDroppedColumns, dropped)
	addNames(note, MetaRetypedColumns, retyped)
}

// addNames adds names to the JSON array under key.
func addNames(meta map[string]string, key string, names []string) {
	if len(names) == 0 {
		return
	}
	var all []string
	if v, ok := meta[key]; ok {
		_ = json.Unmarshal([]byte(v), &all) // we wrote it
	}
	for _, n := range names {
		if !slices.Contains(all, n) {
			all = append(all, n)
		}
	}
	b, _ := json.Marshal(all) // strings always marshal
	meta[key] = string(b)
}
