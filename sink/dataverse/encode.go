package dataverse

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// appendBody appends the Web API JSON object for row to dst: one member
// per column, in row order, except Unchanged columns, which are left out
// so that Dataverse keeps its current value (sending null would clear it).
// It allocates nothing for text, numeric, boolean, date and UUID values.
func appendBody(dst []byte, row change.Row) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	for i := range row {
		c := &row[i]
		if c.Value.IsUnchanged() {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, c.Name)
		dst = append(dst, ':')
		var err error
		if dst, err = appendValue(dst, c.Value); err != nil {
			return dst, fmt.Errorf("column %s: %w", c.Name, err)
		}
	}
	return append(dst, '}'), nil
}

// appendValue writes v as the Web API expects it on write:
//
//   - text as a string, JSON documents as a string too (Dataverse has no
//     JSON type; such columns are memo text);
//   - int and float as numbers; decimal as a number written from its exact
//     text, in plain notation, never through a float;
//   - timestamp as UTC ISO 8601 ending in Z; date as YYYY-MM-DD;
//   - uuid as a lower-case string; bytes as a base64 string;
//   - NULL as null.
func appendValue(dst []byte, v change.Value) ([]byte, error) {
	switch v.Kind() {
	case change.KindNull:
		return append(dst, "null"...), nil
	case change.KindText:
		return appendString(dst, v.Str()), nil
	case change.KindInt:
		return strconv.AppendInt(dst, v.Int(), 10), nil
	case change.KindFloat:
		return appendFloat(dst, v.Float())
	case change.KindDecimal:
		return appendDecimal(dst, v.Decimal())
	case change.KindBool:
		return strconv.AppendBool(dst, v.Bool()), nil
	case change.KindTimestamp:
		dst = append(dst, '"')
		dst = v.Time().UTC().AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"'), nil
	case change.KindDate:
		dst = append(dst, '"')
		dst = v.Time().AppendFormat(dst, time.DateOnly)
		return append(dst, '"'), nil
	case change.KindUUID:
		dst = append(dst, '"')
		dst = v.AppendText(dst) // canonical form, lower-case hex
		return append(dst, '"'), nil
	case change.KindBytes:
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes())
		return append(dst, '"'), nil
	case change.KindJSON:
		return appendString(dst, string(v.JSON())), nil
	}
	return dst, fmt.Errorf("cannot encode a %s value", v.Kind())
}

// appendFloat writes f as encoding/json does: plain notation for ordinary
// magnitudes, exponent notation for very large or small ones.
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, fmt.Errorf("%v cannot be stored in Dataverse", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// 1e-07 → 1e-7, as encoding/json writes it.
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// maxDecimalExponent bounds the exponent of a decimal written in plain
// notation. Dataverse's largest decimal and money values have 15 integer
// digits; the bound only keeps a hostile value from allocating megabytes.
const maxDecimalExponent = 1000

var errDecimal = errors.New("malformed decimal")

// appendDecimal writes the decimal text s (as change.Decimal accepts it:
// optional sign, digits with an optional point, optional exponent) as a
// JSON number in plain notation with the same exact value and scale:
// "+007.50" → 7.50, ".5" → 0.5, "1.5E+3" → 1500, "12E-4" → 0.0012.
func appendDecimal(dst []byte, s string) ([]byte, error) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	intPart := s[start:i]
	var frac string
	if i < len(s) && s[i] == '.' {
		i++
		start = i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		frac = s[start:i]
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		expNeg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			expNeg = s[i] == '-'
			i++
		}
		if i == len(s) {
			return dst, errDecimal
		}
		for ; i < len(s) && isDigit(s[i]); i++ {
			exp = exp*10 + int(s[i]-'0')
			if exp > maxDecimalExponent {
				return dst, fmt.Errorf("decimal exponent of %q out of range", s)
			}
		}
		if expNeg {
			exp = -exp
		}
	}
	nd := len(intPart) + len(frac)
	if i != len(s) || nd == 0 {
		return dst, errDecimal
	}

	// The digits of intPart+frac, with the decimal point after point of
	// them; positions before the first or past the last read as zeros.
	digit := func(k int) byte {
		if k < 0 || k >= nd {
			return '0'
		}
		if k < len(intPart) {
			return intPart[k]
		}
		return frac[k-len(intPart)]
	}
	point := len(intPart) + exp

	if neg {
		dst = append(dst, '-')
	}
	k := 0
	for k < point && digit(k) == '0' {
		k++
	}
	if k >= point {
		dst = append(dst, '0')
	}
	for ; k < point; k++ {
		dst = append(dst, digit(k))
	}
	if point < nd {
		dst = append(dst, '.')
		for k = point; k < nd; k++ {
			dst = append(dst, digit(k))
		}
	}
	return dst, nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendString writes s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as with encoding/json; U+2028 and U+2029 are escaped so the body is also
// valid JavaScript.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// rowKey converts a record key (Dataverse attribute names, in the key's
// declared order) to the OData key of the row's URL. A key that is the
// table's primary id (one UUID column named <table>id, which is how
// Dataverse names every table's primary key) addresses the row by id,
// accounts(<guid>); any other key is an alternate key,
// accounts(accountnumber='A1').
func rowKey(table string, k change.Key) (odataclient.Key, error) {
	return rowKeyIn(table, k, nil)
}

// rowKeyIn is rowKey taking the alternate key's parts from the end of
// *arena (nil: a slice of their own), for the records of one Write to
// share an array. A part handed out is never written again, even when
// arena grows into a new array.
func rowKeyIn(table string, k change.Key, arena *[]odataclient.KeyPart) (odataclient.Key, error) {
	if len(k) == 0 {
		return odataclient.Key{}, errors.New("record has no key")
	}
	if len(k) == 1 && k[0].Value.Kind() == change.KindUUID && k[0].Name == table+"id" {
		return odataclient.Key{ID: k[0].Value.String()}, nil
	}
	var parts []odataclient.KeyPart
	if arena == nil {
		parts = make([]odataclient.KeyPart, len(k))
	} else {
		start := len(*arena)
		*arena = slices.Grow(*arena, len(k))[:start+len(k)]
		parts = (*arena)[start : start+len(k) : start+len(k)]
	}
	for i, c := range k {
		v, err := keyValue(c.Value)
		if err != nil {
			return odataclient.Key{}, fmt.Errorf("key column %s: %w", c.Name, err)
		}
		parts[i] = odataclient.KeyPart{Name: c.Name, Value: v}
	}
	return odataclient.Key{Alternate: parts}, nil
}

// keyValue maps a value to the Go type odataclient writes as the matching
// OData literal. Dataverse keys may be string, integer, decimal, datetime,
// lookup (a GUID) or choice columns.
func keyValue(v change.Value) (any, error) {
	switch v.Kind() {
	case change.KindNull:
		return nil, nil
	case change.KindText:
		return v.Str(), nil
	case change.KindInt:
		return v.Int(), nil
	case change.KindFloat:
		return v.Float(), nil
	case change.KindDecimal:
		b, err := appendDecimal(nil, v.Decimal())
		return odataclient.Literal(b), err
	case change.KindBool:
		return v.Bool(), nil
	case change.KindTimestamp:
		return v.Time(), nil
	case change.KindDate:
		return odataclient.Literal(v.Time().Format(time.DateOnly)), nil
	case change.KindUUID:
		return odataclient.GUID(v.String()), nil
	}
	return nil, fmt.Errorf("a %s value cannot address a Dataverse row", v.Kind())
}
