package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dvsync/dvsync/change"
)

// The record codec is binary rather than JSON because it must be lossless
// for every value a source can produce: text that is not valid UTF-8,
// float NaN payloads, timestamps with their zone, nil versus empty rows.
//
// Layout, version 1 (uvarint/varint are encoding/binary's):
//
//	record   = version:byte(1) op:byte table:string key:columns
//	           before:row after:row position:bytes commit:time
//	           origin_system:string origin_name:string meta
//	row      = uvarint(0) for nil | uvarint(n+1) columns...
//	columns  = uvarint(n) (name:string value)...
//	value    = kind:byte payload (by kind: none; varint; 8-byte float bits;
//	           string; byte 0/1; time; 16 bytes)
//	time     = byte 0 (zero time) | byte 1 varint(unix s) uvarint(ns) (UTC)
//	         | byte 2 varint(unix s) uvarint(ns) varint(offset s) string(zone name)
//	bytes    = uvarint(0) for nil | uvarint(n+1) n bytes
//	meta     = uvarint(0) for nil | uvarint(n+1) (key:string value:string)... sorted by key
//	string   = uvarint(n) n bytes
//
// A new layout gets a new version byte; DecodeRecord keeps reading the old
// ones, since dead letters outlive upgrades.
const recordV1 = 1

// AppendRecord appends the encoding of r to dst and returns the extended
// buffer. The encoding is deterministic: equal records encode equal.
func AppendRecord(dst []byte, r *change.Record) []byte {
	dst = append(dst, recordV1, byte(r.Op))
	dst = appendString(dst, r.Table)
	dst = appendColumns(dst, r.Key)
	dst = appendRow(dst, r.Before)
	dst = appendRow(dst, r.After)
	dst = appendBytes(dst, r.Position)
	dst = appendTime(dst, r.CommitTime)
	dst = appendString(dst, r.Origin.System)
	dst = appendString(dst, r.Origin.Name)
	if r.Meta == nil {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Meta))+1)
	keys := make([]string, 0, len(r.Meta))
	for k := range r.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = appendString(dst, r.Meta[k])
	}
	return dst
}

// DecodeRecord decodes a record encoded by AppendRecord, of this or an
// earlier version. It rejects trailing bytes and any malformed input with
// an error; it never panics.
func DecodeRecord(b []byte) (change.Record, error) {
	d := decoder{b: b}
	var r change.Record
	switch v := d.byte(); {
	case d.err != nil:
		return r, fmt.Errorf("state: decode record: %w", d.err)
	case v != recordV1:
		return r, fmt.Errorf("state: decode record: unknown encoding version %d", v)
	}
	r.Op = change.Op(d.byte())
	r.Table = d.string()
	r.Key = change.Key(d.columns())
	r.Before = d.row()
	r.After = d.row()
	r.Position = d.bytes()
	r.CommitTime = d.time()
	r.Origin.System = d.string()
	r.Origin.Name = d.string()
	if n := d.count(); n > 0 {
		r.Meta = make(map[string]string, n-1)
		for range n - 1 {
			k := d.string()
			r.Meta[k] = d.string()
		}
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	if d.err != nil {
		return change.Record{}, fmt.Errorf("state: decode record: %w", d.err)
	}
	return r, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, uint64(len(b))+1)
	return append(dst, b...)
}

func appendRow(dst []byte, r change.Row) []byte {
	if r == nil {
		return binary.AppendUvarint(dst, 0)
	}
	dst = binary.AppendUvarint(dst, 1)
	return appendColumns(dst, r)
}

func appendColumns(dst []byte, cols []change.Column) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(cols)))
	for _, c := range cols {
		dst = appendString(dst, c.Name)
		dst = appendValue(dst, c.Value)
	}
	return dst
}

func appendValue(dst []byte, v change.Value) []byte {
	dst = append(dst, byte(v.Kind()))
	switch v.Kind() {
	case change.KindUnchanged, change.KindNull:
	case change.KindText:
		dst = appendString(dst, v.Str())
	case change.KindInt:
		dst = binary.AppendVarint(dst, v.Int())
	case change.KindFloat:
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float()))
	case change.KindDecimal:
		dst = appendString(dst, v.Decimal())
	case change.KindBool:
		if v.Bool() {
			dst = append(dst, 1)
		} else {
			dst = append(dst, 0)
		}
	case change.KindTimestamp, change.KindDate:
		dst = appendTime(dst, v.Time())
	case change.KindUUID:
		u := v.UUID()
		dst = append(dst, u[:]...)
	case change.KindBytes:
		dst = appendString(dst, string(v.Bytes()))
	case change.KindJSON:
		dst = appendString(dst, string(v.JSON()))
	default:
		// change.Value cannot hold another kind; this guards against a
		// kind added there and not here.
		panic(fmt.Sprintf("state: cannot encode a %s value", v.Kind()))
	}
	return dst
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	name, offset := t.Zone()
	if t.Location() == time.UTC {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 2)
	}
	dst = binary.AppendVarint(dst, t.Unix())
	dst = binary.AppendUvarint(dst, uint64(t.Nanosecond()))
	if t.Location() == time.UTC {
		return dst
	}
	dst = binary.AppendVarint(dst, int64(offset))
	return appendString(dst, name)
}

// decoder reads the encoding, remembering the first error so that callers
// check once at the end.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated input")

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) take(n uint64) []byte {
	if uint64(len(d.b)) < n {
		d.fail(errShort)
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must be plausible for the remaining input, so
// that a corrupt length cannot make the decoder allocate gigabytes.
func (d *decoder) count() uint64 {
	n := d.uvarint()
	if n > uint64(len(d.b))+1 {
		d.fail(errShort)
		return 0
	}
	return n
}

func (d *decoder) string() string { return string(d.take(d.count())) }

func (d *decoder) bytes() []byte {
	n := d.count()
	if n == 0 {
		return nil
	}
	return slices.Clone(d.take(n - 1))
}

func (d *decoder) row() change.Row {
	switch d.count() {
	case 0:
		return nil
	case 1:
		if cols := d.columns(); cols != nil {
			return change.Row(cols)
		}
		return change.Row{}
	}
	d.fail(errors.New("malformed row marker"))
	return nil
}

func (d *decoder) columns() []change.Column {
	n := d.count()
	if n == 0 {
		return nil
	}
	cols := make([]change.Column, 0, n)
	for range n {
		name := d.string()
		v := d.value()
		if d.err != nil {
			return nil
		}
		cols = append(cols, change.Column{Name: name, Value: v})
	}
	return cols
}

func (d *decoder) value() change.Value {
	switch k := change.Kind(d.byte()); k {
	case change.KindUnchanged:
		return change.Unchanged()
	case change.KindNull:
		return change.Null()
	case change.KindText:
		return change.Text(d.string())
	case change.KindInt:
		return change.Int(d.varint())
	case change.KindFloat:
		b := d.take(8)
		if b == nil {
			return change.Value{}
		}
		return change.Float(math.Float64frombits(binary.LittleEndian.Uint64(b)))
	case change.KindDecimal:
		v, err := change.Decimal(d.string())
		if err != nil && d.err == nil {
			d.fail(err)
		}
		return v
	case change.KindBool:
		return change.Bool(d.byte() != 0)
	case change.KindTimestamp:
		return change.Timestamp(d.time())
	case change.KindDate:
		return change.Date(d.time())
	case change.KindUUID:
		var u [16]byte
		copy(u[:], d.take(16))
		return change.UUID(u)
	case change.KindBytes:
		return change.Bytes(d.take(d.count()))
	case change.KindJSON:
		return change.JSON(d.take(d.count()))
	default:
		if d.err == nil {
			d.fail(fmt.Errorf("unknown value kind %d", k))
		}
		return change.Value{}
	}
}

func (d *decoder) time() time.Time {
	switch form := d.byte(); form {
	case 0:
		return time.Time{}
	case 1:
		sec, nsec := d.varint(), d.uvarint()
		return time.Unix(sec, int64(nsec)).UTC()
	case 2:
		sec, nsec := d.varint(), d.uvarint()
		offset, name := d.varint(), d.string()
		if offset < -24*3600 || offset > 24*3600 {
			d.fail(errors.New("malformed zone offset"))
			return time.Time{}
		}
		return time.Unix(sec, int64(nsec)).In(time.FixedZone(name, int(offset)))
	default:
		if d.err == nil {
			d.fail(fmt.Errorf("malformed time form %d", form))
		}
		return time.Time{}
	}
}
