package postgres

import (
	"math"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dvsync/dvsync/change"
)

func TestDecodeText(t *testing.T) {
	d := newDecoder()
	ts := func(s string) change.Value {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return change.Timestamp(tm.UTC())
	}
	for _, tc := range []struct {
		typ  uint32
		in   string
		want change.Value
	}{
		{pgtype.BoolOID, "t", change.Bool(true)},
		{pgtype.BoolOID, "f", change.Bool(false)},
		{pgtype.Int2OID, "-32768", change.Int(-32768)},
		{pgtype.Int4OID, "2147483647", change.Int(2147483647)},
		{pgtype.Int8OID, "-9223372036854775808", change.Int(math.MinInt64)},
		{pgtype.Float4OID, "1.1", change.Float(1.1)},
		{pgtype.Float8OID, "-2.5e+100", change.Float(-2.5e100)},
		{pgtype.Float8OID, "-Infinity", change.Float(math.Inf(-1))},
		{pgtype.NumericOID, "12345678901234567890.0123456789", change.MustDecimal("12345678901234567890.0123456789")},
		{pgtype.NumericOID, "Infinity", change.Float(math.Inf(1))},
		{pgtype.TextOID, "héllo", change.Text("héllo")},
		{pgtype.VarcharOID, "v", change.Text("v")},
		{pgtype.BPCharOID, "ab   ", change.Text("ab   ")},
		{pgtype.NameOID, "nm", change.Text("nm")},
		{pgtype.TimestamptzOID, "2024-02-29 11:14:15.123456+00", ts("2024-02-29T11:14:15.123456Z")},
		{pgtype.TimestamptzOID, "2024-02-29 13:14:15+02", ts("2024-02-29T11:14:15Z")},
		{pgtype.TimestamptzOID, "infinity", change.Text("infinity")},
		{pgtype.TimestampOID, "2024-02-29 13:14:15.5", ts("2024-02-29T13:14:15.5Z")},
		{pgtype.TimestampOID, "0044-03-15 12:00:00 BC", change.Timestamp(time.Date(-43, 3, 15, 12, 0, 0, 0, time.UTC))},
		{pgtype.DateOID, "2024-02-29", change.Date(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC))},
		{pgtype.DateOID, "-infinity", change.Text("-infinity")},
		{pgtype.UUIDOID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", must(change.ParseUUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"))},
		{pgtype.ByteaOID, `\xdeadbeef`, change.Bytes([]byte{0xde, 0xad, 0xbe, 0xef})},
		{pgtype.ByteaOID, `\x`, change.Bytes(nil)},
		{pgtype.JSONOID, `{"a": [1, 2]}`, change.JSON([]byte(`{"a": [1, 2]}`))},
		{pgtype.JSONBOID, `{"a": 2}`, change.JSON([]byte(`{"a": 2}`))},
		{pgtype.IntervalOID, "1 day 02:03:04", change.Text("1 day 02:03:04")},
		{1007 /* int4[] */, "{1,2,3}", change.Text("{1,2,3}")},
	} {
		got, err := d.value(tc.typ, &pglogrepl.TupleDataColumn{DataType: 't', Data: []byte(tc.in)})
		if err != nil {
			t.Errorf("type %d %q: %v", tc.typ, tc.in, err)
			continue
		}
		if !got.Equal(tc.want) {
			t.Errorf("type %d %q: got %s %s, want %s %s", tc.typ, tc.in, got.Kind(), got, tc.want.Kind(), tc.want)
		}
	}

	nan, err := d.value(pgtype.NumericOID, &pglogrepl.TupleDataColumn{DataType: 't', Data: []byte("NaN")})
	if err != nil || nan.Kind() != change.KindFloat || !math.IsNaN(nan.Float()) {
		t.Errorf("numeric NaN: %v %v", nan, err)
	}
	if v, _ := d.value(pgtype.TextOID, &pglogrepl.TupleDataColumn{DataType: 'n'}); !v.IsNull() {
		t.Errorf("'n' decoded as %s", v.Kind())
	}
	if v, _ := d.value(pgtype.TextOID, &pglogrepl.TupleDataColumn{DataType: 'u'}); !v.IsUnchanged() {
		t.Errorf("'u' decoded as %s", v.Kind())
	}
	for _, bad := range []struct {
		typ uint32
		col pglogrepl.TupleDataColumn
	}{
		{pgtype.Int4OID, pglogrepl.TupleDataColumn{DataType: 't', Data: []byte("x")}},
		{pgtype.BoolOID, pglogrepl.TupleDataColumn{DataType: 't', Data: []byte("yes")}},
		{pgtype.NumericOID, pglogrepl.TupleDataColumn{DataType: 't', Data: []byte("1.2.3")}},
		{pgtype.ByteaOID, pglogrepl.TupleDataColumn{DataType: 't', Data: []byte("abc")}},
		{pgtype.TextOID, pglogrepl.TupleDataColumn{DataType: 'b', Data: []byte("x")}},
	} {
		if v, err := d.value(bad.typ, &bad.col); err == nil {
			t.Errorf("type %d %q decoded as %s %s", bad.typ, bad.col.Data, v.Kind(), v)
		}
	}
}

func must(v change.Value, err error) change.Value {
	if err != nil {
		panic(err)
	}
	return v
}
