package yamlfile

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

const page = "# Title\n\n```yaml\na: 1\nb: x\n```\n\n| Field | Meaning |\n|---|---|\n| `a` | first |\n| `inner.c` | nested |\n\ntext\n| `not.a.field` | after the table ended |\n\n```yaml\nbad: [\n```\n"

func TestMarkdownBlocks(t *testing.T) {
	blocks, err := MarkdownBlocks(page)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{{Text: "a: 1\nb: x\n", Line: 4}, {Text: "bad: [\n", Line: 17}}
	if !reflect.DeepEqual(blocks, want) {
		t.Fatalf("blocks = %+v, want %+v", blocks, want)
	}
	if _, err := MarkdownBlocks("```yaml\na: 1\n"); err == nil {
		t.Error("an unterminated block was accepted")
	}
}

func TestInPageNamesThePageLine(t *testing.T) {
	var ps Problems
	ps.Add("b", "wrong")
	ps[0].File, ps[0].Line = "block.yaml", 2
	err := InPage(ps.Err(), "docs/x.md", Block{Line: 10})
	if got := err.Error(); !strings.HasPrefix(got, "docs/x.md:11: b: wrong") {
		t.Errorf("InPage = %q, want docs/x.md:11", got)
	}
}

func TestFieldTableAndPaths(t *testing.T) {
	if got := FieldTable(page); !slices.Equal(got, []string{"a", "inner.c"}) {
		t.Errorf("FieldTable = %q", got)
	}
	type inner struct {
		C string `yaml:"c"`
	}
	type conf struct {
		A     int              `yaml:"a"`
		Inner inner            `yaml:"inner"`
		Named map[string]inner `yaml:"named"`
		List  []inner          `yaml:"list"`
	}
	got := FieldPaths(reflect.TypeFor[conf]())
	want := []string{"a", "inner.c", "named.<name>.c", "list[].c"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("FieldPaths = %q, want %q", got, want)
	}
}
