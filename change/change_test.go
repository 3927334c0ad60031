package change

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestZeroValueIsUnchanged(t *testing.T) {
	var v Value
	if !v.IsUnchanged() || v.IsNull() {
		t.Fatalf("zero Value: kind %s, want unchanged", v.Kind())
	}
}

func TestValueText(t *testing.T) {
	ts := time.Date(2024, 3, 1, 12, 30, 0, 123000000, time.FixedZone("", 2*3600))
	u, err := ParseUUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		v    Value
		want string
	}{
		{Null(), "<null>"},
		{Unchanged(), "<unchanged>"},
		{Text("héllo"), "héllo"},
		{Int(-42), "-42"},
		{Float(1.5), "1.5"},
		{MustDecimal("12345678901234567890.123456789"), "12345678901234567890.123456789"},
		{Bool(true), "true"},
		{Timestamp(ts), "2024-03-01T12:30:00.123+02:00"},
		{Date(ts), "2024-03-01"},
		{u, "6f9619ff-8b86-d011-b42d-00c04fc964ff"},
		{Bytes([]byte{0xde, 0xad}), "dead"},
		{JSON([]byte(`{"a":1}`)), `{"a":1}`},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%s value: String() = %q, want %q", tc.v.Kind(), got, tc.want)
		}
	}
}

func TestDecimalKeepsPrecision(t *testing.T) {
	for _, ok := range []string{"0", "-1", "+1.50", ".5", "5.", "1e10", "1.5E-3", "99999999999999999999999999999.9999999999"} {
		v, err := Decimal(ok)
		if err != nil {
			t.Errorf("Decimal(%q): %v", ok, err)
			continue
		}
		if v.Decimal() != ok {
			t.Errorf("Decimal(%q) kept %q", ok, v.Decimal())
		}
	}
	for _, bad := range []string{"", "-", ".", "1e", "NaN", "Infinity", "1,5", "0x10", "1 "} {
		if _, err := Decimal(bad); err == nil {
			t.Errorf("Decimal(%q) accepted", bad)
		}
	}
}

func TestParseUUIDForms(t *testing.T) {
	want := "00112233-4455-6677-8899-aabbccddeeff"
	for _, s := range []string{want, strings.ToUpper(want), "{" + want + "}", "00112233445566778899aabbccddeeff"} {
		v, err := ParseUUID(s)
		if err != nil || v.String() != want {
			t.Errorf("ParseUUID(%q) = %v, %v", s, v, err)
		}
	}
	for _, s := range []string{"", "0011223344556677", "00112233-4455-6677-8899_aabbccddeeff", "zz112233-4455-6677-8899-aabbccddeeff"} {
		if _, err := ParseUUID(s); err == nil {
			t.Errorf("ParseUUID(%q) accepted", s)
		}
	}
}

func TestAccessorPanicsOnWrongKind(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Int() on a text value did not panic")
		}
	}()
	Text("x").Int()
}

func TestValueEqual(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	if !Timestamp(t0).Equal(Timestamp(t0.In(time.UTC))) {
		t.Error("same instant, same offset: not equal")
	}
	if Timestamp(t0).Equal(Timestamp(t0.In(time.FixedZone("", 3600)))) {
		t.Error("same instant, other offset: equal (the offset is data)")
	}
	if Int(1).Equal(Text("1")) || Null().Equal(Unchanged()) {
		t.Error("values of different kinds compare equal")
	}
}

func TestMarshalJSON(t *testing.T) {
	row := map[string]Value{
		"n": Null(), "u": Unchanged(), "i": Int(7), "d": MustDecimal("1.10"),
		"j": JSON([]byte(`{ "a" : [1, 2] }`)), "b": Bytes([]byte("hi")), "t": Text(`q"`),
	}
	got, err := json.Marshal(row)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"b":"aGk=","d":"1.10","i":7,"j":{"a":[1,2]},"n":null,"t":"q\"","u":null}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := json.Marshal(JSON([]byte("{"))); err == nil {
		t.Error("invalid JSON document marshalled")
	}
}

func TestMergeKeepsUnchanged(t *testing.T) {
	older := Row{{"a", Int(1)}, {"b", Text("big")}, {"c", Int(3)}}
	newer := Row{{"a", Int(2)}, {"b", Unchanged()}, {"d", Null()}}
	got := Merge(older, newer)
	want := Row{{"a", Int(2)}, {"b", Text("big")}, {"c", Int(3)}, {"d", Null()}}
	if len(got) != len(want) {
		t.Fatalf("Merge = %v", got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || !got[i].Value.Equal(want[i].Value) {
			t.Errorf("column %d = %s:%s, want %s:%s", i, got[i].Name, got[i].Value, want[i].Name, want[i].Value)
		}
	}
	if v, _ := older.Get("a"); v.Int() != 1 {
		t.Error("Merge modified its input")
	}
}

func TestKeyBinaryIsUnambiguous(t *testing.T) {
	k := func(cols ...Column) string { return string(Key(cols).AppendBinary(nil)) }
	a := k(Column{"x", Text("a,b")}, Column{"y", Text("c")})
	b := k(Column{"x", Text("a")}, Column{"y", Text("b,c")})
	if a == b {
		t.Error("different composite keys encode the same")
	}
	if k(Column{"x", Int(1)}) == k(Column{"x", Text("1")}) {
		t.Error("int 1 and text \"1\" encode the same")
	}
	if k(Column{"x", Int(1)}) != k(Column{"other", Int(1)}) {
		t.Error("encoding depends on column names")
	}
	key := Key{{"tenant", Int(7)}, {"id", Text("A")}}
	if key.String() != "tenant=7,id=A" {
		t.Errorf("Key.String() = %q", key.String())
	}
	if !key.Equal(Key{{"tenant", Int(7)}, {"id", Text("A")}}) || key.Equal(key[:1]) {
		t.Error("Key.Equal is wrong")
	}
}

func TestErrorClasses(t *testing.T) {
	base := errors.New("boom")
	r := Retryable(base, 2*time.Second)
	if w, ok := RetryWait(r); !ok || w != 2*time.Second || !errors.Is(r, base) {
		t.Errorf("RetryWait(Retryable) = %v, %v", w, ok)
	}
	if IsPermanent(r) {
		t.Error("retryable error is permanent")
	}
	p := Permanent(base)
	if !IsPermanent(p) || !errors.Is(p, base) {
		t.Error("Permanent lost its class or cause")
	}
	if _, ok := RetryWait(p); ok {
		t.Error("permanent error is retryable")
	}
	if Retryable(nil, 0) != nil || Permanent(nil) != nil {
		t.Error("nil errors must stay nil")
	}
	be := &BatchError{Failed: map[int]error{3: p}}
	if !strings.Contains(be.Error(), "1 record(s) failed; #3: boom") {
		t.Errorf("BatchError = %q", be.Error())
	}
}

func TestRecordStringHasNoValues(t *testing.T) {
	r := Record{Op: OpUpdate, Table: "public.customers", Key: Key{{"id", Int(5)}},
		After: Row{{"ssn", Text("123-45-6789")}}}
	if s := r.String(); s != "u public.customers id=5" {
		t.Errorf("String() = %q", s)
	}
}

func TestDeferredClass(t *testing.T) {
	base := errors.New("parent row missing")
	d := Deferred(base)
	if !IsDeferred(d) || !errors.Is(d, base) || d.Error() != base.Error() {
		t.Errorf("Deferred lost its class or cause: %v", d)
	}
	if IsPermanent(d) {
		t.Error("deferred error is permanent")
	}
	if _, ok := RetryWait(d); ok {
		t.Error("deferred error is retryable")
	}
	if IsDeferred(base) || IsDeferred(Permanent(base)) || IsDeferred(Retryable(base, 0)) {
		t.Error("unmarked error is deferred")
	}
	if wrapped := fmt.Errorf("write account: %w", d); !IsDeferred(wrapped) {
		t.Error("IsDeferred does not see through wrapping")
	}
	if Deferred(nil) != nil {
		t.Error("nil errors must stay nil")
	}
}
