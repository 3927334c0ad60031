package mapping

import (
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

// Every example in the reference is a complete mapping file, and all of
// them load and compile together.
func TestDocExamplesParse(t *testing.T) {
	page, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := yamlfile.MarkdownBlocks(string(page))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 4 {
		t.Fatalf("found only %d yaml blocks in %s", len(blocks), docPath)
	}
	var ms []*Mapping
	for i, b := range blocks {
		m, err := Parse([]byte(b.Text), "example"+strconv.Itoa(i)+".yaml")
		if err != nil {
			t.Errorf("an example does not parse:\n%v", yamlfile.InPage(err, docPath, b))
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
	fields := yamlfile.FieldPaths(reflect.TypeFor[Mapping]())
	if len(fields) < 10 {
		t.Fatalf("found only %d fields", len(fields))
	}
	documented := yamlfile.FieldTable(string(page))
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
