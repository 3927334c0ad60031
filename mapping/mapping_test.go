package mapping

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const customers = `version: 1
source:
  connection: app
  table: public.customers
dataverse:
  table: account
  entity_set: accounts
key:
  alternate_key: [accountnumber]
columns:
  - {source: id,    target: accountnumber, type: string}
  - {source: name,  target: name}
  - {source: email, target: emailaddress1}
`

func TestParse(t *testing.T) {
	m, err := Parse([]byte(customers), "mappings/customers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &Mapping{
		Version:   1,
		Name:      "customers",
		Source:    Source{Connection: "app", Table: "public.customers"},
		Dataverse: Dataverse{Table: "account", EntitySet: "accounts"},
		Direction: ToDataverse,
		Key:       Key{AlternateKey: []string{"accountnumber"}},
		Columns: []Column{
			{Source: "id", Target: "accountnumber", Type: TypeString},
			{Source: "name", Target: "name"},
			{Source: "email", Target: "emailaddress1"},
		},
		Deletes: DeletesDelete,
		File:    "mappings/customers.yaml",
		Line:    1,
	}
	m.pos = nil
	if !reflect.DeepEqual(m, want) {
		t.Errorf("got  %#v\nwant %#v", m, want)
	}
}

func TestParseExplicitFields(t *testing.T) {
	data := "# leading comment\n" + customers + "name: crm-accounts\ndirection: to-dataverse\ndeletes: ignore\n"
	m, err := Parse([]byte(data), "x.yml")
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "crm-accounts" || m.Deletes != DeletesIgnore || m.Line != 2 {
		t.Errorf("Name=%q Deletes=%q Line=%d", m.Name, m.Deletes, m.Line)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	data := `version: 1
source:
  connection: app
  table: customers
dataverse:
  table: Account
direction: sideways
key:
  alternate_key: [accountnumber, code, code]
columns:
  - {source: id, target: accountnumber, type: strng}
  - {source: name, target: name}
  - {source: email, tagret: emailaddress1}
  - {source: mail, target: name}
deletes: hard
`
	_, err := Parse([]byte(data), "mappings/customers.yaml")
	want := []string{
		`mappings/customers.yaml:4: source.table: "customers" is not schema-qualified; write it as schema.table, such as public.customers`,
		`mappings/customers.yaml:6: dataverse.table: "Account" is not a logical name (lower-case letters, digits and _)`,
		`mappings/customers.yaml:7: direction: "sideways" is not one of: to-dataverse, from-dataverse, both`,
		`mappings/customers.yaml:9: key.alternate_key[1]: "code" is not the target of any column; map the source column that holds it`,
		`mappings/customers.yaml:9: key.alternate_key[2]: "code" is not the target of any column; map the source column that holds it`,
		`mappings/customers.yaml:9: key.alternate_key[2]: "code" is listed twice`,
		`mappings/customers.yaml:11: columns[0].type: unknown type "strng" (did you mean "string"?)`,
		`mappings/customers.yaml:13: columns[2].tagret: unknown field (did you mean "target"?)`,
		`mappings/customers.yaml:13: columns[2].target: required: the Dataverse attribute's logical name`,
		`mappings/customers.yaml:14: columns[3].target: "name" is already the target of columns[1]`,
		`mappings/customers.yaml:15: deletes: "hard" is not one of: delete, ignore, soft`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestParseDirections(t *testing.T) {
	for dir, want := range map[string]string{
		"from-dataverse": "",
		"both":           "",
		"sideways":       `m.yaml:14: direction: "sideways" is not one of: to-dataverse, from-dataverse, both`,
	} {
		m, err := Parse([]byte(customers+"direction: "+dir+"\n"), "m.yaml")
		if want == "" && (err != nil || m.Direction != Direction(dir)) || want != "" && (err == nil || err.Error() != want) {
			t.Errorf("direction %s: got %v", dir, err)
		}
	}
}

func TestParseMissingRequired(t *testing.T) {
	_, err := Parse([]byte("version: 1\ncolumns: []\n"), "e.yaml")
	want := `e.yaml:1: source.connection: required: a name under connections: in the daemon config
e.yaml:1: source.table: required: a schema-qualified table such as public.customers (or topic, for Kafka)
e.yaml:1: dataverse.table: required: the table's logical name, such as account
e.yaml:1: key.alternate_key: required: the attributes of a Dataverse alternate key (or give key.id)
e.yaml:2: columns: required: at least one column`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestParseTypeMismatch(t *testing.T) {
	data := strings.Replace(customers, "alternate_key: [accountnumber]", "alternate_key: accountnumber", 1)
	data = strings.Replace(data, "version: 1", "version: one", 1)
	_, err := Parse([]byte(data), "t.yaml")
	want := `t.yaml:1: version: expected an integer, got "one"
t.yaml:9: key.alternate_key: expected a list, got "accountnumber"`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestParseDoesNotExpandEnvironment(t *testing.T) {
	t.Setenv("DVSYNC_TABLE", "public.other")
	m, err := Parse([]byte(strings.Replace(customers, "public.customers", "public.${DVSYNC_TABLE}", 1)), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if m.Source.Table != "public.${DVSYNC_TABLE}" {
		t.Errorf("table = %q", m.Source.Table)
	}
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadFiles(t *testing.T) {
	contacts := strings.NewReplacer("public.customers", "public.contacts", "account", "contact",
		"accounts", "contacts").Replace(customers)
	dir := writeFiles(t, map[string]string{"customers.yaml": customers, "contacts.yaml": contacts})
	ms, err := LoadFiles([]string{filepath.Join(dir, "customers.yaml"), filepath.Join(dir, "contacts.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].Name != "customers" || ms[1].Name != "contacts" {
		t.Fatalf("got %d mappings", len(ms))
	}
}

func TestLoadFilesReportsProblemsAcrossFiles(t *testing.T) {
	copy1 := "name: a\n" + strings.Replace(customers, "entity_set: accounts", "entity_set: accountset", 1)
	broken := strings.Replace(customers, "version: 1", "version: 3", 1)
	dir := writeFiles(t, map[string]string{"a.yaml": customers, "b.yaml": copy1, "c.yaml": broken})
	a, b, c := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml"), filepath.Join(dir, "c.yaml")
	_, err := LoadFiles([]string{a, b, c, filepath.Join(dir, "missing.yaml")})
	if err == nil {
		t.Fatal("LoadFiles succeeded")
	}
	want := []string{
		c + ":1: version: unsupported version 3; this dvsync reads version 1",
		"mapping: open " + filepath.Join(dir, "missing.yaml") + ": no such file or directory",
		b + ":1: name: mapping name \"a\" is already used by " + a + ":1",
		b + ":5: source.table: public.customers on connection app is already mapped by " + a + ":4",
		b + ":8: dataverse.entity_set: \"accountset\" differs from \"accounts\" given for account by " + a + ":7",
	}
	if err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Error("the read error is not wrapped")
	}
}

func TestCompileValidatesMappingsBuiltInCode(t *testing.T) {
	m := &Mapping{
		Version: 1, Name: "x", Source: Source{Connection: "app", Table: "public.x"},
		Dataverse: Dataverse{Table: "account"}, Direction: ToDataverse, Deletes: DeletesDelete,
		Key:     Key{AlternateKey: []string{"accountnumber"}},
		Columns: []Column{{Source: "id", Target: "name"}},
		File:    "code", Line: 1,
	}
	_, err := Compile([]*Mapping{m})
	want := `code:1: key.alternate_key[0]: "accountnumber" is not the target of any column; map the source column that holds it`
	if err == nil || err.Error() != want {
		t.Errorf("got %v", err)
	}
	m.Columns[0].Target = "accountnumber"
	if _, err := Compile([]*Mapping{m}); err != nil {
		t.Error(err)
	}
}

func TestSet(t *testing.T) {
	parse := func(data, file string) *Mapping {
		m, err := Parse([]byte(data), file)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	contacts := strings.NewReplacer("public.customers", "public.contacts", "account", "contact",
		"  entity_set: accounts\n", "").Replace(customers)
	orders := strings.NewReplacer("connection: app", "connection: erp", "public.customers", "sales.orders").Replace(customers)
	s, err := Compile([]*Mapping{
		parse(customers, "customers.yaml"), parse(contacts, "contacts.yaml"), parse(orders, "orders.yaml"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Connections(); !reflect.DeepEqual(got, []string{"app", "erp"}) {
		t.Errorf("Connections = %q", got)
	}
	if got := s.Tables("app"); !reflect.DeepEqual(got, []string{"public.contacts", "public.customers"}) {
		t.Errorf("Tables(app) = %q", got)
	}
	if got := s.Tables("none"); got != nil {
		t.Errorf("Tables(none) = %q", got)
	}
	if got := s.EntitySets(); !reflect.DeepEqual(got, map[string]string{"account": "accounts"}) {
		t.Errorf("EntitySets = %v", got)
	}
	s.EntitySets()["account"] = "changed"
	if s.EntitySets()["account"] != "accounts" {
		t.Error("EntitySets returned the Set's own map")
	}
	if s.Mapper("app") == nil || s.Mapper("none") != nil {
		t.Error("Mapper lookup")
	}
}
