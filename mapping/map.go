package mapping

import (
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/dvsync/dvsync/change"
)

// Map turns a source record into the Dataverse record:
//
//   - Table is the Dataverse logical name;
//   - Key addresses the Dataverse row. Under an alternate key it holds the
//     key's attributes, in the key's order, with values from the source
//     row: After for upserts (falling back to Key, then Before, where After
//     lacks the column or has it Unchanged), Key then Before for deletes.
//     Under key.id it holds one column, the primary id attribute (such as
//     accountid) with a KindUUID value: the UUID5 of the source key's
//     values, or the id column's value;
//   - After holds the mapped columns that the source row has, in the row's
//     order, renamed to their targets and converted (a source column mapped
//     to two targets gives both), then the expression and constant columns
//     in the file's order. Unchanged values stay Unchanged, and so does an
//     expression reading one; NULL stays NULL unless the column has a
//     default. A lookup column is named <target>@odata.bind, its value the
//     parent's address as text (/accounts(accountnumber='42')) or NULL to
//     clear it. Unmapped columns are dropped, and so is a mapped column
//     absent from the row or a choice column skipping an unmapped value.
//     Nil for deletes;
//   - Op, Position, CommitTime, Origin and Meta are the source record's
//     (Position and Meta are shared, not copied); Before is nil.
//
// With a filter, an insert or snapshot read of a row outside it is
// dropped, and an update that takes a row out of it (or updates a row
// outside it, when Before does not show it was outside already) is handled
// as a delete. A delete applies the delete policy: OpDelete; nothing, for
// deletes: ignore; or for deletes: soft an OpUpdate whose After holds only
// the soft-delete attributes — which the sink must not turn into an
// insert of a row that is not there.
//
// ok is false, with a nil error, when the record's table is not mapped to
// Dataverse on this connection, or the record is dropped as above.
//
// A record that cannot be mapped returns a change.Permanent error naming
// the mapping file, the record's table and key, and the column: a key
// column that is NULL, or missing (a delete under PostgreSQL's REPLICA
// IDENTITY DEFAULT carries only primary-key columns), a value that does not
// convert to the column's type or is not one of its choices, or an
// expression that fails. Values other than the key are never quoted.
//
// Map allocates the output's columns (key and row in one block) and, for
// records that need them, the values conversions create and the
// expressions' work.
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
		if p.filter != nil {
			in, err := p.matches(rec)
			if err != nil {
				return change.Record{}, false, err
			}
			if !in {
				if rec.Op != change.OpUpdate || p.outsideBefore(rec) {
					return change.Record{}, false, nil
				}
				return p.remove(rec, out, rec.After)
			}
		}
		out.Key, out.After, err = p.upsert(rec)
	case change.OpDelete:
		if p.filter != nil && p.outsideBefore(rec) {
			return change.Record{}, false, nil
		}
		return p.remove(rec, out, nil)
	case change.OpTruncate:
		// Emptying a Dataverse table because its source was emptied must
		// be asked for, not assumed.
		if p.truncate != TruncateDelete {
			return change.Record{}, false, nil
		}
		return out, true, nil
	default:
		return change.Record{}, false, p.fail(rec, nil, "unknown operation "+rec.Op.String())
	}
	if err != nil {
		return change.Record{}, false, err
	}
	return out, true, nil
}

// matches evaluates the filter on the new row. A column the update did not
// send is read from Before when the source sent it.
func (p *plan) matches(rec *change.Record) (bool, error) {
	in, err := p.test(rec.After)
	if errors.Is(err, errUnchanged) && rec.Before != nil {
		in, err = p.test(change.Merge(rec.Before, rec.After))
	}
	switch {
	case errors.Is(err, errUnchanged):
		return false, p.fail(rec, nil, "the filter reads a column the source did not send "+
			"(an unchanged TOASTed value); for PostgreSQL set REPLICA IDENTITY FULL on the table")
	case err != nil:
		return false, p.fail(rec, nil, "the filter "+err.Error())
	}
	return in, nil
}

// outsideBefore reports whether the old row is known and outside the
// filter, so that its change does not concern Dataverse.
func (p *plan) outsideBefore(rec *change.Record) bool {
	if rec.Before == nil {
		return false
	}
	in, err := p.test(rec.Before)
	return err == nil && !in
}

// test evaluates the filter on one row; NULL counts as false, as in SQL.
func (p *plan) test(row change.Row) (bool, error) {
	x, err := p.filter.run(row)
	if err != nil {
		return false, err
	}
	switch b := x.(type) {
	case bool:
		return b, nil
	case nil:
		return false, nil
	}
	return false, fmt.Errorf("returned a %T, not a boolean", x)
}

// remove applies the delete policy to a row that is gone from the source,
// or has left the filter; row, when not nil, is looked in first for the
// key.
func (p *plan) remove(rec *change.Record, out change.Record, row change.Row) (change.Record, bool, error) {
	if p.deletes == DeletesIgnore {
		return change.Record{}, false, nil
	}
	key, err := p.removedKey(rec, row)
	if err != nil {
		return change.Record{}, false, err
	}
	out.Key, out.After = key, nil
	out.Op = change.OpDelete
	if p.deletes == DeletesSoft {
		out.Op, out.After = change.OpUpdate, p.soft.Clone()
	}
	return out, true, nil
}

func (p *plan) upsert(rec *change.Record) (change.Key, change.Row, error) {
	nk := len(p.keys)
	if p.mode != byAlternateKey {
		nk = 1
	}
	extra := len(p.computed)
	if p.softFlag != "" {
		extra++
	}
	buf := make([]change.Column, nk, nk+len(p.cols)+extra)
	var found uint64 // bit k: key attribute k was found in After
	for _, c := range rec.After {
		i, ok := p.bySource[c.Name]
		if !ok {
			continue
		}
		for ; i >= 0; i = p.cols[i].next {
			col := &p.cols[i]
			v, skip, err := col.value(c.Value)
			if err != nil {
				return nil, nil, p.fail(rec, col, err.Error())
			}
			if skip {
				continue
			}
			buf = append(buf, change.Column{Name: col.out, Value: v})
			if col.key >= 0 && !v.IsUnchanged() {
				buf[col.key] = change.Column{Name: col.target, Value: v}
				found |= 1 << col.key
			}
		}
	}
	for _, i := range p.computed {
		col := &p.cols[i]
		v, skip, err := p.compute(col, rec.After)
		if err != nil {
			return nil, nil, p.fail(rec, col, err.Error())
		}
		if !skip {
			buf = append(buf, change.Column{Name: col.out, Value: v})
		}
	}
	if p.softFlag != "" {
		buf = append(buf, change.Column{Name: p.softFlag, Value: change.Bool(false)})
	}
	if p.mode != byAlternateKey {
		id, err := p.id(rec, rec.After)
		if err != nil {
			return nil, nil, err
		}
		buf[0] = id
		return change.Key(buf[:1:1]), change.Row(buf[1:]), nil
	}
	for k, i := range p.keys {
		if found&(1<<k) != 0 {
			continue
		}
		// An unchanged TOASTed key column, or one the source keeps apart.
		v, err := p.oldKey(rec, nil, &p.cols[i], "is missing from the row; is the source column's name right?")
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

// compute gives an expression or constant column's value.
func (p *plan) compute(col *colPlan, row change.Row) (change.Value, bool, error) {
	if col.constant != nil {
		return *col.constant, false, nil
	}
	x, err := col.expr.run(row)
	if errors.Is(err, errUnchanged) {
		// It depends on a value the source did not resend: leave it alone.
		return change.Unchanged(), false, nil
	}
	if err != nil {
		return change.Value{}, false, err
	}
	v, err := fromExpr(x)
	if err != nil {
		return v, false, err
	}
	return col.value(v)
}

const missingInDelete = "is missing from the delete: the source sent only " +
	"its own key columns; make the column part of the table's primary key, or for " +
	"PostgreSQL set REPLICA IDENTITY FULL on the table"

// removedKey builds the key of a row being deleted: from row when given,
// then the record's Key, then Before.
func (p *plan) removedKey(rec *change.Record, row change.Row) (change.Key, error) {
	if p.mode != byAlternateKey {
		id, err := p.id(rec, row)
		if err != nil {
			return nil, err
		}
		return change.Key{id}, nil
	}
	key := make(change.Key, len(p.keys))
	for k, i := range p.keys {
		v, err := p.oldKey(rec, row, &p.cols[i], missingInDelete)
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

// oldKey finds a key column's value in row, else the record's Key, else
// Before, and converts it; missing says why it may be in none.
func (p *plan) oldKey(rec *change.Record, row change.Row, col *colPlan, missing string) (change.Value, error) {
	v, ok := lookup(row, col.source)
	if !ok {
		v, ok = lookup(rec.Key, col.source)
	}
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

// id gives the primary id column of the Key: the UUID5 of the source
// key's values, or the id column's value found as oldKey finds it.
func (p *plan) id(rec *change.Record, row change.Row) (change.Column, error) {
	if p.mode == byUUID5 {
		var name [64]byte
		b := name[:0]
		for i, c := range rec.Key {
			if c.Value.IsNull() || c.Value.IsUnchanged() {
				return change.Column{}, p.fail(rec, nil, "the source key column "+c.Name+" has no value to derive the id from")
			}
			if i > 0 {
				b = append(b, '/')
			}
			b = c.Value.AppendText(b)
		}
		return change.Column{Name: p.idAttr, Value: change.UUID(uuid.NewSHA1(p.namespace, b))}, nil
	}
	col := &p.idCol
	v, err := p.oldKey(rec, row, col, "is missing from the row")
	if err != nil {
		return change.Column{}, err
	}
	if v.IsNull() {
		return change.Column{}, p.fail(rec, col, "is NULL, and a row's id cannot be")
	}
	return change.Column{Name: p.idAttr, Value: v}, nil
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
		switch {
		case col.source == "":
			msg = fmt.Sprintf("computed column (target %s) %s", col.target, msg)
		case col.key >= 0:
			msg = fmt.Sprintf("key column %s (target %s) %s", col.source, col.target, msg)
		default:
			msg = fmt.Sprintf("column %s (target %s) %s", col.source, col.target, msg)
		}
	}
	return change.Permanent(fmt.Errorf("mapping %s: %s %s: %s", p.file, rec.Table, rec.Key, msg))
}
