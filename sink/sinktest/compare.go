package sinktest

import (
	"math"
	"math/big"
	"strconv"
	"time"

	"github.com/dvsync/dvsync/change"
)

// sameValue compares a written value with the one read back, loosely
// enough for a destination's own type mapping: a decimal may come back as
// a float or with another scale, a timestamp in another zone or as text, a
// UUID as text. Two values are the same when they are both null, or are
// instants that are equal, or numbers of equal value (exactly, unless a
// float is involved), or have the same text form.
func sameValue(want, got change.Value) bool {
	if want.IsNull() || got.IsNull() {
		return want.IsNull() && got.IsNull()
	}
	if wt, ok := instant(want); ok {
		if gt, ok := instant(got); ok {
			return wt.Equal(gt)
		}
	}
	if want.Kind() == change.KindFloat || got.Kind() == change.KindFloat {
		// A double may come back through the destination's decimal text.
		if wf, ok := float(want); ok {
			if gf, ok := float(got); ok {
				return wf == gf || math.Abs(wf-gf) <= 1e-12*math.Max(math.Abs(wf), math.Abs(gf))
			}
		}
	}
	if wr, ok := exact(want); ok {
		if gr, ok := exact(got); ok {
			return wr.Cmp(gr) == 0
		}
	}
	return want.String() == got.String()
}

func instant(v change.Value) (time.Time, bool) {
	switch v.Kind() {
	case change.KindTimestamp:
		return v.Time(), true
	case change.KindText:
		t, err := time.Parse(time.RFC3339Nano, v.Str())
		return t, err == nil
	}
	return time.Time{}, false
}

func float(v change.Value) (float64, bool) {
	switch v.Kind() {
	case change.KindFloat:
		return v.Float(), true
	case change.KindInt, change.KindDecimal, change.KindText:
		f, err := strconv.ParseFloat(v.String(), 64)
		return f, err == nil
	}
	return 0, false
}

// exact returns the value of an integer, a decimal or numeric text without
// rounding, so that large integers and long decimals compare exactly.
func exact(v change.Value) (*big.Rat, bool) {
	switch v.Kind() {
	case change.KindInt, change.KindDecimal, change.KindText:
		return new(big.Rat).SetString(v.String())
	}
	return nil, false
}
