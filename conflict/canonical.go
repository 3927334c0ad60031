package conflict

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/cockroachdb/apd/v3"

	"github.com/dvsync/dvsync/change"
)

// Canonical returns the form of v that comparisons use, and false for an
// Unchanged value, which has none (a column the source did not send says
// nothing about the row). Two values are the same for sync purposes when
// their canonical forms are equal:
//
//   - integers, decimals and floats compare as numbers ("5", "5.00" and
//     5.0 are one value), since Dataverse returns a PostgreSQL numeric as
//     a decimal or a float depending on the column;
//   - timestamps compare in UTC to the second, the precision Dataverse
//     keeps, so a row read back from Dataverse equals the one written;
//   - JSON documents compare by content, not by key order or spacing;
//   - text that spells a UUID, a date (2006-01-02) or an RFC 3339
//     timestamp compares as that value, since a row read from Dataverse
//     without its metadata has such values as strings;
//   - every other kind compares by kind and exact value.
func Canonical(v change.Value) (string, bool) {
	switch v.Kind() {
	case change.KindUnchanged:
		return "", false
	case change.KindNull:
		return "n", true
	case change.KindText:
		return canonicalText(v.Str()), true
	case change.KindInt:
		return "d" + strconv.FormatInt(v.Int(), 10), true
	case change.KindDecimal:
		return "d" + canonicalNumber(v.Decimal()), true
	case change.KindFloat:
		return "d" + canonicalNumber(strconv.FormatFloat(v.Float(), 'f', -1, 64)), true
	case change.KindBool:
		if v.Bool() {
			return "b1", true
		}
		return "b0", true
	case change.KindTimestamp:
		return "t" + v.Time().UTC().Truncate(time.Second).Format(time.RFC3339), true
	case change.KindDate:
		return "D" + v.Time().Format(time.DateOnly), true
	case change.KindUUID:
		u := v.UUID()
		return "u" + hex.EncodeToString(u[:]), true
	case change.KindBytes:
		return "x" + string(v.Bytes()), true
	case change.KindJSON:
		return "j" + canonicalJSON(v.JSON()), true
	}
	return "?" + v.String(), true
}

// canonicalText is the canonical form of a text value: that of the UUID,
// date or timestamp it spells, or else the text itself.
func canonicalText(s string) string {
	switch {
	case len(s) == 36 && s[8] == '-':
		if u, err := change.ParseUUID(s); err == nil {
			c, _ := Canonical(u)
			return c
		}
	case len(s) == len(time.DateOnly):
		if d, err := time.Parse(time.DateOnly, s); err == nil {
			return "D" + d.Format(time.DateOnly)
		}
	case len(s) >= len("2006-01-02T15:04:05Z") && s[10] == 'T':
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			c, _ := Canonical(change.Timestamp(t))
			return c
		}
	}
	return "s" + s
}

// canonicalNumber reduces a finite decimal's text to its shortest exact
// form: no exponent, no trailing zeros, no negative zero.
func canonicalNumber(s string) string {
	var d apd.Decimal
	if _, _, err := d.SetString(s); err != nil {
		return s
	}
	d.Reduce(&d)
	if d.IsZero() {
		return "0"
	}
	return d.Text('f')
}

// canonicalJSON re-encodes a document with sorted keys and no spaces;
// text that does not parse is kept as it is.
func canonicalJSON(doc []byte) string {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return string(doc)
	}
	out, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		return string(doc)
	}
	return string(out)
}

// Same reports whether a and b are the same value for sync purposes. An
// Unchanged value is the same as anything: it does not say otherwise.
func Same(a, b change.Value) bool {
	ca, okA := Canonical(a)
	cb, okB := Canonical(b)
	return !okA || !okB || ca == cb
}

// Project returns the columns of row named in cols, in the order of cols,
// skipping those row lacks. A nil cols returns row itself.
func Project(row change.Row, cols []string) change.Row {
	if cols == nil || row == nil {
		return row
	}
	out := make(change.Row, 0, len(cols))
	for _, name := range cols {
		if v, ok := row.Get(name); ok {
			out = append(out, change.Column{Name: name, Value: v})
		}
	}
	return out
}

// Equal reports whether row holds base's values: every column of base is
// the same (see Same) in row, or absent from it. Columns only in row are
// not compared, so a source row with columns the mapping leaves out
// equals the synced values it was projected to.
func Equal(base, row change.Row) bool {
	for _, c := range base {
		if v, ok := row.Get(c.Name); ok && !Same(c.Value, v) {
			return false
		}
	}
	return true
}

// Changed returns the names of the columns whose value in row differs from
// base, in row's order: those of base that row holds with another value,
// and those only row has (a column base lacks was never synced, so any
// value is a change). Unchanged values in row are not changes.
func Changed(base, row change.Row) []string {
	var out []string
	for _, c := range row {
		if c.Value.IsUnchanged() {
			continue
		}
		if b, ok := base.Get(c.Name); !ok || !Same(b, c.Value) {
			out = append(out, c.Name)
		}
	}
	return out
}

// Fingerprint returns a 64-bit hash of row's canonical values, by column
// name, independent of column order. Unchanged values are left out. Rows
// that are Equal in both directions over the same columns have the same
// fingerprint. It identifies a version of a row compactly, for example to
// recognise one conflict noticed by both pipelines.
func Fingerprint(row change.Row) uint64 {
	names := make([]int, 0, len(row))
	for i := range row {
		if !row[i].Value.IsUnchanged() {
			names = append(names, i)
		}
	}
	slices.SortFunc(names, func(a, b int) int {
		switch {
		case row[a].Name < row[b].Name:
			return -1
		case row[a].Name > row[b].Name:
			return 1
		}
		return 0
	})
	h := fnv.New64a()
	var buf []byte
	for _, i := range names {
		c, _ := Canonical(row[i].Value)
		buf = binary.AppendUvarint(buf[:0], uint64(len(row[i].Name)))
		buf = append(buf, row[i].Name...)
		buf = binary.AppendUvarint(buf, uint64(len(c)))
		buf = append(buf, c...)
		h.Write(buf)
	}
	return h.Sum64()
}

// KeyBytes returns an encoding of key by canonical values, so that the
// same row's key from either pipeline (an integer id read from
// PostgreSQL, the same id mapped back from a Dataverse decimal) encodes
// equal. It is the per-row address of sync state.
func KeyBytes(key change.Key) []byte {
	var out []byte
	for _, c := range key {
		v, _ := Canonical(c.Value)
		out = binary.AppendUvarint(out, uint64(len(c.Name)))
		out = append(out, c.Name...)
		out = binary.AppendUvarint(out, uint64(len(v)))
		out = append(out, v...)
	}
	return out
}
