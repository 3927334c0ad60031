package mapping

import (
	"github.com/dvsync/dvsync/change"
)

// MapToSource turns a Dataverse record into the source record, for
// mappings whose direction is from-dataverse or both:
//
//   - Table is the source table;
//   - Key holds the source columns of the Dataverse key: under an
//     alternate key, the source columns of the key's attributes, with
//     values from the record's Key, else its After, else its Before (a
//     delete's pre-image); under key.id with a
//     column, that column with the primary id's value;
//   - After holds the record's attributes that columns flowing from
//     Dataverse map, in the record's order, renamed to their source
//     columns, choice option values mapped back to the source values' text,
//     other values as Dataverse typed them. Attributes no such column maps
//     are dropped, as are computed and lookup columns, which only flow to
//     Dataverse. Nil for deletes;
//   - a delete stays a delete unless the mapping ignores deletes; Op,
//     Position, CommitTime, Origin and Meta are the record's; Before is
//     nil.
//
// The filter applies to the mapped row: a row outside it is dropped. ok
// is false, with a nil error, when no mapping of this connection maps the
// Dataverse table back, or the record is dropped. Errors are
// change.Permanent and name the mapping file, the record and the column,
// never other values. Safe for concurrent use.
func (m *Mapper) MapToSource(rec *change.Record) (out change.Record, ok bool, err error) {
	if m == nil {
		return out, false, nil
	}
	p := m.byTarget[rec.Table]
	if p == nil {
		return out, false, nil
	}
	out = change.Record{
		Op:         rec.Op,
		Table:      p.sourceTable,
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
		if out.Key, err = p.sourceKey(rec); err != nil {
			return change.Record{}, false, err
		}
		if out.After, err = p.sourceRow(rec); err != nil {
			return change.Record{}, false, err
		}
		if p.filter != nil {
			if in, err := p.test(out.After); err != nil || !in {
				if err != nil {
					return change.Record{}, false, p.fail(rec, nil, "the filter "+err.Error())
				}
				return change.Record{}, false, nil
			}
		}
	case change.OpDelete:
		if p.deletes == DeletesIgnore {
			return change.Record{}, false, nil
		}
		if out.Key, err = p.sourceKey(rec); err != nil {
			return change.Record{}, false, err
		}
	default:
		return change.Record{}, false, p.fail(rec, nil, "unknown operation "+rec.Op.String())
	}
	return out, true, nil
}

// sourceKey maps the Dataverse key back to source key columns.
func (p *plan) sourceKey(rec *change.Record) (change.Key, error) {
	find := func(attr string, col *colPlan) (change.Value, error) {
		v, ok := lookup(rec.Key, attr)
		if !ok {
			v, ok = lookup(rec.After, attr)
		}
		if !ok {
			// A delete's row is its pre-image, when the webhook step
			// registered one.
			v, ok = lookup(rec.Before, attr)
		}
		if !ok {
			return v, p.fail(rec, col, "is missing from the Dataverse record")
		}
		if v.IsNull() {
			return v, p.fail(rec, col, "is NULL in the Dataverse record")
		}
		return v, nil
	}
	if p.mode == byIDColumn {
		v, err := find(p.idAttr, &p.idCol)
		if err != nil {
			return nil, err
		}
		return change.Key{{Name: p.idSource, Value: v}}, nil
	}
	key := make(change.Key, len(p.keys))
	for k, i := range p.keys {
		col := &p.cols[i]
		v, err := find(col.target, col)
		if err != nil {
			return nil, err
		}
		key[k] = change.Column{Name: col.source, Value: v}
	}
	return key, nil
}

// sourceRow maps the Dataverse attributes back to source columns.
func (p *plan) sourceRow(rec *change.Record) (change.Row, error) {
	row := make(change.Row, 0, len(p.byAttr))
	for _, c := range rec.After {
		i, ok := p.byAttr[c.Name]
		if !ok {
			continue
		}
		col := &p.cols[i]
		v := c.Value
		if col.choice != nil {
			var skip bool
			var err error
			if v, skip, err = col.choice.fromOption(v); err != nil {
				return nil, p.fail(rec, col, err.Error())
			} else if skip {
				continue
			}
		}
		row = append(row, change.Column{Name: col.source, Value: v})
	}
	return row, nil
}

// KeyAttributes returns the attributes that identify a row of the
// Dataverse table for the mapping that writes its changes back: the
// alternate key's attributes, in the key's order. Nil when no mapping of
// this connection maps the table back, or when it addresses rows by their
// primary id (key.id.column), which every Dataverse record carries.
//
// A delete Dataverse reports by id alone carries none of them; a caller
// that remembers them by id can supply them as the record's Before.
func (m *Mapper) KeyAttributes(table string) []string {
	if m == nil {
		return nil
	}
	p := m.byTarget[table]
	if p == nil || p.mode != byAlternateKey {
		return nil
	}
	attrs := make([]string, len(p.keys))
	for k, i := range p.keys {
		attrs[k] = p.cols[i].target
	}
	return attrs
}
