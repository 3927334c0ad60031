package yamlfile

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type doc struct {
	Name    string          `yaml:"name"`
	Count   int8            `yaml:"count"`
	On      bool            `yaml:"on"`
	Wait    time.Duration   `yaml:"wait"`
	Items   []item          `yaml:"items"`
	ByName  map[string]item `yaml:"by_name"`
	Ignored string          `yaml:"-"`
}

type item struct {
	Label string `yaml:"label"`
	Size  int    `yaml:"size"`
}

func (i *item) SetDefaults() { i.Size = 7 }

func TestDecode(t *testing.T) {
	data := `name: ${NAME}
count: ${COUNT:-3}
on: true
wait: 250ms
items:
  - {label: a}
  - {label: b, size: 0}
by_name:
  x: {}
  y: {size: 2}
`
	d := doc{Name: "default", Wait: time.Second}
	pos, ps := Decode([]byte(data), "d.yaml", envOf("NAME", "from-env"), &d)
	if len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	want := doc{
		Name: "from-env", Count: 3, On: true, Wait: 250 * time.Millisecond,
		Items:  []item{{Label: "a", Size: 7}, {Label: "b", Size: 0}},
		ByName: map[string]item{"x": {Size: 7}, "y": {Size: 2}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("decoded\n %+v\nwant\n %+v", d, want)
	}
	for path, line := range map[string]int{"": 1, "name": 1, "items[1]": 7, "items[1].size": 7, "by_name.y": 10, "by_name.y.nothing": 10, "nowhere": 1} {
		if got := pos.Line(path); got != line {
			t.Errorf("Line(%q) = %d, want %d", path, got, line)
		}
	}
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	//nolint:misspell // the typo is the input under test
	data := `nmae: x
count: 300
on: "yes"
wait: 5
items: {label: a}
by_name:
  x:
    size: ${SIZE}
`
	var d doc
	pos, ps := Decode([]byte(data), "d.yaml", envOf(), &d)
	if pos == nil {
		t.Fatalf("nil positions for a YAML document: %v", ps.Err())
	}
	//nolint:misspell // the typo is the input under test
	want := strings.Join([]string{
		`d.yaml:1: nmae: unknown field (did you mean "name"?)`,
		`d.yaml:2: count: 300 is out of range`,
		`d.yaml:3: on: expected true or false, got "yes"`,
		`d.yaml:4: wait: expected a duration such as "10s" or "250ms", got 5 (add a unit)`,
		`d.yaml:5: items: expected a list, got a mapping`,
		`d.yaml:8: by_name.x.size: environment variable SIZE is not set (write ${SIZE:-default} to give a default)`,
	}, "\n")
	if err := ps.Err(); err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

// Without an environment, ${...} is text like any other.
func TestDecodeNilEnv(t *testing.T) {
	var d doc
	if _, ps := Decode([]byte("name: ${NAME}\n"), "d.yaml", nil, &d); len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	if d.Name != "${NAME}" {
		t.Errorf("name = %q", d.Name)
	}
}

func TestDecodeSyntaxError(t *testing.T) {
	var d doc
	pos, ps := Decode([]byte("name: [a\non: true\n"), "d.yaml", nil, &d)
	if pos != nil || len(ps) != 1 || ps[0].File != "d.yaml" || !strings.HasPrefix(ps[0].Msg, "malformed YAML: ") {
		t.Errorf("positions %v, problems %v", pos, ps.Err())
	}
}

func TestFields(t *testing.T) {
	names, index := Fields(reflect.TypeFor[doc]())
	if want := []string{"name", "count", "on", "wait", "items", "by_name"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names = %q, want %q", names, want)
	}
	if index["by_name"] != 5 || len(index) != len(names) {
		t.Errorf("index = %v", index)
	}
}

// Validation problems under a field that failed to decode are noise and
// are dropped; the rest are located at the nearest field written.
func TestWithoutAndLocate(t *testing.T) {
	failed := Problems{{Path: "items"}, {Path: "by_name.x"}}
	var ps Problems
	ps.Add("items[0].label", "required")
	ps.Add("items", "required")
	ps.Add("items_extra", "kept: only a prefix of the name")
	ps.Add("by_name.x.size", "too small")
	ps.Add("by_name.xy", "kept: a sibling")
	ps.Add("name", "kept, at %s", JoinPath("", "name"))
	ps = ps.Without(failed)
	Positions{"": 1, "name": 4, "by_name": 6}.Locate("d.yaml", ps)
	want := "d.yaml:1: items_extra: kept: only a prefix of the name\n" +
		"d.yaml:4: name: kept, at name\n" +
		"d.yaml:6: by_name.xy: kept: a sibling"
	if err := ps.Err(); err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
	if got := JoinPath("by_name", "x"); got != "by_name.x" {
		t.Errorf("JoinPath = %q", got)
	}
}

func TestDecodeOptional(t *testing.T) {
	var d struct {
		Flag  *bool `yaml:"flag"`
		Other *bool `yaml:"other"`
	}
	if _, ps := Decode([]byte("flag: false\n"), "o.yaml", nil, &d); len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	if d.Flag == nil || *d.Flag || d.Other != nil {
		t.Errorf("flag = %v, other = %v: want a false flag and no other", d.Flag, d.Other)
	}
}
