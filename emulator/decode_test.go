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
