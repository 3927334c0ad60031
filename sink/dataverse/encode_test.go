package dataverse

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func mustUUID(s string) change.Value {
	v, err := change.ParseUUID(s)
	if err != nil {
		panic(err)
	}
	return v
}

func TestAppendBody(t *testing.T) {
	ts := time.Date(2024, 3, 1, 9, 30, 15, 123000000, time.FixedZone("CET", 3600))
	row := change.Row{
		col("name", change.Text("Ünïcode \"quoted\" \\ back\nline\x01\u2028")),
		col("skipped", change.Unchanged()),
		col("numberofemployees", change.Int(-42)),
		col("ratio", change.Float(0.25)),
		col("tiny", change.Float(1e-7)),
		col("creditlimit", change.MustDecimal("12345678901234.5678")),
		col("creditonhold", change.Bool(true)),
		col("lastcontact", change.Timestamp(ts)),
		col("birthday", change.Date(time.Date(1990, 12, 31, 23, 0, 0, 0, time.UTC))),
		col("externalid", mustUUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")),
		col("blob", change.Bytes([]byte{0, 1, 2, 0xfe, 0xff})),
		col("doc", change.JSON([]byte(`{"a": [1, "x"]}`))),
		col("description", change.Null()),
		col("parentaccountid@odata.bind", change.Text("/accounts(accountnumber='P1')")),
	}
	got, err := appendBody(nil, row)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"name":"Ünïcode \"quoted\" \\ back\nline\u0001\u2028",` +
		`"numberofemployees":-42,"ratio":0.25,"tiny":1e-7,` +
		`"creditlimit":12345678901234.5678,"creditonhold":true,` +
		`"lastcontact":"2024-03-01T08:30:15.123Z","birthday":"1990-12-31",` +
		`"externalid":"6f9619ff-8b86-d011-b42d-00c04fc964ff","blob":"AAEC/v8=",` +
		`"doc":"{\"a\": [1, \"x\"]}","description":null,` +
		`"parentaccountid@odata.bind":"/accounts(accountnumber='P1')"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// It is JSON that decodes to the same strings and exact numbers.
	dec := json.NewDecoder(strings.NewReader(string(got)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if m["name"] != "Ünïcode \"quoted\" \\ back\nline\x01\u2028" || m["creditlimit"] != json.Number("12345678901234.5678") {
		t.Fatalf("decoded %v", m)
	}
	if _, ok := m["skipped"]; ok {
		t.Fatal("Unchanged column was sent")
	}
}

func TestAppendBodyAllUnchanged(t *testing.T) {
	got, err := appendBody(nil, change.Row{col("a", change.Unchanged())})
	if err != nil || string(got) != "{}" {
		t.Fatalf("got %s, %v", got, err)
	}
}

func TestAppendBodyInvalidUTF8(t *testing.T) {
	got, _ := appendBody(nil, change.Row{col("a", change.Text("x\xffy"))})
	if string(got) != `{"a":"x\ufffdy"}` {
		t.Fatalf("got %s", got)
	}
}

func TestAppendBodyRejectsNonFinite(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := appendBody(nil, change.Row{col("x", change.Float(f))}); err == nil || !strings.Contains(err.Error(), "column x") {
			t.Errorf("%v: err = %v", f, err)
		}
	}
}

func TestAppendDecimal(t *testing.T) {
	for in, want := range map[string]string{
		"0":                    "0",
		"-0":                   "-0",
		"12.50":                "12.50",
		"+007.50":              "7.50",
		".5":                   "0.5",
		"-.5":                  "-0.5",
		"5.":                   "5",
		"000.100":              "0.100",
		"1.5E+3":               "1500",
		"1.5e3":                "1500",
		"12E-4":                "0.0012",
		"-12.345e-1":           "-1.2345",
		"123.45E1":             "1234.5",
		"0E+5":                 "0",
		"0.00E+1":              "0.0",
		"99999999999999999999": "99999999999999999999",
		"1E-2":                 "0.01",
	} {
		got, err := appendDecimal(nil, in)
		if err != nil || string(got) != want {
			t.Errorf("appendDecimal(%q) = %q, %v; want %q", in, got, err, want)
			continue
		}
		if !json.Valid(got) {
			t.Errorf("appendDecimal(%q) = %q is not a JSON number", in, got)
		}
	}
	for _, in := range []string{"", ".", "+", "1e", "1e+", "1.2.3", "abc", "1E+1001", "1x"} {
		if got, err := appendDecimal(nil, in); err == nil {
			t.Errorf("appendDecimal(%q) = %q, want an error", in, got)
		}
	}
}

func TestRowKey(t *testing.T) {
	k := change.Key{
		col("accountnumber", change.Text("A'1")),
		col("tenant", change.Int(5)),
		col("amount", change.MustDecimal("+1.50")),
		col("_parentaccountid_value", mustUUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")),
		col("day", change.Date(time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC))),
		col("at", change.Timestamp(time.Date(2024, 2, 29, 1, 2, 3, 0, time.FixedZone("x", -3600)))),
		col("flag", change.Bool(false)),
		col("none", change.Null()),
	}
	got, err := rowKey("account", k)
	if err != nil {
		t.Fatal(err)
	}
	want := "accountnumber='A''1',tenant=5,amount=1.50,_parentaccountid_value=6f9619ff-8b86-d011-b42d-00c04fc964ff," +
		"day=2024-02-29,at=2024-02-29T02:02:03Z,flag=false,none=null"
	if got.String() != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	for _, bad := range []change.Key{nil, {col("a", change.Unchanged())}, {col("a", change.Bytes([]byte{1}))}, {col("a", change.JSON([]byte("{}")))}} {
		if _, err := rowKey("account", bad); err == nil {
			t.Errorf("rowKey(%v) succeeded", bad)
		}
	}
}

func TestRowKeyByPrimaryID(t *testing.T) {
	id := mustUUID("6F9619FF-8B86-D011-B42D-00C04FC964FF")
	got, err := rowKey("account", change.Key{col("accountid", id)})
	if err != nil || got.ID != "6f9619ff-8b86-d011-b42d-00c04fc964ff" || got.Alternate != nil {
		t.Fatalf("rowKey(accountid) = %+v, %v; want the row's id", got, err)
	}
	// A GUID alternate key on another column stays an alternate key.
	got, err = rowKey("account", change.Key{col("_parentaccountid_value", id)})
	if err != nil || got.ID != "" || len(got.Alternate) != 1 {
		t.Fatalf("rowKey(_parentaccountid_value) = %+v, %v; want an alternate key", got, err)
	}
}

// benchRow is a typical mapped account row.
func benchRow() change.Row {
	return change.Row{
		col("accountnumber", change.Text("ACC-000042")),
		col("name", change.Text("Contoso Pharmaceuticals (sample)")),
		col("telephone1", change.Text("+1 555 0142")),
		col("emailaddress1", change.Text("someone@contoso.example")),
		col("numberofemployees", change.Int(1200)),
		col("creditlimit", change.MustDecimal("250000.00")),
		col("revenue", change.MustDecimal("12500000.5000")),
		col("creditonhold", change.Bool(false)),
		col("address1_latitude", change.Float(47.639583)),
		col("lastonholdtime", change.Timestamp(time.Date(2024, 3, 1, 9, 30, 15, 0, time.UTC))),
		col("description", change.Null()),
		col("new_externalid", mustUUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")),
		col("new_notes", change.Unchanged()),
	}
}

// BenchmarkEncode measures the request body encoder on the sink's hot
// path: one record into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	row := benchRow()
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = appendBody(buf[:0], row)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	row := benchRow()
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = appendBody(buf[:0], row)
	})
	if allocs != 0 {
		t.Fatalf("appendBody allocates %.1f times per record, want 0", allocs)
	}
}

func col(name string, v change.Value) change.Column { return change.Column{Name: name, Value: v} }
