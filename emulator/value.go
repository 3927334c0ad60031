package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
)

// Stored values are typed Go values, one representation per column type:
//
//	string, memo                         string
//	multiselectpicklist                  string: option values joined by ","
//	integer, bigint, picklist, state/status int64
//	decimal, money                       *apd.Decimal (never mutated once stored)
//	double                               float64
//	boolean                              bool
//	datetime                             time.Time, UTC, whole seconds
//	dateonly                             time.Time, UTC midnight
//	uniqueidentifier                     uuid.UUID
//	lookup                               lookupRef
//
// A null value is a nil interface (or a missing map entry).

// lookupRef is the value of a lookup column.
type lookupRef struct {
	table *tableDef // nil only while a key-predicate value awaits resolution
	id    uuid.UUID
}

// Value ranges Dataverse enforces per column type.
var (
	decimalLimit = apd.New(100_000_000_000, 0)
	moneyLimit   = apd.New(922_337_203_685_477, 0)
	minDateTime  = time.Date(1753, 1, 1, 0, 0, 0, 0, time.UTC)
	maxDateTime  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

const doubleLimit = 100_000_000_000

// decimalCtx rounds half away from zero with room for any value in range.
var decimalCtx = func() *apd.Context {
	c := apd.BaseContext.WithPrecision(60)
	c.Rounding = apd.RoundHalfUp
	return c
}()

// decodeValue converts a JSON value from a request body (decoded with
// UseNumber) to the stored form of column a of table d, validating it the way
// Dataverse does. The empty string is stored as null, as Dataverse does.
func decodeValue(d *tableDef, a *attrDef, raw any) (any, error) {
	if raw == nil {
		return nil, nil
	}
	switch raw.(type) {
	case map[string]any:
		return nil, errPayload(d.set, "An unexpected 'StartObject' node was found when reading from the JSON reader. A 'PrimitiveValue' node was expected.")
	case []any:
		return nil, errPayload(d.set, "An unexpected 'StartArray' node was found when reading from the JSON reader. A 'PrimitiveValue' node was expected.")
	}
	cannot := func() *apiError {
		return errPayload(d.set, fmt.Sprintf("Cannot convert the literal '%v' to the expected type '%s'.", raw, a.typ.edmType()))
	}
	outOfRange := func(v, lo, hi string) *apiError {
		return &apiError{http.StatusBadRequest, codeValueOutOfRange, fmt.Sprintf(
			"A validation error occurred. The value %s of '%s' on record of type '%s' is outside the valid range. Accepted range: %s to %s",
			v, a.name, d.logical, lo, hi)}
	}
	switch a.typ {
	case tString, tMemo:
		s, ok := raw.(string)
		if !ok {
			return nil, cannot()
		}
		if s == "" {
			return nil, nil
		}
		if n := utf16Len(s); n > a.maxLength {
			return nil, errTooLong(d, a)
		}
		return raw, nil // already boxed

	case tInteger, tBigInt, tPicklist, tState, tStatus:
		n, ok := raw.(json.Number)
		if !ok {
			return nil, cannot()
		}
		bits := 64
		if a.typ != tBigInt {
			bits = 32
		}
		v, err := strconv.ParseInt(string(n), 10, bits)
		if err != nil {
			return nil, cannot()
		}
		if a.options != nil && !containsInt(a.options, int(v)) {
			return nil, &apiError{http.StatusBadRequest, codeValueOutOfRange, fmt.Sprintf(
				"A validation error occurred. The value %d of '%s' on record of type '%s' is outside the valid range. Accepted Values: %s",
				v, a.name, d.logical, formatInts(a.options))}
		}
		return v, nil

	case tMultiSelect:
		s, ok := raw.(string)
		if !ok {
			return nil, cannot()
		}
		return decodeMultiSelect(d, a, s)

	case tDecimal, tMoney:
		n, ok := raw.(json.Number)
		if !ok {
			return nil, cannot()
		}
		dec, _, err := apd.NewFromString(string(n))
		if err != nil || dec.Form != apd.Finite {
			return nil, cannot()
		}
		return checkDecimal(d, a, dec, []byte(n))

	case tDouble:
		n, ok := raw.(json.Number)
		if !ok {
			return nil, cannot()
		}
		f, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, cannot()
		}
		if math.Abs(f) > doubleLimit {
			return nil, outOfRange(string(n), "-100000000000", "100000000000")
		}
		p := math.Pow10(a.precision)
		return math.Round(f*p) / p, nil

	case tBoolean:
		b, ok := raw.(bool)
		if !ok {
			return nil, cannot()
		}
		return b, nil

	case tDateTime, tDateOnly:
		s, ok := raw.(string)
		if !ok {
			return nil, cannot()
		}
		var tm time.Time
		var err error
		if a.typ == tDateOnly {
			tm, err = time.Parse(time.DateOnly, s)
		} else {
			tm, err = parseDateTime(s)
		}
		if err != nil {
			return nil, cannot()
		}
		if tm.Before(minDateTime) || tm.After(maxDateTime) {
			return nil, outOfRange(s, "1/1/1753 12:00:00 AM", "12/31/9999 11:59:59 PM")
		}
		return tm, nil

	case tGUID:
		s, ok := raw.(string)
		if !ok {
			return nil, cannot()
		}
		id, err := parseGUID(s)
		if err != nil {
			return nil, cannot()
		}
		return id, nil
	}
	return nil, cannot()
}

// decodeMember is decodeValue for member m of a body. A string or number
// the direct decoder left in raw is converted from its bytes when that is
// plainly possible (a string for a string column, an integer literal for
// an integer column, a plain decimal literal for a decimal column), which
// spares the intermediate string and box of each; anything else goes
// through decodeValue, so both give the same value or the same error.
func decodeMember(d *tableDef, a *attrDef, m *member) (any, error) {
	switch {
	case m.kind == '"' && (a.typ == tString || a.typ == tMemo):
		if len(m.raw) == 0 {
			return nil, nil
		}
		s := string(m.raw)
		if utf16Len(s) > a.maxLength {
			return nil, errTooLong(d, a)
		}
		return s, nil

	case m.kind == '0' && (a.typ == tInteger || a.typ == tBigInt || a.typ == tPicklist || a.typ == tState || a.typ == tStatus):
		v, ok := parseIntLiteral(m.raw)
		if !ok || a.typ != tBigInt && (v < math.MinInt32 || v > math.MaxInt32) {
			break
		}
		if a.options != nil && !containsInt(a.options, int(v)) {
			break // decodeValue words the error
		}
		return v, nil

	case m.kind == '0' && (a.typ == tDecimal || a.typ == tMoney):
		coeff, exp, ok := parseDecimalLiteral(m.raw)
		if !ok {
			break
		}
		dec := new(apd.Decimal).SetFinite(coeff, exp)
		return checkDecimal(d, a, dec, m.raw)
	}
	return decodeValue(d, a, m.decoded())
}

// parseIntLiteral parses -?[0-9]{1,18}, the integer literals that fit an
// int64 without a check; ok is false for anything else.
func parseIntLiteral(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// parseDecimalLiteral parses -?[0-9]+(\.[0-9]+)? of at most 18 digits into
// coefficient and exponent, as apd.NewFromString would; ok is false for
// anything else, and for a negative zero, whose sign apd keeps.
func parseDecimalLiteral(b []byte) (coeff int64, exp int32, ok bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	digits, frac := 0, -1
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			coeff = coeff*10 + int64(c-'0')
			digits++
		case c == '.' && frac < 0 && i > 0 && i < len(b)-1:
			frac = len(b) - i - 1
		default:
			return 0, 0, false
		}
	}
	if digits == 0 || digits > 18 || neg && coeff == 0 {
		return 0, 0, false
	}
	if frac > 0 {
		exp = -int32(frac)
	}
	if neg {
		coeff = -coeff
	}
	return coeff, exp, true
}

// checkDecimal rounds a decimal or money value to the column's precision
// and checks its range; lit is the value as the body gave it, for errors.
func checkDecimal(d *tableDef, a *attrDef, dec *apd.Decimal, lit []byte) (any, error) {
	if _, err := decimalCtx.Quantize(dec, dec, -int32(a.precision)); err != nil {
		return nil, errPayload(d.set, fmt.Sprintf("Cannot convert the literal '%s' to the expected type '%s'.", lit, a.typ.edmType()))
	}
	limit := decimalLimit
	if a.typ == tMoney {
		limit = moneyLimit
	}
	var abs apd.Decimal
	if abs.Abs(dec).Cmp(limit) > 0 {
		if a.typ == tMoney {
			return nil, &apiError{http.StatusBadRequest, codeMoneySizeExceeded, "Supplied value exceeded the MIN/MAX value of Money Type field."}
		}
		return nil, &apiError{http.StatusBadRequest, codeValueOutOfRange, fmt.Sprintf(
			"A validation error occurred. The value %s of '%s' on record of type '%s' is outside the valid range. Accepted range: %s to %s",
			lit, a.name, d.logical, "-"+limit.Text('f'), limit.Text('f'))}
	}
	return dec, nil
}

// errTooLong is the error for a string longer than its column allows.
func errTooLong(d *tableDef, a *attrDef) *apiError {
	return &apiError{http.StatusBadRequest, codeStringLengthTooLong, fmt.Sprintf(
		"A validation error occurred.  The length of the '%s' attribute of the '%s' entity exceeded the maximum allowed length of '%d'.",
		a.name, d.logical, a.maxLength)}
}

// decodeMultiSelect validates a multi-select value, the option values
// separated by commas ("100000000,100000001"), and stores it in canonical
// form: no spaces, each option once, in the order given. An empty string
// clears the column.
func decodeMultiSelect(d *tableDef, a *attrDef, s string) (any, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	seen := make([]int, 0, len(parts))
	for _, p := range parts {
		v, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
		if err != nil {
			return nil, errPayload(d.set, fmt.Sprintf("Cannot convert the literal '%s' to the expected type 'Edm.Int32'.", p))
		}
		if !containsInt(a.options, int(v)) {
			return nil, &apiError{http.StatusBadRequest, codeValueOutOfRange, fmt.Sprintf(
				"A validation error occurred. The value %d of '%s' on record of type '%s' is outside the valid range. Accepted Values: %s",
				v, a.name, d.logical, formatInts(a.options))}
		}
		if !containsInt(seen, int(v)) {
			seen = append(seen, int(v))
		}
	}
	return formatInts(seen), nil
}

// parseDateTime accepts the ISO 8601 forms Dataverse accepts for
// Edm.DateTimeOffset: with Z or an offset (converted to UTC), without one
// (taken as UTC), or a bare date (midnight UTC). Fractions are dropped:
// Dataverse keeps whole seconds.
func parseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04", time.DateOnly} {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm.UTC().Truncate(time.Second), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 date/time: %q", s)
}

// parseGUID accepts only the canonical 8-4-4-4-12 form, as the Web API does.
func parseGUID(s string) (uuid.UUID, error) {
	if len(s) != 36 {
		return uuid.UUID{}, fmt.Errorf("not a GUID: %q", s)
	}
	return uuid.Parse(s)
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// formatInts renders picklist options the way Dataverse lists accepted values.
func formatInts(v []int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}

// appendValue appends the Web API JSON form of a stored value.
func appendValue(buf []byte, a *attrDef, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case string:
		return appendJSONString(buf, x)
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case *apd.Decimal:
		// Money comes back with four decimal places whatever its precision,
		// as it is stored in a SQL money column.
		scale := int32(a.precision)
		if a.typ == tMoney {
			scale = 4
		}
		var d apd.Decimal
		_, _ = decimalCtx.Quantize(&d, x, -scale)
		return append(buf, d.Text('f')...)
	case float64:
		return strconv.AppendFloat(buf, x, 'f', -1, 64)
	case bool:
		return strconv.AppendBool(buf, x)
	case time.Time:
		if a.typ == tDateOnly {
			return appendJSONString(buf, x.Format(time.DateOnly))
		}
		return appendJSONString(buf, x.UTC().Format("2006-01-02T15:04:05Z"))
	case uuid.UUID:
		return appendJSONString(buf, x.String())
	case lookupRef:
		return appendJSONString(buf, x.id.String())
	}
	return append(buf, "null"...)
}

// appendJSONString appends s as a JSON string without HTML escaping, the way
// Dataverse writes text.
func appendJSONString(buf []byte, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return append(buf, bytes.TrimRight(b.Bytes(), "\n")...)
}

// compareStored orders two stored values of column a. Null sorts first, as in
// SQL Server; strings compare case-insensitively, as Dataverse's collation does.
func compareStored(a *attrDef, x, y any) int {
	switch {
	case x == nil && y == nil:
		return 0
	case x == nil:
		return -1
	case y == nil:
		return 1
	}
	switch xv := x.(type) {
	case string:
		return strings.Compare(strings.ToLower(xv), strings.ToLower(y.(string)))
	case int64:
		yv := y.(int64)
		switch {
		case xv < yv:
			return -1
		case xv > yv:
			return 1
		}
		return 0
	case float64:
		yv := y.(float64)
		switch {
		case xv < yv:
			return -1
		case xv > yv:
			return 1
		}
		return 0
	case *apd.Decimal:
		return xv.Cmp(y.(*apd.Decimal))
	case bool:
		return boolInt(xv) - boolInt(y.(bool))
	case time.Time:
		return xv.Compare(y.(time.Time))
	case uuid.UUID, lookupRef:
		xg, yg := guidOf(xv), guidOf(y)
		return bytes.Compare(xg[:], yg[:])
	}
	return 0
}

func guidOf(v any) uuid.UUID {
	switch x := v.(type) {
	case uuid.UUID:
		return x
	case lookupRef:
		return x.id
	}
	return uuid.Nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// toDecimal converts a stored numeric value for comparison with a literal.
func toDecimal(v any) *apd.Decimal {
	switch x := v.(type) {
	case int64:
		return apd.New(x, 0)
	case float64:
		d, _ := new(apd.Decimal).SetFloat64(x)
		return d
	case *apd.Decimal:
		return x
	}
	return apd.New(0, 0)
}

// indexPart renders a stored value for an alternate-key index: equal under
// Dataverse's comparison rules means equal string.
func indexPart(v any) string {
	switch x := v.(type) {
	case string:
		return "s" + strings.ToLower(x)
	case int64:
		return "i" + strconv.FormatInt(x, 10)
	case *apd.Decimal:
		var d apd.Decimal
		d.Reduce(x)
		return "d" + d.Text('f')
	case float64:
		return "f" + strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return "b" + strconv.FormatBool(x)
	case time.Time:
		return "t" + x.UTC().Format(time.RFC3339)
	case uuid.UUID:
		return "g" + x.String()
	case lookupRef:
		return "g" + x.id.String()
	}
	return "?"
}

// formatCursor and parseCursor round-trip a stored value through the paging
// cookie, so that a next page resumes after the last row it returned.
func formatCursor(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case *apd.Decimal:
		return x.Text('f')
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case uuid.UUID:
		return x.String()
	case lookupRef:
		return x.id.String()
	}
	return ""
}

func parseCursor(a *attrDef, s string) (any, error) {
	switch a.typ {
	case tString, tMemo, tMultiSelect:
		return s, nil
	case tInteger, tBigInt, tPicklist, tState, tStatus:
		return strconv.ParseInt(s, 10, 64)
	case tDecimal, tMoney:
		d, _, err := apd.NewFromString(s)
		return d, err
	case tDouble:
		return strconv.ParseFloat(s, 64)
	case tBoolean:
		return strconv.ParseBool(s)
	case tDateTime, tDateOnly:
		return time.Parse(time.RFC3339Nano, s)
	case tGUID:
		return parseGUID(s)
	case tLookup:
		id, err := parseGUID(s)
		return lookupRef{id: id}, err
	}
	return nil, fmt.Errorf("unsupported type")
}
