package tdsfake

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/big"
	"strings"
	"time"
)

// TDS type ids (MS-TDS 2.2.5.4).
const (
	typeNull           = 0x1F
	typeGUID           = 0x24
	typeIntN           = 0x26
	typeDateN          = 0x28
	typeTimeN          = 0x29
	typeDateTime2N     = 0x2A
	typeDateTimeOffset = 0x2B
	typeBitN           = 0x68
	typeDecimalN       = 0x6A
	typeNumericN       = 0x6C
	typeFltN           = 0x6D
	typeMoneyN         = 0x6E
	typeDateTimeN      = 0x6F
	typeBigVarBinary   = 0xA5
	typeBigVarChar     = 0xA7
	typeBigBinary      = 0xAD
	typeNVarChar       = 0xE7
	typeNChar          = 0xEF
)

// Type is the TDS type of a column or parameter.
type Type struct {
	// ID is the TDS type id.
	ID byte
	// Size is the length in bytes of fixed-size types (INTN 1/2/4/8,
	// FLTN 4/8, MONEYN 4/8, BITN 1, GUID 16) and the maximum length in
	// bytes of variable ones, -1 for (max).
	Size int
	// Precision and Scale of decimals; Scale (0–7) of time types.
	Precision, Scale uint8
}

// Column is a result column.
type Column struct {
	Name string
	Type Type
}

// Types of result columns, named as in T-SQL.
var (
	TinyInt          = Type{ID: typeIntN, Size: 1}
	SmallInt         = Type{ID: typeIntN, Size: 2}
	Int              = Type{ID: typeIntN, Size: 4}
	BigInt           = Type{ID: typeIntN, Size: 8}
	Bit              = Type{ID: typeBitN, Size: 1}
	Real             = Type{ID: typeFltN, Size: 4}
	Float            = Type{ID: typeFltN, Size: 8}
	SmallMoney       = Type{ID: typeMoneyN, Size: 4}
	Money            = Type{ID: typeMoneyN, Size: 8}
	UniqueIdentifier = Type{ID: typeGUID, Size: 16}
	Date             = Type{ID: typeDateN}
	NVarCharMax      = Type{ID: typeNVarChar, Size: -1}
	VarBinaryMax     = Type{ID: typeBigVarBinary, Size: -1}
)

// NVarChar is nvarchar(n).
func NVarChar(n int) Type { return Type{ID: typeNVarChar, Size: 2 * n} }

// VarBinary is varbinary(n).
func VarBinary(n int) Type { return Type{ID: typeBigVarBinary, Size: n} }

// Binary is binary(n), such as the binary(10) of CDC LSNs.
func Binary(n int) Type { return Type{ID: typeBigBinary, Size: n} }

// Decimal is decimal(precision, scale).
func Decimal(precision, scale uint8) Type {
	return Type{ID: typeDecimalN, Size: decimalSize(precision), Precision: precision, Scale: scale}
}

// DateTime2 is datetime2(scale).
func DateTime2(scale uint8) Type { return Type{ID: typeDateTime2N, Scale: scale} }

// DateTimeOffset is datetimeoffset(scale).
func DateTimeOffset(scale uint8) Type { return Type{ID: typeDateTimeOffset, Scale: scale} }

// Time is time(scale).
func Time(scale uint8) Type { return Type{ID: typeTimeN, Scale: scale} }

func decimalSize(p uint8) int {
	switch {
	case p <= 9:
		return 5
	case p <= 19:
		return 9
	case p <= 28:
		return 13
	}
	return 17
}

// collation is Latin1_General_CI_AS; nvarchar data is UTF-16 whatever it
// says.
var collation = []byte{0x09, 0x04, 0xD0, 0x00, 0x34}

func appendColMetadata(b []byte, cols []Column) []byte {
	b = append(b, tokColMetadata)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(cols)))
	for _, c := range cols {
		b = binary.LittleEndian.AppendUint32(b, 0) // user type
		b = binary.LittleEndian.AppendUint16(b, 1) // flags: nullable
		b = appendTypeInfo(b, c.Type)
		name := utf16Bytes(c.Name)
		b = append(b, byte(len(name)/2))
		b = append(b, name...)
	}
	return b
}

func appendTypeInfo(b []byte, t Type) []byte {
	b = append(b, t.ID)
	switch t.ID {
	case typeIntN, typeBitN, typeFltN, typeMoneyN, typeGUID:
		b = append(b, byte(t.Size))
	case typeDecimalN, typeNumericN:
		b = append(b, byte(t.Size), t.Precision, t.Scale)
	case typeDateN:
	case typeTimeN, typeDateTime2N, typeDateTimeOffset:
		b = append(b, t.Scale)
	case typeBigVarBinary, typeBigBinary:
		b = binary.LittleEndian.AppendUint16(b, shortLen(t.Size))
	case typeNVarChar:
		b = binary.LittleEndian.AppendUint16(b, shortLen(t.Size))
		b = append(b, collation...)
	default:
		panic(fmt.Sprintf("tdsfake: result columns of type 0x%02X are not supported", t.ID))
	}
	return b
}

func shortLen(n int) uint16 {
	if n < 0 {
		return 0xFFFF
	}
	return uint16(n)
}

func appendRow(b []byte, cols []Column, row []any) ([]byte, error) {
	if len(row) != len(cols) {
		return nil, fmt.Errorf("tdsfake: row of %d values for %d columns", len(row), len(cols))
	}
	b = append(b, tokRow)
	for i, c := range cols {
		var err error
		b, err = appendValue(b, c.Type, row[i])
		if err != nil {
			return nil, fmt.Errorf("tdsfake: column %s: %w", c.Name, err)
		}
	}
	return b, nil
}

func appendValue(b []byte, t Type, v any) ([]byte, error) {
	plp := t.Size < 0 && (t.ID == typeNVarChar || t.ID == typeBigVarBinary)
	if v == nil {
		switch {
		case plp:
			return binary.LittleEndian.AppendUint64(b, math.MaxUint64), nil
		case t.ID == typeNVarChar || t.ID == typeBigVarBinary || t.ID == typeBigBinary:
			return binary.LittleEndian.AppendUint16(b, 0xFFFF), nil
		}
		return append(b, 0), nil
	}
	wrong := fmt.Errorf("value %T does not fit type 0x%02X", v, t.ID)
	switch t.ID {
	case typeIntN:
		n, ok := toInt(v)
		if !ok {
			return nil, wrong
		}
		b = append(b, byte(t.Size))
		for i := 0; i < t.Size; i++ {
			b = append(b, byte(n>>(8*i)))
		}
	case typeBitN:
		x, ok := v.(bool)
		if !ok {
			return nil, wrong
		}
		bit := byte(0)
		if x {
			bit = 1
		}
		b = append(b, 1, bit)
	case typeFltN:
		f, ok := v.(float64)
		if !ok {
			return nil, wrong
		}
		if t.Size == 4 {
			b = append(b, 4)
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f)))
		} else {
			b = append(b, 8)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
		}
	case typeMoneyN:
		s, ok := v.(string)
		if !ok {
			return nil, wrong
		}
		n, err := scaled(s, 4)
		if err != nil {
			return nil, err
		}
		m := n.Int64()
		if t.Size == 4 {
			b = append(b, 4)
			b = binary.LittleEndian.AppendUint32(b, uint32(int32(m)))
		} else {
			b = append(b, 8)
			b = binary.LittleEndian.AppendUint32(b, uint32(m>>32))
			b = binary.LittleEndian.AppendUint32(b, uint32(m))
		}
	case typeDecimalN, typeNumericN:
		s, ok := v.(string)
		if !ok {
			return nil, wrong
		}
		n, err := scaled(s, int(t.Scale))
		if err != nil {
			return nil, err
		}
		sign := byte(1)
		if n.Sign() < 0 {
			sign = 0
			n.Neg(n)
		}
		mag := make([]byte, t.Size-1)
		be := n.Bytes()
		if len(be) > len(mag) {
			return nil, fmt.Errorf("decimal %s overflows precision %d", s, t.Precision)
		}
		for i := range be {
			mag[i] = be[len(be)-1-i]
		}
		b = append(b, byte(t.Size), sign)
		b = append(b, mag...)
	case typeGUID:
		u, ok := v.([16]byte)
		if !ok {
			return nil, wrong
		}
		b = append(b, 16)
		b = append(b, guidToWire(u)...)
	case typeDateN:
		tm, ok := v.(time.Time)
		if !ok {
			return nil, wrong
		}
		b = append(b, 3)
		b = appendDays(b, tm)
	case typeTimeN, typeDateTime2N, typeDateTimeOffset:
		tm, ok := v.(time.Time)
		if !ok {
			return nil, wrong
		}
		_, off := tm.Zone()
		if t.ID == typeDateTimeOffset {
			tm = tm.UTC()
		}
		tb := timeBytes(tm, t.Scale)
		n := len(tb)
		if t.ID != typeTimeN {
			n += 3
		}
		if t.ID == typeDateTimeOffset {
			n += 2
		}
		b = append(b, byte(n))
		b = append(b, tb...)
		if t.ID != typeTimeN {
			b = appendDays(b, tm)
		}
		if t.ID == typeDateTimeOffset {
			b = binary.LittleEndian.AppendUint16(b, uint16(int16(off/60)))
		}
	case typeNVarChar:
		s, ok := v.(string)
		if !ok {
			return nil, wrong
		}
		data := utf16Bytes(s)
		if plp {
			return appendPLP(b, data), nil
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
		b = append(b, data...)
	case typeBigVarBinary, typeBigBinary:
		data, ok := v.([]byte)
		if !ok {
			return nil, wrong
		}
		if plp {
			return appendPLP(b, data), nil
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(data)))
		b = append(b, data...)
	default:
		return nil, wrong
	}
	return b, nil
}

func toInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	}
	return 0, false
}

// appendPLP writes a partially length-prefixed value in chunks, as the
// server does for (max) types.
func appendPLP(b, data []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(data)))
	for len(data) > 0 {
		n := min(len(data), 4000)
		b = binary.LittleEndian.AppendUint32(b, uint32(n))
		b = append(b, data[:n]...)
		data = data[n:]
	}
	return binary.LittleEndian.AppendUint32(b, 0)
}

// scaled parses decimal text into an integer of 10^-scale units.
func scaled(s string, scale int) (*big.Int, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimLeft(s, "+-")
	whole, frac, _ := strings.Cut(s, ".")
	if len(frac) > scale {
		return nil, fmt.Errorf("decimal %s has more than %d decimal places", s, scale)
	}
	frac += strings.Repeat("0", scale-len(frac))
	n, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal number", s)
	}
	if neg {
		n.Neg(n)
	}
	return n, nil
}

// unscaled renders an integer of 10^-scale units as decimal text.
func unscaled(n *big.Int, scale int) string {
	neg := n.Sign() < 0
	digits := new(big.Int).Abs(n).String()
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

var epoch = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)

func appendDays(b []byte, t time.Time) []byte {
	y, m, d := t.Date()
	// Seconds, not a Duration: two thousand years overflow nanoseconds.
	days := (time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() - epoch.Unix()) / 86400
	return append(b, byte(days), byte(days>>8), byte(days>>16))
}

func timeLen(scale uint8) int {
	switch {
	case scale <= 2:
		return 3
	case scale <= 4:
		return 4
	}
	return 5
}

func timeBytes(t time.Time, scale uint8) []byte {
	ns := int64(t.Hour())*int64(time.Hour) + int64(t.Minute())*int64(time.Minute) + int64(t.Second())*int64(time.Second) + int64(t.Nanosecond())
	units := ns / int64(math.Pow10(9-int(scale)))
	out := make([]byte, timeLen(scale))
	for i := range out {
		out[i] = byte(units >> (8 * i))
	}
	return out
}

func readTime(b []byte, scale uint8) time.Duration {
	var units int64
	for i := len(b) - 1; i >= 0; i-- {
		units = units<<8 | int64(b[i])
	}
	return time.Duration(units * int64(math.Pow10(9-int(scale))))
}

func readDays(b []byte) time.Time {
	days := int(b[0]) | int(b[1])<<8 | int(b[2])<<16
	return epoch.AddDate(0, 0, days)
}

// guidToWire converts RFC 4122 byte order to SQL Server's, whose first
// three groups are little-endian; the conversion is its own inverse.
func guidToWire(u [16]byte) []byte {
	return []byte{u[3], u[2], u[1], u[0], u[5], u[4], u[7], u[6],
		u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]}
}

// readTypeInfo reads a parameter's TYPE_INFO as a client writes it.
func readTypeInfo(r *reader) Type {
	t := Type{ID: r.u8()}
	switch t.ID {
	case typeNull:
	case typeIntN, typeBitN, typeFltN, typeMoneyN, typeGUID, typeDateTimeN:
		t.Size = int(r.u8())
	case typeDecimalN, typeNumericN:
		t.Size = int(r.u8())
		t.Precision, t.Scale = r.u8(), r.u8()
	case typeDateN:
	case typeTimeN, typeDateTime2N, typeDateTimeOffset:
		t.Scale = r.u8()
	case typeBigVarBinary, typeBigBinary:
		t.Size = int(int16(r.u16()))
	case typeNVarChar, typeNChar, typeBigVarChar:
		t.Size = int(int16(r.u16()))
		r.bytes(5)
	default:
		if r.err == nil {
			r.err = fmt.Errorf("parameter type 0x%02X is not supported", t.ID)
		}
	}
	return t
}

// readValue reads a parameter value of type t.
func readValue(r *reader, t Type) any {
	switch t.ID {
	case typeNull:
		return nil
	case typeBigVarBinary, typeBigBinary, typeNVarChar, typeNChar, typeBigVarChar:
		var data []byte
		if t.Size < 0 {
			total := r.u64()
			if total == math.MaxUint64 {
				return nil
			}
			data = []byte{}
			for n := r.u32(); n > 0 && r.err == nil; n = r.u32() {
				data = append(data, r.bytes(int(n))...)
			}
		} else {
			n := r.u16()
			if n == 0xFFFF {
				return nil
			}
			data = append([]byte{}, r.bytes(int(n))...)
		}
		switch t.ID {
		case typeNVarChar, typeNChar:
			return utf16String(data)
		case typeBigVarChar:
			return string(data)
		}
		return data
	}
	n := int(r.u8())
	if n == 0 {
		return nil
	}
	b := r.bytes(n)
	if b == nil {
		return nil
	}
	switch t.ID {
	case typeIntN:
		var v int64
		for i := n - 1; i >= 0; i-- {
			v = v<<8 | int64(b[i])
		}
		shift := 64 - 8*n
		return v << shift >> shift
	case typeBitN:
		return b[0] != 0
	case typeFltN:
		if n == 4 {
			return float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	case typeMoneyN:
		var m int64
		if n == 4 {
			m = int64(int32(binary.LittleEndian.Uint32(b)))
		} else {
			m = int64(binary.LittleEndian.Uint32(b))<<32 | int64(binary.LittleEndian.Uint32(b[4:]))
		}
		return unscaled(big.NewInt(m), 4)
	case typeDecimalN, typeNumericN:
		mag := make([]byte, n-1)
		for i := range mag {
			mag[i] = b[n-1-i]
		}
		v := new(big.Int).SetBytes(mag)
		if b[0] == 0 {
			v.Neg(v)
		}
		return unscaled(v, int(t.Scale))
	case typeGUID:
		var w [16]byte
		copy(w[:], guidToWire([16]byte(b)))
		return w
	case typeDateN:
		return readDays(b)
	case typeTimeN:
		return epoch.Add(readTime(b, t.Scale))
	case typeDateTime2N:
		tl := n - 3
		return readDays(b[tl:]).Add(readTime(b[:tl], t.Scale))
	case typeDateTimeOffset:
		tl := n - 5
		utc := readDays(b[tl : tl+3]).Add(readTime(b[:tl], t.Scale))
		off := int(int16(binary.LittleEndian.Uint16(b[tl+3:])))
		return utc.In(time.FixedZone("", off*60))
	case typeDateTimeN:
		days := int32(binary.LittleEndian.Uint32(b))
		ticks := binary.LittleEndian.Uint32(b[4:])
		return time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(days)).Add(time.Duration(ticks) * time.Second / 300)
	}
	return nil
}
