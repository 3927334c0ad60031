package emulator

import (
	"encoding/json"
	"strings"
	"testing"
)

// validJSONSeeds are documents on both sides of every rule where two
// validators could disagree: whitespace, escapes, control characters,
// numbers, literals, trailing data and nesting.
var validJSONSeeds = []string{
	``, ` `, `{}`, `[]`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1}}`, `{"a":1} x`,
	"\t\r\n {\"a\" :\n[ 1 , 2 ]}\n", "\v{}", "\f{}", "\u00a0{}",
	`"x"`, `"\u00e9"`, `"\u00G9"`, `"\u00e"`, `"\x"`, `"\/"`, `"\b\f\n\r\t\"\\"`, "\"a\x01b\"", "\"a\x7fb\"", "\"\x10\\b\"", "\"\\b\x10\\b\"", "\"\\b\x10\"", "[\"\\n\"\n]",
	"{\"a\x1fb\":1}", "{\"a\\nb\":1}", `{"a\q":1}`, "\"\xff\xfe\"", `"unterminated`, `"\"`,
	`0`, `-0`, `01`, `-01`, `1.`, `.5`, `1.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-`, `+1`, `1.5e3.2`, `0x10`, `NaN`, `Infinity`,
	`true`, `false`, `null`, `tru`, `nulll`, `True`, `[true,false,null]`, `[1 2]`, `[,1]`, `[1,,2]`,
	`{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.account","name":"x","n":1.25}]}`,
	strings.Repeat("[", 9999) + strings.Repeat("]", 9999),
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	`{"a":` + strings.Repeat("{", 10000) + strings.Repeat("}", 10000) + `}`,
	"[" + strings.Repeat("{},", 10001) + "{}]",
}

// TestValidJSONMatchesEncodingJSON: validJSON accepts exactly what
// json.Valid accepts, so that a body it passes to the direct decoder is one
// encoding/json would have decoded, and a body it refuses gets
// encoding/json's error.
func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	for _, doc := range validJSONSeeds {
		if got, want := validJSON([]byte(doc)), json.Valid([]byte(doc)); got != want {
			t.Errorf("validJSON(%.60q) = %v, json.Valid = %v", doc, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, doc := range validJSONSeeds {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if got, want := validJSON(doc), json.Valid(doc); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid = %v", doc, got, want)
		}
	})
}
