package kafka

import (
	"testing"

	"github.com/dvsync/dvsync/change"
)

// scanCorpus are objects of every shape scanObject meets, and documents
// it must leave to the slow path.
var scanCorpus = []string{
	`{"id":7,"name":"Customer 7","employees":7,"credit":7.25}`,
	` { "a" : 1 , "b" : -2 ,"c":0, "d":-0 } `,
	"{\n\t\"a\":\r\n1}",
	`{}`,
	`{"s":"","t":"å ß 水"}`,
	`{"n":123456789012345678,"m":-12345678901234567,"big":12345678901234567890,"neg":-9223372036854775808}`,
	`{"f":1.5,"e":1e3,"E":-2.5E-3,"p":1e+2}`,
	`{"t":true,"f":false,"z":null}`,
	`{"o":{"x":[1, 2, {"y":"}"}]},"a":[ ],"q":"]"}`,
	`{"esc":"a\"b","k":1}`,
	`{"u":"x\u00e9"}`,
	`{"a\u0062":1}`,
	`{"a":1,"a":2}`,
	`{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":.5}`, `{"a":1e}`, `{"a":+1}`,
	`{"a":tru}`, `{"a":nul}`, `{"a":"x}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1}x`,
	`{"a":[1,}`, `{"a":{"b":}}`, `{"a":[}`, `[1]`, `"x"`, ``, `{`,
	"{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}", "{\"\xff\":1}",
}

// TestScanObject checks that every object scanObject reads, the slow
// path reads to the same row, and that the common shapes do not fall
// back to it.
func TestScanObject(t *testing.T) {
	for _, doc := range scanCorpus {
		checkScan(t, doc)
	}
	for _, doc := range scanCorpus[:9] {
		if _, ok := scanObject([]byte(doc)); !ok {
			t.Errorf("scanObject(%s) fell back to the slow path", doc)
		}
	}
	doc := []byte(scanCorpus[0])
	if row, _ := scanObject(doc); cap(row) != len(row) {
		t.Errorf("a row of %d columns has room for %d", len(row), cap(row))
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = scanObject(doc) }); n > 2 {
		t.Errorf("scanObject makes %v allocations for a row, want 2", n)
	}
}

func FuzzScanObject(f *testing.F) {
	for _, doc := range scanCorpus {
		f.Add(doc)
	}
	f.Fuzz(checkScan)
}

func checkScan(t *testing.T, doc string) {
	fast, ok := scanObject([]byte(doc))
	slow, err := decodeObjectSlow([]byte(doc))
	if !ok {
		return
	}
	if err != nil {
		t.Fatalf("scanObject(%q) = %v, the slow path fails: %v", doc, fast, err)
	}
	if !sameRow(fast, slow) {
		t.Fatalf("scanObject(%q) = %v, the slow path %v", doc, fast, slow)
	}
}

func sameRow(a, b change.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Value.Kind() != b[i].Value.Kind() || !a[i].Value.Equal(b[i].Value) ||
			a[i].Value.String() != b[i].Value.String() {
			return false
		}
	}
	return true
}
