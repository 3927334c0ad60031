package emulator

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

var validJSONSeeds = []string{
	`{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.account","@odata.id":"accounts(accountnumber='1')","accountnumber":"1","name":"Customer 1","numberofemployees":1,"creditlimit":1.25}]}`,
	`{"a":[1,-0,0.5,-1.5e10,2E+3,3e-2,true,false,null,"x\"y\\z\/\b\f\n\r\t\u00e9\uD83D\uDE00"],"b":{},"c":[],"d":{"e":[{}]}}`,
	` [ 1 , 2 ] `, "\t\r\n\"s\"\n", `0`, `-0`, `1.0e+0`, `"é😀"`, "\"\xff\xfe\"", `{"":""}`,
	``, ` `, `{`, `}`, `[`, `]`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `[,1]`, `{,"a":1}`, `{"a" 1}`,
	`01`, `-`, `1.`, `.5`, `1e`, `1e+`, `+1`, `--1`, `0x10`, `1 2`, `tru`, `True`, `nul`, `nulll`, `falsey`,
	`"\x"`, `"\u12"`, `"\u12G4"`, "\"a\x01b\"", "\"\x7f\"", `"abc`, `{"a":1}x`, `{"a":1}}`, `[[]`, `"\`,
	`{"a":{"b":{"c":[1,{"d":null}]}}}`, `[1e5,1E5,1e-5,0.0001,-0.0]`, "[\"a\"\u2028]",
}

// TestValidJSONMatchesEncodingJSON: validJSON accepts exactly what
// json.Valid accepts, on hand-picked documents and on many random
// mutations of them.
func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	check := func(doc []byte) {
		t.Helper()
		if got, want := validJSON(doc), json.Valid(doc); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", doc, got, want)
		}
	}
	for _, s := range validJSONSeeds {
		check([]byte(s))
	}
	alphabet := []byte("{}[]\":,\\/ \t\n\r-+.0123456789eEabfnrtuxyzlsTAF\x00\x1f\x7f\xc3\xa9\xff")
	rnd := rand.New(rand.NewPCG(7, 11))
	for range 200_000 {
		doc := []byte(validJSONSeeds[rnd.IntN(len(validJSONSeeds))])
		for range 1 + rnd.IntN(3) {
			switch i := rnd.IntN(len(doc) + 1); rnd.IntN(3) {
			case 0: // insert
				doc = append(doc[:i:i], append([]byte{alphabet[rnd.IntN(len(alphabet))]}, doc[i:]...)...)
			case 1: // delete
				if i < len(doc) {
					doc = append(doc[:i:i], doc[i+1:]...)
				}
			default: // replace
				if i < len(doc) {
					doc = append([]byte(nil), doc...)
					doc[i] = alphabet[rnd.IntN(len(alphabet))]
				}
			}
		}
		check(doc)
	}
}

// TestValidJSONDepth: as in encoding/json, 10,000 nested arrays or
// objects are valid and 10,001 are not.
func TestValidJSONDepth(t *testing.T) {
	for _, n := range []int{maxJSONDepth, maxJSONDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closing := "]"
			if open != "[" {
				closing = "}"
			}
			doc := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(closing, n))
			if got, want := validJSON(doc), json.Valid(doc); got != want {
				t.Errorf("%d times %q: validJSON %v, json.Valid %v", n, open, got, want)
			}
		}
	}
}
