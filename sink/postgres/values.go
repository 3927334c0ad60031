package postgres

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/dvsync/dvsync/change"
)

// param converts v into a statement parameter. Every non-null value is
// sent as a string, which pgx transmits in PostgreSQL's text format, so
// that the server parses it into whatever type the target column has: a
// decimal lands in numeric without passing through a float, an integer may
// fill an int2, a numeric or a text column alike, and a JSON document fits
// json and jsonb. The texts below are the server's own input syntax for
// each type.
func param(v change.Value) (any, error) {
	switch v.Kind() {
	case change.KindNull:
		return nil, nil
	case change.KindText:
		return v.Str(), nil
	case change.KindInt:
		return strconv.FormatInt(v.Int(), 10), nil
	case change.KindFloat:
		return floatText(v.Float()), nil
	case change.KindDecimal:
		return v.Decimal(), nil
	case change.KindBool:
		if v.Bool() {
			return "true", nil
		}
		return "false", nil
	case change.KindTimestamp:
		// Seconds in the offset keep historic zones (LMT +00:09:21) exact.
		return withEra(v.Time(), "2006-01-02 15:04:05.999999999-07:00:00"), nil
	case change.KindDate:
		return withEra(v.Time(), "2006-01-02"), nil
	case change.KindUUID:
		return v.String(), nil
	case change.KindBytes:
		b := v.Bytes()
		out := make([]byte, 2+hex.EncodedLen(len(b)))
		out[0], out[1] = '\\', 'x'
		hex.Encode(out[2:], b)
		return string(out), nil
	case change.KindJSON:
		return string(v.JSON()), nil
	case change.KindUnchanged:
		// Statements leave unchanged columns out; one here is a bug in
		// the caller, not in the record.
		return nil, errors.New("an unchanged value has no parameter form")
	}
	return nil, fmt.Errorf("a value of kind %s is not supported", v.Kind())
}

// floatText spells f as float8's input accepts it: the shortest text that
// reads back as the same double, and PostgreSQL's names for the specials.
func floatText(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// withEra formats t with layout, writing years before 1 the way
// PostgreSQL reads them: ISO year 0 is 1 BC, -1 is 2 BC.
func withEra(t time.Time, layout string) string {
	if t.Year() >= 1 {
		return t.Format(layout)
	}
	return t.AddDate(1-2*t.Year(), 0, 0).Format(layout) + " BC"
}
