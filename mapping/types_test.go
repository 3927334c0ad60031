package mapping

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func TestConversions(t *testing.T) {
	ts := time.Date(2026, 3, 4, 23, 30, 0, 500, time.FixedZone("", -5*3600))
	day := change.Date(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC))
	u, _ := change.ParseUUID("d6f193fc-ce85-e611-80d8-00155d2a68de")
	tests := []struct {
		typ  AttributeType
		in   change.Value
		want change.Value
		err  error
	}{
		{TypeString, change.Int(-12), change.Text("-12"), nil},
		{TypeString, change.MustDecimal("1234.500"), change.Text("1234.500"), nil},
		{TypeString, change.Float(0.5), change.Text("0.5"), nil},
		{TypeString, change.Bool(true), change.Text("true"), nil},
		{TypeString, u, change.Text("d6f193fc-ce85-e611-80d8-00155d2a68de"), nil},
		{TypeString, change.Timestamp(ts), change.Text("2026-03-04T23:30:00.0000005-05:00"), nil},
		{TypeString, day, change.Text("2026-03-04"), nil},
		{TypeString, change.JSON([]byte(`{"a":1}`)), change.Text(`{"a":1}`), nil},
		{TypeString, change.Text("same"), change.Text("same"), nil},
		{TypeString, change.Bytes([]byte{1}), change.Value{}, errNoConversion},
		{TypeMemo, change.Int(1), change.Text("1"), nil},

		{TypeInteger, change.Int(7), change.Int(7), nil},
		{TypeInteger, change.Text("-42"), change.Int(-42), nil},
		{TypeInteger, change.Text("4x"), change.Value{}, errSyntax},
		{TypeInteger, change.Text("99999999999999999999"), change.Value{}, errOutOfRange},
		{TypeInteger, change.Int(math.MaxInt32 + 1), change.Value{}, errOutOfRange},
		{TypeInteger, change.MustDecimal("12.000"), change.Int(12), nil},
		{TypeInteger, change.MustDecimal("1.2E+1"), change.Int(12), nil},
		{TypeInteger, change.MustDecimal("-0.00"), change.Int(0), nil},
		{TypeInteger, change.MustDecimal("12.5"), change.Value{}, errFraction},
		{TypeInteger, change.MustDecimal("1E-3"), change.Value{}, errFraction},
		{TypeInteger, change.Float(3), change.Int(3), nil},
		{TypeInteger, change.Float(3.25), change.Value{}, errFraction},
		{TypeInteger, change.Float(math.Inf(1)), change.Value{}, errNotFinite},
		{TypeInteger, change.Bool(true), change.Value{}, errNoConversion},
		{TypeBigInt, change.Int(math.MaxInt64), change.Int(math.MaxInt64), nil},
		{TypeBigInt, change.MustDecimal("9223372036854775807"), change.Int(math.MaxInt64), nil},
		{TypeBigInt, change.MustDecimal("9223372036854775808"), change.Value{}, errOutOfRange},
		{TypeBigInt, change.MustDecimal("1E+30"), change.Value{}, errOutOfRange},
		{TypeBigInt, change.MustDecimal("1E+9999999999"), change.Value{}, errOutOfRange},
		{TypeBigInt, change.Float(1e19), change.Value{}, errOutOfRange},

		{TypeDecimal, change.MustDecimal("0.10"), change.MustDecimal("0.10"), nil},
		{TypeDecimal, change.Int(5), change.MustDecimal("5"), nil},
		{TypeDecimal, change.Float(0.1), change.MustDecimal("0.1"), nil},
		{TypeDecimal, change.Float(math.NaN()), change.Value{}, errNotFinite},
		{TypeDecimal, change.Text("12.30"), change.MustDecimal("12.30"), nil},
		{TypeDecimal, change.Text("twelve"), change.Value{}, errSyntax},
		{TypeMoney, change.MustDecimal("1234567.8900"), change.MustDecimal("1234567.8900"), nil},
		{TypeMoney, change.Bool(false), change.Value{}, errNoConversion},

		{TypeDouble, change.Float(2.5), change.Float(2.5), nil},
		{TypeDouble, change.Int(3), change.Float(3), nil},
		{TypeDouble, change.Int(1<<53 + 1), change.Value{}, errOutOfRange},
		{TypeDouble, change.MustDecimal("0.25"), change.Float(0.25), nil},
		{TypeDouble, change.MustDecimal("1E+400"), change.Value{}, errOutOfRange},
		{TypeDouble, change.Text("1.5"), change.Float(1.5), nil},
		{TypeDouble, change.Text("NaN"), change.Value{}, errNotFinite},
		{TypeDouble, change.Float(math.Inf(-1)), change.Value{}, errNotFinite},

		{TypeBoolean, change.Bool(true), change.Bool(true), nil},
		{TypeBoolean, change.Int(0), change.Bool(false), nil},
		{TypeBoolean, change.Int(2), change.Value{}, errOutOfRange},
		{TypeBoolean, change.Text("true"), change.Bool(true), nil},
		{TypeBoolean, change.Text("yes"), change.Value{}, errSyntax},

		{TypeDateTime, change.Timestamp(ts), change.Timestamp(ts), nil},
		{TypeDateTime, day, change.Timestamp(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)), nil},
		{TypeDateTime, change.Text("2026-03-04T23:30:00.0000005-05:00"), change.Timestamp(ts), nil},
		{TypeDateTime, change.Text("yesterday"), change.Value{}, errSyntax},
		{TypeDateTime, change.Int(0), change.Value{}, errNoConversion},
		{TypeDateOnly, day, day, nil},
		{TypeDateOnly, change.Timestamp(ts), day, nil}, // the date where it was written, not in UTC
		{TypeDateOnly, change.Text("2026-03-04"), day, nil},
		{TypeDateOnly, change.Text("04/03/2026"), change.Value{}, errSyntax},

		{TypeUniqueIdentifier, u, u, nil},
		{TypeUniqueIdentifier, change.Text("{D6F193FC-CE85-E611-80D8-00155D2A68DE}"), u, nil},
		{TypeUniqueIdentifier, change.Text("not-a-guid"), change.Value{}, errSyntax},
		{TypeUniqueIdentifier, change.Int(1), change.Value{}, errNoConversion},
	}
	for _, tt := range tests {
		col := colPlan{typ: tt.typ, conv: converterFor(tt.typ)}
		got, err := col.convert(tt.in)
		if !errors.Is(err, tt.err) {
			t.Errorf("%s(%s %v): err = %v, want %v", tt.typ, tt.in.Kind(), tt.in, err, tt.err)
			continue
		}
		if err == nil && !got.Equal(tt.want) {
			t.Errorf("%s(%s %v) = %s %v, want %s %v", tt.typ, tt.in.Kind(), tt.in, got.Kind(), got, tt.want.Kind(), tt.want)
		}
	}
}

// NULL and Unchanged pass every conversion untouched, and a column without
// a type passes every value.
func TestConversionsPassNullAndUnchanged(t *testing.T) {
	for _, typ := range append(attributeTypes, "") {
		col := colPlan{typ: typ, conv: converterFor(typ)}
		for _, v := range []change.Value{change.Null(), change.Unchanged()} {
			if got, err := col.convert(v); err != nil || got.Kind() != v.Kind() {
				t.Errorf("%q(%s) = %v, %v", typ, v.Kind(), got, err)
			}
		}
	}
	col := colPlan{}
	if got, err := col.convert(change.Bytes([]byte{1, 2})); err != nil || got.Kind() != change.KindBytes {
		t.Errorf("untyped column converted bytes: %v %v", got, err)
	}
}

func TestEveryAttributeTypeHasAConverter(t *testing.T) {
	for _, typ := range attributeTypes {
		if converterFor(typ) == nil {
			t.Errorf("no converter for %s", typ)
		}
	}
}
