package mapping

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/yamlfile"
)

// Set is a compiled group of mappings, indexed by connection and source
// table. It is immutable and safe for concurrent use.
type Set struct {
	mappers    map[string]*Mapper
	conns      []string
	entitySets map[string]string
}

// Mapper applies the mappings of one connection. It is immutable and safe
// for concurrent use; a nil *Mapper maps nothing.
type Mapper struct {
	plans  map[string]*plan // by source table
	tables []string
}

// plan is one mapping, precomputed for Map.
type plan struct {
	file          string
	table         string // Dataverse logical name
	ignoreDeletes bool
	cols          []colPlan
	// bySource gives the first of cols reading each source column; further
	// ones follow colPlan.next. Looking up each source column once keeps
	// Map linear in the row's width.
	bySource map[string]int
	// keys are the indexes in cols of the alternate key's attributes, in
	// the key's order.
	keys []int
}

type colPlan struct {
	source, target string
	typ            AttributeType
	conv           converter // nil: pass through
	next           int       // next column reading the same source, or -1
	key            int       // position in the alternate key, or -1
}

// Compile validates the mappings, each on its own and against each other
// (see LoadFiles), and builds a Set. Problems name the mapping files and
// lines. The Set keeps the Mappings; they must not be modified afterwards.
func Compile(ms []*Mapping) (*Set, error) {
	var errs []error
	valid := make([]*Mapping, 0, len(ms))
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		valid = append(valid, m)
	}
	var ps yamlfile.Problems
	crossCheck(valid, &ps)
	if err := errors.Join(append(errs, ps.Err())...); err != nil {
		return nil, err
	}

	s := &Set{mappers: map[string]*Mapper{}, entitySets: map[string]string{}}
	for _, m := range valid {
		mp := s.mappers[m.Source.Connection]
		if mp == nil {
			mp = &Mapper{plans: map[string]*plan{}}
			s.mappers[m.Source.Connection] = mp
		}
		mp.plans[m.Source.Table] = newPlan(m)
		mp.tables = append(mp.tables, m.Source.Table)
		if m.Dataverse.EntitySet != "" {
			s.entitySets[m.Dataverse.Table] = m.Dataverse.EntitySet
		}
	}
	for conn, mp := range s.mappers {
		slices.Sort(mp.tables)
		s.conns = append(s.conns, conn)
	}
	slices.Sort(s.conns)
	return s, nil
}

func newPlan(m *Mapping) *plan {
	p := &plan{
		file:          m.File,
		table:         m.Dataverse.Table,
		ignoreDeletes: m.Deletes == DeletesIgnore,
		cols:          make([]colPlan, len(m.Columns)),
		bySource:      make(map[string]int, len(m.Columns)),
		keys:          make([]int, len(m.Key.AlternateKey)),
	}
	last := map[string]int{}
	for i, c := range m.Columns {
		p.cols[i] = colPlan{source: c.Source, target: c.Target, typ: c.Type, conv: converterFor(c.Type), next: -1, key: -1}
		if j, seen := last[c.Source]; seen {
			p.cols[j].next = i
		} else {
			p.bySource[c.Source] = i
		}
		last[c.Source] = i
	}
	for k, attr := range m.Key.AlternateKey {
		i := slices.IndexFunc(m.Columns, func(c Column) bool { return c.Target == attr })
		p.keys[k] = i
		p.cols[i].key = k
	}
	return p
}

// Connections returns the names of the connections the mappings read from,
// sorted.
func (s *Set) Connections() []string { return slices.Clone(s.conns) }

// Tables returns the source tables mapped on one connection, sorted; nil
// for a connection without mappings.
func (s *Set) Tables(connection string) []string {
	if mp := s.mappers[connection]; mp != nil {
		return slices.Clone(mp.tables)
	}
	return nil
}

// EntitySets returns the entity set names the mappings give, by Dataverse
// logical name. Tables whose mappings give none are absent. The map is the
// caller's.
func (s *Set) EntitySets() map[string]string { return maps.Clone(s.entitySets) }

// Mapper returns the Mapper for one connection, or nil (which maps
// nothing) when no mapping reads from it.
func (s *Set) Mapper(connection string) *Mapper { return s.mappers[connection] }

// Map turns a source record into the Dataverse record:
//
//   - Table is the Dataverse logical name;
//   - Key holds the alternate key's attributes, in the key's order, with
//     values from the source row: After for upserts (falling back to Key,
//     then Before, where After lacks the column or has it Unchanged), Key
//     then Before for deletes;
//   - After holds the mapped columns that the source row has, in the row's
//     order, renamed to their targets and converted to their declared
//     types (a source column mapped to two targets gives both); Unchanged values
//     stay Unchanged, NULL stays NULL, unmapped columns are dropped. A
//     mapped column absent from the row is left out. Nil for deletes;
//   - Op, Position, CommitTime, Origin and Meta are the source record's
//     (Position and Meta are shared, not copied); Before is nil.
//
// ok is false, with a nil error, when the record's table is not mapped on
// this connection or the mapping ignores deletes and the record is one.
//
// A record that cannot be mapped returns a change.Permanent error naming
// the mapping file, the record's table and key, and the column: a key
// column that is NULL, or missing (a delete under PostgreSQL's REPLICA
// IDENTITY DEFAULT carries only primary-key columns), or a value that does
// not convert to the column's type.
//
// Map allocates the output's columns (key and row in one block) and
// nothing else, except the values that a conversion creates.
func (m *Mapper) Map(rec *change.Record) (out change.Record, ok bool, err error) {
	if m == nil {
		return out, false, nil
	}
	p := m.plans[rec.Table]
	if p == nil {
		return out, false, nil
	}
	out = change.Record{
		Op:         rec.Op,
		Table:      p.table,
		Position:   rec.Position,
		CommitTime: rec.CommitTime,
		Origin:     rec.Origin,
		Meta:       rec.Meta,
	}
	switch rec.Op {
	case change.OpInsert, change.OpUpdate, change.OpRead:
		if rec.After == nil {
			return change.Record{}, false, p.fail(rec, nil, "the record has no row")
		}
		out.Key, out.After, err = p.upsert(rec)
	case change.OpDelete:
		if p.ignoreDeletes {
			return change.Record{}, false, nil
		}
		out.Key, err = p.delete(rec)
	default:
		return change.Record{}, false, p.fail(rec, nil, "unknown operation "+rec.Op.String())
	}
	if err != nil {
		return change.Record{}, false, err
	}
	return out, true, nil
}

func (p *plan) upsert(rec *change.Record) (change.Key, change.Row, error) {
	nk := len(p.keys)
	buf := make([]change.Column, nk, nk+len(p.cols))
	var found uint64 // bit k: key attribute k was found in After
	for _, c := range rec.After {
		i, ok := p.bySource[c.Name]
		if !ok {
			continue
		}
		for ; i >= 0; i = p.cols[i].next {
			col := &p.cols[i]
			v, err := col.convert(c.Value)
			if err != nil {
				return nil, nil, p.fail(rec, col, err.Error())
			}
			buf = append(buf, change.Column{Name: col.target, Value: v})
			if col.key >= 0 && !v.IsUnchanged() {
				buf[col.key] = change.Column{Name: col.target, Value: v}
				found |= 1 << col.key
			}
		}
	}
	for k, i := range p.keys {
		if found&(1<<k) != 0 {
			continue
		}
		// An unchanged TOASTed key column, or one the source keeps apart.
		v, err := p.oldKey(rec, &p.cols[i], "is missing from the row; is the source column's name right?")
		if err != nil {
			return nil, nil, err
		}
		buf[k] = change.Column{Name: p.cols[i].target, Value: v}
	}
	for k, i := range p.keys {
		if buf[k].Value.IsNull() {
			return nil, nil, p.fail(rec, &p.cols[i], errNullKey)
		}
	}
	return change.Key(buf[:nk:nk]), change.Row(buf[nk:]), nil
}

func (p *plan) delete(rec *change.Record) (change.Key, error) {
	key := make(change.Key, len(p.keys))
	for k, i := range p.keys {
		v, err := p.oldKey(rec, &p.cols[i], "is missing from the delete: the source sent only "+
			"its own key columns; make the column part of the table's primary key, or for "+
			"PostgreSQL set REPLICA IDENTITY FULL on the table")
		if err != nil {
			return nil, err
		}
		if v.IsNull() {
			return nil, p.fail(rec, &p.cols[i], errNullKey)
		}
		key[k] = change.Column{Name: p.cols[i].target, Value: v}
	}
	return key, nil
}

const errNullKey = "is NULL, and an alternate key value cannot be"

// oldKey finds a key column's value in the record's Key, else in Before,
// and converts it; missing says why it may be in neither.
func (p *plan) oldKey(rec *change.Record, col *colPlan, missing string) (change.Value, error) {
	v, ok := lookup(rec.Key, col.source)
	if !ok {
		v, ok = lookup(rec.Before, col.source)
	}
	if !ok {
		return v, p.fail(rec, col, missing)
	}
	v, err := col.convert(v)
	if err != nil {
		return v, p.fail(rec, col, err.Error())
	}
	return v, nil
}

// lookup returns a column's value when present and not Unchanged.
func lookup(cols []change.Column, name string) (change.Value, bool) {
	for i := range cols {
		if cols[i].Name == name {
			return cols[i].Value, !cols[i].Value.IsUnchanged()
		}
	}
	return change.Value{}, false
}

// convert applies the column's declared type; NULL and Unchanged pass.
func (c *colPlan) convert(v change.Value) (change.Value, error) {
	if c.conv == nil || v.IsNull() || v.IsUnchanged() {
		return v, nil
	}
	out, err := c.conv(v)
	if err != nil {
		return v, conversionError(v, c.typ, err)
	}
	return out, nil
}

// fail builds the permanent error for a record that cannot be mapped. The
// record's key is named; its other values are not, as they may be
// sensitive.
func (p *plan) fail(rec *change.Record, col *colPlan, msg string) error {
	if col != nil {
		kind := "column"
		if col.key >= 0 {
			kind = "key column"
		}
		msg = fmt.Sprintf("%s %s (target %s) %s", kind, col.source, col.target, msg)
	}
	return change.Permanent(fmt.Errorf("mapping %s: %s %s: %s", p.file, rec.Table, rec.Key, msg))
}
