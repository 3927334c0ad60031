package emulator

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/cockroachdb/apd/v3"
)

// TestDecodeMemberMatchesDecodeValue: a value the direct decoder converts
// from its bytes is the value decodeValue gives for the same literal, or
// the same error, for every column type the direct path handles.
func TestDecodeMemberMatchesDecodeValue(t *testing.T) {
	schema, err := ParseSchema([]byte(`
tables:
  - logical_name: thing
    entity_set: things
    attributes:
      - {name: code, type: string, max_length: 5}
      - {name: note, type: memo, max_length: 8}
      - {name: qty, type: integer}
      - {name: big, type: bigint}
      - {name: kind, type: picklist, options: [1, 2, 100000000]}
      - {name: price, type: money}
      - {name: rate, type: decimal, precision: 3}
`), "schema.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defs, err := compileSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	d := defs[0]
	numbers := []string{
		"0", "-0", "7", "-7", "2147483647", "2147483648", "-2147483648", "-2147483649",
		"999999999999999999", "-999999999999999999", "1000000000000000000", "9223372036854775808",
		"1.5", "-1.5", "0.0", "-0.0", "-0.001", "1.005", "1.0049", "12.25", "100000000000",
		"100000000000.01", "922337203685477", "922337203685477.01", "-922337203685478",
		"1e3", "1E-2", "-1.5e2", "0.1234567890123456789", "100000000", "100000001",
		"123456789012345678.5",
	}
	strings := []string{"", "a", "abcde", "abcdef", "ééééé", "😀😀", "😀😀😀", "a b c d", "12345678", "123456789"}
	for _, a := range d.attrs {
		if a.system || a.primaryID {
			continue
		}
		check := func(m member) {
			t.Helper()
			got, gotErr := decodeMember(d, a, &m)
			want, wantErr := decodeValue(d, a, m.decoded())
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Errorf("%s %q: error %v, want %v", a.name, m.raw, gotErr, wantErr)
				return
			}
			if gd, ok := got.(*apd.Decimal); ok {
				wd, _ := want.(*apd.Decimal)
				if wd == nil || gd.Cmp(wd) != 0 || gd.Text('f') != wd.Text('f') || gd.Negative != wd.Negative {
					t.Errorf("%s %q: %v, want %v", a.name, m.raw, got, want)
				}
				return
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %q: %#v, want %#v", a.name, m.raw, got, want)
			}
		}
		for _, n := range numbers {
			check(member{name: a.prop, raw: []byte(n), kind: '0'})
		}
		for _, s := range strings {
			check(member{name: a.prop, raw: []byte(s), kind: '"'})
		}
		check(member{name: a.prop, value: true})
		check(member{name: a.prop, value: nil})
		check(member{name: a.prop, value: json.Number("5")})
	}
}

// TestSimpleKeyURIMatchesParseRecordKey: where simpleKeyURI reads a
// target's "@odata.id", parseRecordURI and parseRecordKey read the same
// key and value; the forms it leaves to them are theirs.
func TestSimpleKeyURIMatchesParseRecordKey(t *testing.T) {
	schema, err := ParseSchema([]byte(`
tables:
  - logical_name: account
    entity_set: accounts
    attributes:
      - {name: accountnumber, type: string, max_length: 20}
      - {name: name, type: string, max_length: 20}
      - {name: code, type: integer}
    keys:
      - {name: number_key, attributes: [accountnumber]}
      - {name: code_key, attributes: [code]}
`), "schema.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defs, err := compileSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	d := defs[0]
	for _, uri := range []string{
		"accounts(accountnumber='A1')", "accounts(accountnumber='')", "accounts(accountnumber='a=b')",
		"accounts(accountnumber='It''s')", "accounts(accountnumber=5)", "accounts(code=5)", "accounts(code='5')",
		"accounts(name='x')", "accounts(accountnumber='A1',name='x')", "contacts(accountnumber='A1')",
		"/accounts(accountnumber='A1')", "api/data/v9.2/accounts(accountnumber='A1')",
		"http://h/api/data/v9.2/accounts(accountnumber='A1')", "accounts(accountnumber='A/1')",
		"accounts(accountnumber='A1'", "accounts", "accounts()", "accounts(00000000-0000-0000-0000-000000000001)",
		"accountsx(accountnumber='A1')", "accounts(accountnumber='A1')x", "accounts(accountnumber=')",
	} {
		k, val, ok := simpleKeyURI(d, []byte(uri))
		if !ok {
			continue
		}
		set, pred, uriOK := parseRecordURI(uri)
		if !uriOK || set != d.set {
			t.Errorf("%s: simpleKeyURI reads it, parseRecordURI does not", uri)
			continue
		}
		want, err := parseRecordKey(d, pred)
		if err != nil || want.key != k || len(want.vals) != 1 || want.vals[0] != string(val) {
			t.Errorf("%s: simpleKeyURI %v %q, parseRecordKey %v %v (%v)", uri, k.name, val, want.key, want.vals, err)
		}
	}
	if _, _, ok := simpleKeyURI(d, []byte("accounts(accountnumber='A1')")); !ok {
		t.Error("simpleKeyURI does not read the usual form")
	}
}
