package mapping

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/yamlfile"
)

const docPath = "../docs/mapping.md"

// yamlBlocks returns the ```yaml blocks of a Markdown page with the line
// each starts on.
func yamlBlocks(t *testing.T, page string) (blocks []string, lines []int) {
	t.Helper()
	var cur []string
	in := false
	for i, line := range strings.Split(page, "\n") {
		switch {
		case !in && strings.TrimSpace(line) == "```yaml":
			in, cur = true, nil
			lines = append(lines, i+2)
		case in && strings.TrimSpace(line) == "```":
			in = false
			blocks = append(blocks, strings.Join(cur, "\n")+"\n")
		case in:
			cur = append(cur, line)
		}
	}
	if in {
		t.Fatal("unterminated ```yaml block")
	}
	return blocks, lines
}

// inPage moves the problems in a block to lines of the page.
func inPage(err error, blockLine int) error {
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			if p := (*Problem)(nil); errors.As(e, &p) && p.Line > 0 {
				p.File = docPath
				p.Line += blockLine - 1
			}
		}
	}
	return err
}

// Every example in the reference is a complete mapping file, and all of
// them load and compile together.
func TestDocExamplesParse(t *testing.T) {
	page, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks, lines := yamlBlocks(t, string(page))
	if len(blocks) < 4 {
		t.Fatalf("found only %d yaml blocks in %s", len(blocks), docPath)
	}
	var ms []*Mapping
	for i, block := range blocks {
		m, err := Parse([]byte(block), "example"+strconv.Itoa(i)+".yaml")
		if err != nil {
			t.Errorf("an example does not parse:\n%v", inPage(err, lines[i]))
			continue
		}
		ms = append(ms, m)
	}
	if _, err := Compile(ms); err != nil {
		t.Errorf("the examples do not compile together:\n%v", err)
	}
}

// Every field the structs accept is in the reference table, and every
// field in the table exists; every attribute type is in the types table.
func TestDocCoversEveryField(t *testing.T) {
	page, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	fields := fieldPaths(reflect.TypeFor[Mapping](), "")
	if len(fields) < 10 {
		t.Fatalf("found only %d fields", len(fields))
	}
	documented := tableFields(string(page))
	for _, f := range fields {
		if !slices.Contains(documented, f) {
			t.Errorf("field %s is not in the reference table of %s", f, docPath)
		}
	}
	for _, d := range documented {
		if !slices.Contains(fields, d) {
			t.Errorf("%s documents %s, which a mapping does not have", docPath, d)
		}
	}
	typeRows := regexp.MustCompile("(?m)^\\| (`[a-z]+`(?:, `[a-z]+`)*) \\|").FindAllStringSubmatch(string(page), -1)
	var types []string
	for _, m := range typeRows {
		for _, name := range strings.Split(m[1], ", ") {
			types = append(types, strings.Trim(name, "`"))
		}
	}
	for _, typ := range typeNames() {
		if !slices.Contains(types, typ) {
			t.Errorf("type %s is not in the column types table of %s", typ, docPath)
		}
	}
}

// tableFields returns the field paths that start the rows of the Markdown
// tables headed "| Field |".
func tableFields(page string) []string {
	row := regexp.MustCompile("^\\| `([^`]+)` \\|")
	var out []string
	inFields := false
	for _, line := range strings.Split(page, "\n") {
		switch {
		case strings.HasPrefix(line, "| Field |"):
			inFields = true
		case !strings.HasPrefix(line, "|"):
			inFields = false
		case inFields:
			if m := row.FindStringSubmatch(line); m != nil {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// fieldPaths lists the leaf fields of a mapping type as the reference
// names them: "source.table", "columns[].target".
func fieldPaths(t reflect.Type, prefix string) []string {
	var out []string
	names, index := yamlfile.Fields(t)
	for _, name := range names {
		ft := t.Field(index[name]).Type
		path := yamlfile.JoinPath(prefix, name)
		switch {
		case ft.Kind() == reflect.Struct:
			out = append(out, fieldPaths(ft, path)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, fieldPaths(ft.Elem(), path+"[]")...)
		default:
			out = append(out, path)
		}
	}
	return out
}

// The demo's mapping must load and map a row of the demo table the way
// the demo shows it.
func TestDeployExample(t *testing.T) {
	path := filepath.Join("..", "deploy", "examples", "mappings", "customers.yaml")
	ms, err := LoadFiles([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile(ms)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Tables("app"), []string{"public.customers"}) {
		t.Fatalf("Tables(app) = %q", s.Tables("app"))
	}
	rec := change.Record{
		Op:    change.OpInsert,
		Table: "public.customers",
		Key:   change.Key{{Name: "id", Value: change.Int(42)}},
		After: change.Row{
			{Name: "id", Value: change.Int(42)},
			{Name: "name", Value: change.Text("Contoso")},
			{Name: "email", Value: change.Text("info@contoso.com")},
			{Name: "phone", Value: change.Null()},
			{Name: "credit_limit", Value: change.MustDecimal("5000.00")},
			{Name: "employees", Value: change.Int(120)},
		},
	}
	out, ok, err := s.Mapper("app").Map(&rec)
	if err != nil || !ok {
		t.Fatalf("Map = %v, %v", ok, err)
	}
	want := change.Record{
		Op:    change.OpInsert,
		Table: "account",
		Key:   change.Key{{Name: "accountnumber", Value: change.Text("42")}},
		After: change.Row{
			{Name: "accountnumber", Value: change.Text("42")},
			{Name: "name", Value: change.Text("Contoso")},
			{Name: "emailaddress1", Value: change.Text("info@contoso.com")},
			{Name: "telephone1", Value: change.Null()},
			{Name: "creditlimit", Value: change.MustDecimal("5000.00")},
			{Name: "numberofemployees", Value: change.Int(120)},
		},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got  %+v\nwant %+v", out, want)
	}
	if s.EntitySets()["account"] != "accounts" {
		t.Errorf("EntitySets = %v", s.EntitySets())
	}
}
