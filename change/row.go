package change

import (
	"encoding/binary"
	"strings"
)

// Column is one named value.
type Column struct {
	Name  string
	Value Value
}

// Row is an ordered list of columns. Order is the source's column order;
// names are unique within a row. Rows are small (tens of columns), so a
// slice beats a map for both allocation and lookup.
type Row []Column

// Get returns the named column's value and whether the row has it.
func (r Row) Get(name string) (Value, bool) {
	for i := range r {
		if r[i].Name == name {
			return r[i].Value, true
		}
	}
	return Value{}, false
}

// Set replaces the named column's value, or appends the column.
func (r Row) Set(name string, v Value) Row {
	for i := range r {
		if r[i].Name == name {
			r[i].Value = v
			return r
		}
	}
	return append(r, Column{Name: name, Value: v})
}

// Clone returns a copy of r that shares nothing mutable with it.
func (r Row) Clone() Row {
	if r == nil {
		return nil
	}
	return append(Row(nil), r...)
}

// Merge returns newer laid over older: newer's values win, except where
// newer's value is Unchanged, where older's value is kept. Columns only in
// older are kept. Neither input is modified.
func Merge(older, newer Row) Row {
	out := older.Clone()
	for _, c := range newer {
		if c.Value.IsUnchanged() {
			if _, ok := out.Get(c.Name); ok {
				continue
			}
		}
		out = out.Set(c.Name, c.Value)
	}
	return out
}

// Key identifies a row within its table: one column, or several in a fixed
// order (composite keys keep the order the table or mapping declares).
type Key []Column

// String renders the key as name=value pairs, e.g. "tenant=7,id=42".
func (k Key) String() string {
	var b strings.Builder
	for i, c := range k {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(c.Name)
		b.WriteByte('=')
		b.Write(c.Value.AppendText(nil))
	}
	return b.String()
}

// AppendBinary appends an unambiguous encoding of the key's values (not
// names) to dst: two keys encode equal if and only if their values are
// equal kind by kind. The engine uses it to route and fold changes per key.
func (k Key) AppendBinary(dst []byte) []byte {
	var scratch [64]byte // most key values fit: no allocation per column
	for _, c := range k {
		dst = append(dst, byte(c.Value.k))
		s := c.Value.AppendText(scratch[:0])
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// Equal reports whether two keys have the same columns and values.
func (k Key) Equal(o Key) bool {
	if len(k) != len(o) {
		return false
	}
	for i := range k {
		if k[i].Name != o[i].Name || !k[i].Value.Equal(o[i].Value) {
			return false
		}
	}
	return true
}
