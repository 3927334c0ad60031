package mapping

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dvsync/dvsync/change"
)

// AttributeType is a Dataverse attribute type. A column that declares one
// has its values converted to the change.Kind the sink writes for it.
type AttributeType string

// The attribute types a column may declare, with the kind they produce.
const (
	TypeString           AttributeType = "string"           // single line of text; KindText
	TypeMemo             AttributeType = "memo"             // multiple lines of text; KindText
	TypeInteger          AttributeType = "integer"          // whole number, 32 bits; KindInt
	TypeBigInt           AttributeType = "bigint"           // whole number, 64 bits; KindInt
	TypeDecimal          AttributeType = "decimal"          // exact decimal; KindDecimal
	TypeDouble           AttributeType = "double"           // floating point; KindFloat
	TypeMoney            AttributeType = "money"            // currency amount; KindDecimal
	TypeBoolean          AttributeType = "boolean"          // yes/no; KindBool
	TypeDateTime         AttributeType = "datetime"         // date and time; KindTimestamp
	TypeDateOnly         AttributeType = "dateonly"         // date without time; KindDate
	TypeUniqueIdentifier AttributeType = "uniqueidentifier" // GUID; KindUUID
)

var attributeTypes = []AttributeType{
	TypeString, TypeMemo, TypeInteger, TypeBigInt, TypeDecimal, TypeDouble,
	TypeMoney, TypeBoolean, TypeDateTime, TypeDateOnly, TypeUniqueIdentifier,
}

func typeNames() []string {
	names := make([]string, len(attributeTypes))
	for i, t := range attributeTypes {
		names[i] = string(t)
	}
	return names
}

// converter converts a value that is neither NULL nor Unchanged. Its
// errors say what did not convert without quoting the value, which may be
// sensitive.
type converter func(change.Value) (change.Value, error)

// converterFor returns the conversion to t, or nil to pass values through.
func converterFor(t AttributeType) converter {
	switch t {
	case TypeString, TypeMemo:
		return toText
	case TypeInteger:
		return toInt(math.MinInt32, math.MaxInt32)
	case TypeBigInt:
		return toInt(math.MinInt64, math.MaxInt64)
	case TypeDecimal, TypeMoney:
		return toDecimal
	case TypeDouble:
		return toDouble
	case TypeBoolean:
		return toBool
	case TypeDateTime:
		return toDateTime
	case TypeDateOnly:
		return toDateOnly
	case TypeUniqueIdentifier:
		return toUUID
	}
	return nil
}

var (
	errNoConversion = errors.New("there is no such conversion")
	errOutOfRange   = errors.New("the value is out of range")
	errFraction     = errors.New("the value has a fractional part")
	errNotFinite    = errors.New("the value is not a finite number")
	errSyntax       = errors.New("the value does not parse")
)

func toText(v change.Value) (change.Value, error) {
	switch v.Kind() {
	case change.KindText:
		return v, nil
	case change.KindInt:
		// The common key conversion; FormatInt allocates once, and not at
		// all for small numbers.
		return change.Text(strconv.FormatInt(v.Int(), 10)), nil
	case change.KindBytes:
		// Hex or base64 would both be guesses; the source should say.
		return v, errNoConversion
	}
	// Ints in decimal, decimals as their exact text, timestamps in RFC 3339,
	// dates as YYYY-MM-DD, UUIDs hyphenated, JSON as its document.
	return change.Text(v.String()), nil
}

func toInt(lo, hi int64) converter {
	return func(v change.Value) (change.Value, error) {
		var n int64
		switch v.Kind() {
		case change.KindInt:
			n = v.Int()
		case change.KindDecimal:
			var err error
			if n, err = decimalToInt(v.Decimal()); err != nil {
				return v, err
			}
		case change.KindFloat:
			f := v.Float()
			switch {
			case math.IsNaN(f) || math.IsInf(f, 0):
				return v, errNotFinite
			case f != math.Trunc(f):
				return v, errFraction
			case f < -(1<<63) || f >= 1<<63:
				return v, errOutOfRange
			}
			n = int64(f)
		case change.KindText:
			var err error
			if n, err = strconv.ParseInt(v.Str(), 10, 64); err != nil {
				if errors.Is(err, strconv.ErrRange) {
					return v, errOutOfRange
				}
				return v, errSyntax
			}
		default:
			return v, errNoConversion
		}
		if n < lo || n > hi {
			return v, errOutOfRange
		}
		if v.Kind() == change.KindInt {
			return v, nil
		}
		return change.Int(n), nil
	}
}

// decimalToInt converts exact decimal text, such as "42", "42.000" or
// "4.2E+1", to an integer; a non-zero fraction is an error.
func decimalToInt(s string) (int64, error) {
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	mant, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := strings.TrimLeft(intPart+frac, "0")
	if digits == "" {
		return 0, nil
	}
	exp := -len(frac)
	if hasExp {
		e, err := strconv.ParseInt(expText, 10, 32)
		if err != nil {
			return 0, errOutOfRange
		}
		exp += int(e)
	}
	if exp < 0 {
		if -exp > len(digits) || strings.TrimRight(digits[len(digits)+exp:], "0") != "" {
			return 0, errFraction
		}
		digits = digits[:len(digits)+exp]
	} else if exp > 0 {
		if len(digits)+exp > 19 {
			return 0, errOutOfRange
		}
		digits += strings.Repeat("0", exp)
	}
	if neg {
		digits = "-" + digits
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, errOutOfRange
	}
	return n, nil
}

func toDecimal(v change.Value) (change.Value, error) {
	switch v.Kind() {
	case change.KindDecimal:
		return v, nil
	case change.KindInt:
		return change.MustDecimal(strconv.FormatInt(v.Int(), 10)), nil
	case change.KindFloat:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return v, errNotFinite
		}
		// The shortest text that reads back as the same double.
		return change.MustDecimal(strconv.FormatFloat(f, 'f', -1, 64)), nil
	case change.KindText:
		d, err := change.Decimal(v.Str())
		if err != nil {
			return v, errSyntax
		}
		return d, nil
	}
	return v, errNoConversion
}

func toDouble(v change.Value) (change.Value, error) {
	var f float64
	switch v.Kind() {
	case change.KindFloat:
		f = v.Float()
	case change.KindInt:
		n := v.Int()
		f = float64(n)
		// Beyond 2^53 not every integer has a double; refuse to round.
		if f >= 1<<63 || int64(f) != n {
			return v, errOutOfRange
		}
	case change.KindDecimal, change.KindText:
		var err error
		if f, err = strconv.ParseFloat(v.String(), 64); err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return v, errOutOfRange
			}
			return v, errSyntax
		}
	default:
		return v, errNoConversion
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return v, errNotFinite
	}
	if v.Kind() == change.KindFloat {
		return v, nil
	}
	return change.Float(f), nil
}

func toBool(v change.Value) (change.Value, error) {
	switch v.Kind() {
	case change.KindBool:
		return v, nil
	case change.KindInt:
		switch v.Int() {
		case 0:
			return change.Bool(false), nil
		case 1:
			return change.Bool(true), nil
		}
		return v, errOutOfRange
	case change.KindText:
		b, err := strconv.ParseBool(v.Str())
		if err != nil {
			return v, errSyntax
		}
		return change.Bool(b), nil
	}
	return v, errNoConversion
}

func toDateTime(v change.Value) (change.Value, error) {
	switch v.Kind() {
	case change.KindTimestamp:
		return v, nil
	case change.KindDate:
		return change.Timestamp(v.Time()), nil
	case change.KindText:
		t, err := time.Parse(time.RFC3339Nano, v.Str())
		if err != nil {
			return v, errSyntax
		}
		return change.Timestamp(t), nil
	}
	return v, errNoConversion
}

func toDateOnly(v change.Value) (change.Value, error) {
	switch v.Kind() {
	case change.KindDate:
		return v, nil
	case change.KindTimestamp:
		// The calendar date where the timestamp was written, in its own
		// offset, not in UTC.
		return change.Date(v.Time()), nil
	case change.KindText:
		t, err := time.Parse(time.DateOnly, v.Str())
		if err != nil {
			return v, errSyntax
		}
		return change.Date(t), nil
	}
	return v, errNoConversion
}

func toUUID(v change.Value) (change.Value, error) {
	switch v.Kind() {
	case change.KindUUID:
		return v, nil
	case change.KindText:
		u, err := change.ParseUUID(v.Str())
		if err != nil {
			return v, errSyntax
		}
		return u, nil
	}
	return v, errNoConversion
}

// conversionError describes a failed conversion of one column.
func conversionError(v change.Value, t AttributeType, err error) error {
	return fmt.Errorf("cannot convert a %s value to %s: %w", v.Kind(), t, err)
}
