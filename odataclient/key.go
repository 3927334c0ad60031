package odataclient

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Key addresses one row of an entity set: by primary id, or by an
// alternate key the table defines. When ID is set, Alternate is ignored.
type Key struct {
	// ID is the row's primary key, a GUID.
	ID string
	// Alternate holds the parts of an alternate key in the order the key
	// declares them. A composite key has several parts.
	Alternate []KeyPart
}

// KeyPart is one attribute of an alternate key. Value is written as an
// OData literal according to its Go type:
//
//   - string: single-quoted, each embedded quote doubled as OData
//     escapes it;
//   - GUID: bare, as Dataverse writes GUIDs and lookup (_x_value) parts;
//   - Literal: as given, for literals no other type covers (Edm.Date,
//     an exact Edm.Decimal);
//   - int, int8…int64, uint, uint8…uint64: decimal digits;
//   - float32, float64: shortest round-trip form, NaN, INF or -INF;
//   - bool: true or false;
//   - time.Time: RFC 3339 in UTC, the Edm.DateTimeOffset literal;
//   - nil: null.
//
// Any other type makes the request fail before it is sent.
type KeyPart struct {
	Name  string
	Value any
}

// GUID is a key value written bare, as an Edm.Guid literal.
type GUID string

// Literal is a key value written exactly as given. The caller is
// responsible for it being a valid OData literal.
type Literal string

// String returns the text that goes between the parentheses of the row's
// URL, before percent-encoding: the ID, or the alternate key's parts
// joined by commas, for example
//
//	accountnumber='A''1',tenant=5
//
// A key that cannot be written renders as %!(reason), and requests made
// with it fail.
func (k Key) String() string {
	b, err := k.appendTo(nil)
	if err != nil {
		return "%!(" + err.Error() + ")"
	}
	return string(b)
}

func (k Key) appendTo(dst []byte) ([]byte, error) {
	if k.ID != "" {
		if !isGUIDText(k.ID) {
			return dst, fmt.Errorf("odataclient: key id %q is not a GUID", k.ID)
		}
		return append(dst, k.ID...), nil
	}
	if len(k.Alternate) == 0 {
		return dst, errors.New("odataclient: empty key")
	}
	for i, p := range k.Alternate {
		if err := checkName("key attribute", p.Name); err != nil {
			return dst, err
		}
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, p.Name...)
		dst = append(dst, '=')
		var err error
		if dst, err = appendLiteral(dst, p.Value); err != nil {
			return dst, fmt.Errorf("odataclient: key attribute %s: %w", p.Name, err)
		}
	}
	return dst, nil
}

func appendLiteral(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		dst = append(dst, '\'')
		for i := 0; i < len(v); i++ {
			if v[i] == '\'' {
				dst = append(dst, '\'')
			}
			dst = append(dst, v[i])
		}
		return append(dst, '\''), nil
	case GUID:
		if !isGUIDText(string(v)) {
			return dst, fmt.Errorf("%q is not a GUID", string(v))
		}
		return append(dst, v...), nil
	case Literal:
		if v == "" {
			return dst, errors.New("empty literal")
		}
		return append(dst, v...), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int8:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int16:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint8:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint16:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case uint64:
		return strconv.AppendUint(dst, v, 10), nil
	case float32:
		return appendFloat(dst, float64(v), 32), nil
	case float64:
		return appendFloat(dst, v, 64), nil
	case time.Time:
		return v.UTC().AppendFormat(dst, time.RFC3339Nano), nil
	}
	return dst, fmt.Errorf("unsupported key value type %T", v)
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "INF"...)
	case math.IsInf(f, -1):
		return append(dst, "-INF"...)
	}
	return strconv.AppendFloat(dst, f, 'G', -1, bits)
}

// isGUIDText accepts the hyphenated hexadecimal form loosely: it guards
// the URL, the service validates the GUID itself.
func isGUIDText(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}
