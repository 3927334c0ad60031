package mapping

import (
	"slices"
	"strings"
	"testing"
)

// source.key is handed to the source by table; an empty or repeated
// column is refused with its line and index.
func TestSourceKey(t *testing.T) {
	const rest = `dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: number, target: accountnumber, type: string}
`
	s := compile(t, "version: 1\nsource: {connection: app, table: public.legacy, key: [region, number]}\n"+rest,
		strings.Replace(customers, "public.customers", "public.other", 1))
	keys := s.Keys("app")
	if len(keys) != 1 || !slices.Equal(keys["public.legacy"], []string{"region", "number"}) {
		t.Errorf("Keys(app) = %v, want only public.legacy: [region number]", keys)
	}
	if keys := s.Keys("none"); keys != nil {
		t.Errorf("Keys(none) = %v", keys)
	}

	_, err := Parse([]byte("version: 1\nsource:\n  connection: app\n  table: public.legacy\n  key: [region, number, '', region]\n"+rest), "v.yaml")
	want := `v.yaml:5: source.key[2]: empty column name
v.yaml:5: source.key[3]: column region is listed twice`
	if got := errText(err); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
