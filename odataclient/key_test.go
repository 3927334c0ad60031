package odataclient

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestKeyString(t *testing.T) {
	for _, tc := range []struct {
		key  Key
		want string
	}{
		{Key{ID: "7eb682f1-ca75-e511-80d4-00155d2a68d1"}, "7eb682f1-ca75-e511-80d4-00155d2a68d1"},
		{Key{ID: "7eb682f1-ca75-e511-80d4-00155d2a68d1", Alternate: []KeyPart{{"x", 1}}}, "7eb682f1-ca75-e511-80d4-00155d2a68d1"},
		{Key{Alternate: []KeyPart{{"accountnumber", "A'1"}, {"tenant", 5}}}, "accountnumber='A''1',tenant=5"},
		{Key{Alternate: []KeyPart{{"name", "''"}}}, "name=''''''"},
		{Key{Alternate: []KeyPart{{"a", int8(-8)}, {"b", uint64(math.MaxUint64)}, {"c", int64(math.MinInt64)}}},
			"a=-8,b=18446744073709551615,c=-9223372036854775808"},
		{Key{Alternate: []KeyPart{{"f", 1.5}, {"g", float32(0.25)}, {"h", 1e21}}}, "f=1.5,g=0.25,h=1E+21"},
		{Key{Alternate: []KeyPart{{"n", math.NaN()}, {"p", math.Inf(1)}, {"m", math.Inf(-1)}}}, "n=NaN,p=INF,m=-INF"},
		{Key{Alternate: []KeyPart{{"b", true}, {"z", nil}}}, "b=true,z=null"},
		{Key{Alternate: []KeyPart{{"_primarycontactid_value", GUID("00000000-0000-0000-0000-000000000002")}}},
			"_primarycontactid_value=00000000-0000-0000-0000-000000000002"},
		{Key{Alternate: []KeyPart{{"d", Literal("2024-02-29")}, {"m", Literal("12.50")}}}, "d=2024-02-29,m=12.50"},
		{Key{Alternate: []KeyPart{{"t", time.Date(2024, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))}}}, "t=2024-01-02T02:04:05Z"},
	} {
		if got := tc.key.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.key, got, tc.want)
		}
	}
}

func TestKeyRejectsWhatCannotBeWritten(t *testing.T) {
	for _, k := range []Key{
		{},
		{ID: "1'); DROP"},
		{Alternate: []KeyPart{{"", "x"}}},
		{Alternate: []KeyPart{{"a b", "x"}}},
		{Alternate: []KeyPart{{"a)", "x"}}},
		{Alternate: []KeyPart{{"a", struct{}{}}}},
		{Alternate: []KeyPart{{"a", GUID("not a guid")}}},
		{Alternate: []KeyPart{{"a", Literal("")}}},
	} {
		if _, err := k.appendTo(nil); err == nil {
			t.Errorf("%+v: no error", k)
		}
		if s := k.String(); !strings.HasPrefix(s, "%!(") {
			t.Errorf("%+v.String() = %q, want a %%!( marker", k, s)
		}
	}
}

func TestKeyIsPercentEncodedInThePath(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c := newClient(t, s)
	key := Key{Alternate: []KeyPart{{"name", "a b/c?d#e%f+g&h'i"}, {"n", 7}}}
	if _, err := c.Upsert(t.Context(), "accounts", key, []byte(`{}`), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "/api/data/v9.2/accounts(name='a%20b%2Fc%3Fd%23e%25f%2Bg%26h''i',n=7)"
	if got := s.only(t).RequestURI; got != want {
		t.Fatalf("RequestURI = %s\nwant         %s", got, want)
	}
}

func TestInvalidEntitySetSendsNothing(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c := newClient(t, s)
	for _, set := range []string{"", "accounts/x", "accounts?$top=1", "a(b)", "a b"} {
		if _, err := c.Create(t.Context(), set, []byte(`{}`), WriteOptions{}); err == nil {
			t.Errorf("Create(%q) succeeded", set)
		}
	}
	if _, err := c.Upsert(t.Context(), "accounts", Key{}, []byte(`{}`), WriteOptions{}); err == nil {
		t.Error("Upsert with an empty key succeeded")
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("server saw %d requests", n)
	}
}
