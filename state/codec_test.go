package state

import (
	"bytes"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// valuesOfEveryKind returns at least one value of each change.Kind,
// including the awkward ones.
func valuesOfEveryKind() []change.Value {
	u, _ := change.ParseUUID("d6f193fc-ce85-e611-80d8-00155d2a68de")
	paris := time.FixedZone("CET", 3600)
	return []change.Value{
		change.Unchanged(),
		change.Null(),
		change.Text(""),
		change.Text("héllo, wörld"),
		change.Text("\xff\xfe not UTF-8"),
		change.Int(0),
		change.Int(math.MinInt64),
		change.Int(math.MaxInt64),
		change.Float(math.Copysign(0, -1)),
		change.Float(math.Inf(1)),
		change.Float(math.Float64frombits(0x7ff8000000000123)), // NaN with a payload
		change.Float(0.1),
		change.MustDecimal("-12345678901234567890.0123456789"),
		change.MustDecimal("1E+5"),
		change.Bool(true),
		change.Bool(false),
		change.Timestamp(time.Date(2026, 3, 4, 5, 6, 7, 890123456, time.UTC)),
		change.Timestamp(time.Date(2026, 3, 4, 5, 6, 7, 1, paris)),
		change.Timestamp(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)),
		change.Timestamp(time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.FixedZone("", -9*3600-30*60))),
		change.Date(time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)),
		change.Date(time.Date(-44, 3, 15, 0, 0, 0, 0, time.UTC)),
		u,
		change.Bytes(nil),
		change.Bytes([]byte{0, 1, 2, 0xff}),
		change.JSON([]byte(`{"a": [1, 2, {"b": null}]}`)),
		change.JSON([]byte(`not even json`)), // kept as given
	}
}

func TestRecordRoundTripEveryKind(t *testing.T) {
	values := valuesOfEveryKind()
	seen := map[change.Kind]bool{}
	for _, v := range values {
		seen[v.Kind()] = true
	}
	for k := change.KindUnchanged; k <= change.KindJSON; k++ {
		if !seen[k] {
			t.Fatalf("test values miss kind %s", k)
		}
	}

	var after change.Row
	for i, v := range values {
		after = append(after, change.Column{Name: string(rune('a' + i)), Value: v})
		rec := change.Record{
			Op:    change.OpUpdate,
			Table: "public.t",
			Key:   change.Key{{Name: "k", Value: v}},
			After: change.Row{{Name: "c", Value: v}},
		}
		assertRoundTrip(t, &rec)
	}
	full := change.Record{
		Op:         change.OpRead,
		Table:      "sales.orders",
		Key:        change.Key{{Name: "tenant", Value: change.Int(7)}, {Name: "id", Value: change.Text("x")}},
		Before:     after[:3],
		After:      after,
		Position:   change.Position{0, 1, 2, 3},
		CommitTime: time.Date(2026, 1, 1, 12, 0, 0, 5, time.FixedZone("EST", -5*3600)),
		Origin:     change.Origin{System: "postgres", Name: "dvsync"},
		Meta:       map[string]string{"xid": "42", "lsn": "0/16B3748", "": "empty key"},
	}
	assertRoundTrip(t, &full)
}

// Nil and empty are different things to the engine (no row versus a row
// with no columns) and must stay different.
func TestRecordRoundTripKeepsNilApartFromEmpty(t *testing.T) {
	for _, rec := range []change.Record{
		{Op: change.OpDelete},
		{Op: change.OpInsert, Before: change.Row{}, After: change.Row{}, Position: change.Position{}, Meta: map[string]string{}},
	} {
		assertRoundTrip(t, &rec)
	}
}

func assertRoundTrip(t *testing.T, rec *change.Record) {
	t.Helper()
	enc := AppendRecord([]byte("prefix"), rec)
	if !bytes.HasPrefix(enc, []byte("prefix")) {
		t.Fatal("AppendRecord did not append")
	}
	got, err := DecodeRecord(enc[len("prefix"):])
	if err != nil {
		t.Fatalf("DecodeRecord: %v", err)
	}
	if !recordsEqual(&got, rec) {
		t.Errorf("round trip changed the record\n got %#v\nwant %#v", got, *rec)
	}
	if again := AppendRecord(nil, &got); !bytes.Equal(again, enc[len("prefix"):]) {
		t.Errorf("re-encoding differs")
	}
}

// recordsEqual compares exactly: values with Value.Equal and by their text
// (which tells -0 from 0 and NaN payloads apart), times by instant, offset
// and zone name, and nil apart from empty.
func recordsEqual(a, b *change.Record) bool {
	sameCols := func(x, y []change.Column) bool {
		if (x == nil) != (y == nil) || len(x) != len(y) {
			return false
		}
		for i := range x {
			xv, yv := x[i].Value, y[i].Value
			if x[i].Name != y[i].Name || xv.Kind() != yv.Kind() {
				return false
			}
			switch xv.Kind() {
			case change.KindFloat:
				if math.Float64bits(xv.Float()) != math.Float64bits(yv.Float()) {
					return false
				}
			case change.KindTimestamp, change.KindDate:
				if !sameTime(xv.Time(), yv.Time()) {
					return false
				}
			default:
				if !xv.Equal(yv) || xv.String() != yv.String() {
					return false
				}
			}
		}
		return true
	}
	return a.Op == b.Op && a.Table == b.Table &&
		sameCols(a.Key, b.Key) && sameCols(a.Before, b.Before) && sameCols(a.After, b.After) &&
		(a.Position == nil) == (b.Position == nil) && bytes.Equal(a.Position, b.Position) &&
		sameTime(a.CommitTime, b.CommitTime) && a.Origin == b.Origin &&
		(a.Meta == nil) == (b.Meta == nil) && reflect.DeepEqual(a.Meta, b.Meta)
}

func sameTime(a, b time.Time) bool {
	an, ao := a.Zone()
	bn, bo := b.Zone()
	return a.Equal(b) && ao == bo && an == bn && a.IsZero() == b.IsZero()
}

func TestDecodeRecordRejectsMalformedInput(t *testing.T) {
	good := AppendRecord(nil, &change.Record{
		Op: change.OpInsert, Table: "t", Key: change.Key{{Name: "id", Value: change.Int(1)}},
		After:    change.Row{{Name: "d", Value: change.MustDecimal("1.5")}, {Name: "ts", Value: change.Timestamp(time.Now())}},
		Position: change.Position("p"), Meta: map[string]string{"a": "b"},
	})
	if _, err := DecodeRecord(good); err != nil {
		t.Fatal(err)
	}
	// Every truncation fails cleanly.
	for n := range len(good) {
		if _, err := DecodeRecord(good[:n]); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	if _, err := DecodeRecord(append(bytes.Clone(good), 0)); err == nil {
		t.Error("trailing byte: no error")
	}
	bad := bytes.Clone(good)
	bad[0] = 9
	if _, err := DecodeRecord(bad); err == nil || err.Error() != "state: decode record: unknown encoding version 9" {
		t.Errorf("unknown version: %v", err)
	}
	// A huge length must not allocate or panic.
	huge := append([]byte{recordV1, byte(change.OpInsert)}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)
	if _, err := DecodeRecord(huge); err == nil {
		t.Error("huge length: no error")
	}
	// Flipping any single byte either fails or decodes; it never panics.
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		_, _ = DecodeRecord(b)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	for _, v := range valuesOfEveryKind() {
		f.Add(AppendRecord(nil, &change.Record{Op: change.OpInsert, Table: "t", Key: change.Key{{Name: "k", Value: v}}}))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := DecodeRecord(b)
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same record.
		again, err := DecodeRecord(AppendRecord(nil, &rec))
		if err != nil || !recordsEqual(&again, &rec) {
			t.Fatalf("re-decoding failed: %v", err)
		}
	})
}
