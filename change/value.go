package change

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Kind is the type of a Value.
type Kind uint8

const (
	// KindUnchanged marks a column the source did not send, such as an
	// unchanged TOASTed PostgreSQL value. Sinks must leave the destination
	// column alone; it is never written as null. The zero Value is
	// Unchanged, so a forgotten column is never mistaken for null.
	KindUnchanged Kind = iota
	// KindNull is SQL NULL.
	KindNull
	// KindText is a string of text.
	KindText
	// KindInt is a 64-bit signed integer.
	KindInt
	// KindFloat is an IEEE 754 double. Exact numbers use KindDecimal.
	KindFloat
	// KindDecimal is an exact decimal number kept as its canonical text,
	// so numeric(38,10) survives without float loss.
	KindDecimal
	// KindBool is true or false.
	KindBool
	// KindTimestamp is an instant with its original zone offset.
	KindTimestamp
	// KindDate is a calendar date without a time of day.
	KindDate
	// KindUUID is a 16-byte UUID.
	KindUUID
	// KindBytes is binary data.
	KindBytes
	// KindJSON is a JSON document kept as its text.
	KindJSON
)

var kindNames = [...]string{
	KindUnchanged: "unchanged", KindNull: "null", KindText: "text", KindInt: "int",
	KindFloat: "float", KindDecimal: "decimal", KindBool: "bool", KindTimestamp: "timestamp",
	KindDate: "date", KindUUID: "uuid", KindBytes: "bytes", KindJSON: "json",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Value is one typed column value. It is a small immutable value type:
// copy it freely. Construct values with the Kind-named functions; read them
// with the matching accessors, which panic on a kind mismatch just as a
// failed type assertion would.
type Value struct {
	k Kind
	n int64     // int, bool, float bits
	s string    // text, decimal, uuid (16 raw bytes), bytes, json
	t time.Time // timestamp, date
}

// Unchanged returns the value for a column the source did not send.
func Unchanged() Value { return Value{} }

// Null returns SQL NULL.
func Null() Value { return Value{k: KindNull} }

// Text returns a text value.
func Text(s string) Value { return Value{k: KindText, s: s} }

// Int returns an integer value.
func Int(i int64) Value { return Value{k: KindInt, n: i} }

// Float returns a double-precision value.
func Float(f float64) Value { return Value{k: KindFloat, n: int64(math.Float64bits(f))} }

// Bool returns a boolean value.
func Bool(b bool) Value {
	if b {
		return Value{k: KindBool, n: 1}
	}
	return Value{k: KindBool}
}

// Timestamp returns an instant, keeping t's zone offset.
func Timestamp(t time.Time) Value { return Value{k: KindTimestamp, t: t} }

// Date returns a calendar date; only t's year, month and day are kept.
func Date(t time.Time) Value {
	y, m, d := t.Date()
	return Value{k: KindDate, t: time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// UUID returns a UUID value from its 16 bytes.
func UUID(u [16]byte) Value { return Value{k: KindUUID, s: string(u[:])} }

// Bytes returns a binary value. b is copied.
func Bytes(b []byte) Value { return Value{k: KindBytes, s: string(b)} }

// JSON returns a JSON document value. The text is not validated here;
// sources pass what their database already validated.
func JSON(doc []byte) Value { return Value{k: KindJSON, s: string(doc)} }

// Decimal returns an exact decimal from its text, such as "-12.3400" or
// "1E+5". It rejects anything that is not a finite decimal number.
func Decimal(s string) (Value, error) {
	if !isDecimal(s) {
		return Value{}, fmt.Errorf("change: %q is not a decimal number", s)
	}
	return Value{k: KindDecimal, s: s}, nil
}

// MustDecimal is Decimal for constants; it panics on malformed input.
func MustDecimal(s string) Value {
	v, err := Decimal(s)
	if err != nil {
		panic(err)
	}
	return v
}

func isDecimal(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// Kind returns the value's kind.
func (v Value) Kind() Kind { return v.k }

// IsNull reports whether v is SQL NULL.
func (v Value) IsNull() bool { return v.k == KindNull }

// IsUnchanged reports whether the source did not send this value.
func (v Value) IsUnchanged() bool { return v.k == KindUnchanged }

func (v Value) must(k Kind) {
	if v.k != k {
		panic(fmt.Sprintf("change: %s accessor called on a %s value", k, v.k))
	}
}

// Str returns a text value.
func (v Value) Str() string { v.must(KindText); return v.s }

// Int returns an integer value.
func (v Value) Int() int64 { v.must(KindInt); return v.n }

// Float returns a double value.
func (v Value) Float() float64 { v.must(KindFloat); return math.Float64frombits(uint64(v.n)) }

// Decimal returns a decimal's canonical text.
func (v Value) Decimal() string { v.must(KindDecimal); return v.s }

// Bool returns a boolean value.
func (v Value) Bool() bool { v.must(KindBool); return v.n != 0 }

// Time returns a timestamp, or a date as midnight UTC.
func (v Value) Time() time.Time {
	if v.k != KindDate {
		v.must(KindTimestamp)
	}
	return v.t
}

// UUID returns a UUID's 16 bytes.
func (v Value) UUID() (u [16]byte) { v.must(KindUUID); copy(u[:], v.s); return u }

// Bytes returns a copy of a binary value.
func (v Value) Bytes() []byte { v.must(KindBytes); return []byte(v.s) }

// JSON returns a JSON document's text.
func (v Value) JSON() []byte { v.must(KindJSON); return []byte(v.s) }

// Equal reports whether two values have the same kind and content.
// Timestamps are equal when they are the same instant in the same offset.
func (v Value) Equal(o Value) bool {
	if v.k != o.k {
		return false
	}
	switch v.k {
	case KindTimestamp, KindDate:
		_, vo := v.t.Zone()
		_, oo := o.t.Zone()
		return v.t.Equal(o.t) && vo == oo
	}
	return v.n == o.n && v.s == o.s
}

// String renders the value as text: the form used in keys, logs of
// non-sensitive values and text-only destinations. Timestamps are RFC 3339
// with nanoseconds, dates YYYY-MM-DD, UUIDs in canonical hyphenated form,
// bytes as lower-case hex.
func (v Value) String() string {
	return string(v.AppendText(nil))
}

// AppendText appends the text form of v (see String) to dst.
func (v Value) AppendText(dst []byte) []byte {
	switch v.k {
	case KindUnchanged:
		return append(dst, "<unchanged>"...)
	case KindNull:
		return append(dst, "<null>"...)
	case KindText, KindDecimal, KindJSON:
		return append(dst, v.s...)
	case KindInt:
		return strconv.AppendInt(dst, v.n, 10)
	case KindFloat:
		return strconv.AppendFloat(dst, v.Float(), 'g', -1, 64)
	case KindBool:
		return strconv.AppendBool(dst, v.n != 0)
	case KindTimestamp:
		return v.t.AppendFormat(dst, time.RFC3339Nano)
	case KindDate:
		return v.t.AppendFormat(dst, time.DateOnly)
	case KindUUID:
		return appendUUID(dst, v.s)
	case KindBytes:
		return hex.AppendEncode(dst, []byte(v.s))
	}
	return dst
}

func appendUUID(dst []byte, raw string) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], []byte(raw[0:4]))
	buf[8] = '-'
	hex.Encode(buf[9:13], []byte(raw[4:6]))
	buf[13] = '-'
	hex.Encode(buf[14:18], []byte(raw[6:8]))
	buf[18] = '-'
	hex.Encode(buf[19:23], []byte(raw[8:10]))
	buf[23] = '-'
	hex.Encode(buf[24:], []byte(raw[10:16]))
	return append(dst, buf[:]...)
}

// ParseUUID parses the canonical hyphenated form (or 32 bare hex digits,
// or either in braces) into a UUID value.
func ParseUUID(s string) (Value, error) {
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	var digits []byte
	switch len(s) {
	case 36:
		if s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
			return Value{}, fmt.Errorf("change: %q is not a UUID", s)
		}
		digits = []byte(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:])
	case 32:
		digits = []byte(s)
	default:
		return Value{}, fmt.Errorf("change: %q is not a UUID", s)
	}
	var u [16]byte
	if _, err := hex.Decode(u[:], digits); err != nil {
		return Value{}, fmt.Errorf("change: %q is not a UUID", s)
	}
	return UUID(u), nil
}

// MarshalJSON renders v as plain JSON: text, decimals and UUIDs as
// strings (decimals as strings keep their precision), numbers as numbers,
// JSON documents inline, bytes as base64, NULL and Unchanged as null.
// Sinks that must tell Unchanged from NULL check IsUnchanged first.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.k {
	case KindUnchanged, KindNull:
		return []byte("null"), nil
	case KindInt, KindBool:
		return v.AppendText(nil), nil
	case KindFloat:
		f := v.Float()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return json.Marshal(v.String())
		}
		return v.AppendText(nil), nil
	case KindJSON:
		if !json.Valid([]byte(v.s)) {
			return nil, fmt.Errorf("change: JSON value is not valid JSON")
		}
		var b bytes.Buffer
		if err := json.Compact(&b, []byte(v.s)); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	case KindBytes:
		return json.Marshal([]byte(v.s))
	}
	return json.Marshal(v.String())
}
