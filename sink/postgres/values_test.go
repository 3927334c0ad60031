package postgres

import (
	"encoding/json"
	"math"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// Every kind of value lands in the column types it is meant for, and
// reads back as the same value.
func TestValueKindsRoundTrip(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.kinds (
		id int PRIMARY KEY,
		t text, vc varchar(20), i2 smallint, i4 int, i8 bigint, n numeric, n_int numeric(30,0),
		f8 double precision, b boolean, tz timestamptz, ts timestamp, d date,
		u uuid, by bytea, j json, jb jsonb)`)
	s := d.sink(t, Config{})
	offset := time.FixedZone("", -(9*3600 + 30*60))
	instant := time.Date(2024, 2, 29, 23, 59, 58, 999999000, offset)
	u, err := change.ParseUUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
	if err != nil {
		t.Fatal(err)
	}
	cases := []change.Row{{
		col("t", change.Text("héllo, 'world' \"quoted\" \\ back\nslash")),
		col("vc", change.Text("short")),
		col("i2", change.Int(-32768)),
		col("i4", change.Int(math.MaxInt32)),
		col("i8", change.Int(math.MinInt64)),
		col("n", change.MustDecimal("-12345678901234567890.123456789012345678")),
		col("n_int", change.Int(math.MaxInt64)),
		col("f8", change.Float(0.1)),
		col("b", change.Bool(true)),
		col("tz", change.Timestamp(instant)),
		col("ts", change.Timestamp(time.Date(1999, 12, 31, 23, 59, 59, 500000000, time.UTC))),
		col("d", change.Date(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC))),
		col("u", u),
		col("by", change.Bytes([]byte{0, 1, 0x7f, 0x80, 0xff, '\\'})),
		col("j", change.JSON([]byte(`{"a": [1, 2.50, "x"], "b": null}`))),
		col("jb", change.JSON([]byte(`{"a":[1,2.50,"x"],"b":null}`))),
	}, {
		// Every column may be null, and the decimal forms the source may
		// produce all parse.
		col("t", change.Null()), col("vc", change.Null()), col("i2", change.Null()),
		col("i4", change.Null()), col("i8", change.Null()), col("n", change.MustDecimal("+1.5E-3")),
		col("n_int", change.MustDecimal("1e5")), col("f8", change.Float(math.Inf(-1))),
		col("b", change.Bool(false)), col("tz", change.Null()), col("ts", change.Null()),
		col("d", change.Date(time.Date(-43, 3, 15, 0, 0, 0, 0, time.UTC))), col("u", change.Null()),
		col("by", change.Bytes(nil)), col("j", change.Null()), col("jb", change.Null()),
	}, {
		col("f8", change.Float(math.NaN())),
		col("n", change.MustDecimal(".5")),
		col("tz", change.Timestamp(time.Date(1883, 11, 18, 12, 0, 0, 0, time.FixedZone("LMT", -(4*3600+56*60+2))))),
		col("d", change.Date(time.Date(12345, 1, 2, 0, 0, 0, 0, time.UTC))),
	}}
	var batch []change.Record
	for i, row := range cases {
		batch = append(batch, upsert("kinds", intKey("id", i), row...))
	}
	write(t, s, batch...)

	for i, row := range cases {
		got, ok := d.read(t, "kinds", intKey("id", i))
		if !ok {
			t.Fatalf("row %d missing", i)
		}
		for _, c := range row {
			g, _ := got.Get(c.Name)
			if !sameStored(c.Value, g) {
				t.Errorf("row %d column %s: wrote %v (%s), read %v (%s)", i, c.Name, c.Value, c.Value.Kind(), g, g.Kind())
			}
		}
	}
	// Text of the JSON column is kept as written; jsonb normalises.
	var j string
	if err := d.Conn.QueryRow(t.Context(), "SELECT j::text FROM kinds WHERE id = 0").Scan(&j); err != nil {
		t.Fatal(err)
	}
	if j != `{"a": [1, 2.50, "x"], "b": null}` {
		t.Errorf("json column = %s", j)
	}
	// The BC date and the far future keep their year.
	var bc, far string
	if err := d.Conn.QueryRow(t.Context(), "SELECT (SELECT d::text FROM kinds WHERE id = 1), (SELECT d::text FROM kinds WHERE id = 2)").Scan(&bc, &far); err != nil {
		t.Fatal(err)
	}
	if bc != "0044-03-15 BC" || far != "12345-01-02" {
		t.Errorf("dates read back as %s and %s", bc, far)
	}
}

// sameStored compares a written value with what the table returns for
// it, allowing for the column type's own representation: an instant in
// another zone, an integer or decimal at another scale, JSON re-spaced.
func sameStored(want, got change.Value) bool {
	switch want.Kind() {
	case change.KindTimestamp:
		return got.Kind() == change.KindTimestamp && want.Time().Equal(got.Time())
	case change.KindFloat:
		wf := want.Float()
		return got.Kind() == change.KindFloat && (wf == got.Float() || math.IsNaN(wf) && math.IsNaN(got.Float()))
	case change.KindInt, change.KindDecimal:
		w, ok1 := new(big.Rat).SetString(want.String())
		g, ok2 := new(big.Rat).SetString(got.String())
		return ok1 && ok2 && w.Cmp(g) == 0
	case change.KindJSON:
		var w, g any
		return got.Kind() == change.KindJSON && json.Unmarshal(want.JSON(), &w) == nil &&
			json.Unmarshal(got.JSON(), &g) == nil && reflect.DeepEqual(w, g)
	}
	return want.Equal(got)
}
