package emulator_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/emulator"
)

func TestExampleSchema(t *testing.T) {
	s, err := emulator.LoadSchema("../deploy/examples/schema.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Tables) != 2 || s.Tables[0].LogicalName != "account" || s.Tables[1].LogicalName != "contact" {
		t.Fatalf("tables %+v", s.Tables)
	}
	if _, err := emulator.New(s, emulator.Options{Token: "t"}); err != nil {
		t.Fatal(err)
	}
}

func TestParseSchema(t *testing.T) {
	s, err := emulator.ParseSchema([]byte(testSchema), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	acc := s.Tables[0]
	if acc.EntitySet != "accounts" || acc.PrimaryID != "accountid" || !acc.ChangeTracking || len(acc.Keys) != 1 {
		t.Errorf("account %+v", acc)
	}
	lat := acc.Attributes[7]
	if lat.Name != "latitude" || lat.Type != "double" || lat.Precision == nil || *lat.Precision != 5 {
		t.Errorf("latitude %+v", lat)
	}
	if a := s.Tables[1].Attributes[3]; a.Type != "lookup" || len(a.Targets) != 2 {
		t.Errorf("parentcustomerid %+v", a)
	}
}

func TestSchemaErrors(t *testing.T) {
	const header = "tables:\n  - logical_name: account\n    entity_set: accounts\n    attributes:\n"
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings of the error, in any order
	}{
		{"unknown field", header + "      - {name: name, type: string, maxlength: 10}\n",
			[]string{"s.yaml:5:", `unknown field "maxlength"`}},
		{"unknown table field", "tables:\n  - logical_name: account\n    entityset: accounts\n",
			[]string{"s.yaml:3:", `unknown field "entityset"`}},
		{"wrong value type", header + "      - {name: name, type: string, max_length: long}\n",
			[]string{"s.yaml:5:"}},
		{"unknown type", header + "      - {name: name, type: text}\n",
			[]string{`s.yaml:5: tables[0].attributes[0].type: unknown type "text"`}},
		{"missing entity set", "tables:\n  - logical_name: account\n    attributes: []\n",
			[]string{"s.yaml:2: tables[0].entity_set: is required"}},
		{"no tables", "tables: []\n", []string{"s.yaml:1: tables: at least one table is required"}},
		{"bad logical name", "tables:\n  - logical_name: Account\n    entity_set: accounts\n",
			[]string{"s.yaml:2: tables[0].logical_name:", "not a logical name"}},
		{"reserved entity set", "tables:\n  - logical_name: x\n    entity_set: WhoAmI\n",
			[]string{"s.yaml:3: tables[0].entity_set:", "reserved"}},
		{"system column", header + "      - {name: createdon, type: datetime}\n",
			[]string{"s.yaml:5: tables[0].attributes[0].name:", "system column"}},
		{"primary id clash", header + "      - {name: accountid, type: uniqueidentifier}\n",
			[]string{"tables[0].attributes[0].name:", "primary id"}},
		{"duplicate attribute", header + "      - {name: a, type: string}\n      - {name: a, type: integer}\n",
			[]string{"s.yaml:6: tables[0].attributes[1].name:"}},
		{"max_length on an integer", header + "      - {name: n, type: integer, max_length: 4}\n",
			[]string{"s.yaml:5: tables[0].attributes[0].max_length:", "only string and memo"}},
		{"max_length too large", header + "      - {name: n, type: string, max_length: 5000}\n",
			[]string{"tables[0].attributes[0].max_length:", "out of range"}},
		{"precision out of range", header + "      - {name: n, type: money, precision: 6}\n",
			[]string{"tables[0].attributes[0].precision:", "0..4"}},
		{"picklist without options", header + "      - {name: p, type: picklist}\n",
			[]string{"tables[0].attributes[0].options:", "at least one option"}},
		{"lookup to an unknown table", header + "      - {name: l, type: lookup, targets: [nosuch]}\n",
			[]string{"s.yaml:5: tables[0].attributes[0].targets[0]:", `"nosuch"`}},
		{"primary name not a string", "tables:\n  - logical_name: a\n    entity_set: as\n    primary_name: n\n    attributes:\n      - {name: n, type: integer}\n",
			[]string{"s.yaml:4: tables[0].primary_name:", "must be a string"}},
		{"key on an unknown column", header + "      - {name: a, type: string}\n    keys:\n      - {name: k, attributes: [b]}\n",
			[]string{"s.yaml:7: tables[0].keys[0].attributes[0]:", `"b" is not one of`}},
		{"key on a memo", header + "      - {name: m, type: memo}\n    keys:\n      - {name: k, attributes: [m]}\n",
			[]string{"tables[0].keys[0].attributes[0]:", "cannot be part of a key"}},
		{"duplicate tables", "tables:\n  - {logical_name: a, entity_set: as}\n  - {logical_name: a, entity_set: as}\n",
			[]string{"s.yaml:3: tables[1].logical_name:", "s.yaml:3: tables[1].entity_set:"}},
		{"unsupported version", "version: 2\ntables:\n  - {logical_name: a, entity_set: as}\n",
			[]string{"s.yaml:1: version: unsupported version 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := emulator.ParseSchema([]byte(tc.yaml), "s.yaml")
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSchemaErrorsAreJoined(t *testing.T) {
	const y = "tables:\n  - logical_name: a\n    attributes:\n      - {name: x, type: nope}\n"
	_, err := emulator.ParseSchema([]byte(y), "s.yaml")
	if err == nil || !strings.Contains(err.Error(), "entity_set: is required") || !strings.Contains(err.Error(), `unknown type "nope"`) {
		t.Fatalf("want both problems, got %v", err)
	}
}

func TestLoadSchemaNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("tables:\n  - logical_name: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := emulator.LoadSchema(path)
	if err == nil || !strings.Contains(err.Error(), path+":2: tables[0].entity_set") {
		t.Fatalf("error %v does not name %s:2", err, path)
	}
	if _, err := emulator.LoadSchema(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("no error for a missing file")
	}
}

func TestNewValidatesSchema(t *testing.T) {
	s := &emulator.Schema{Tables: []emulator.Table{{
		LogicalName: "account",
		EntitySet:   "accounts",
		Attributes:  []emulator.Attribute{{Name: "n", Type: "strng"}},
	}}}
	_, err := emulator.New(s, emulator.Options{Token: "t"})
	if err == nil || !strings.Contains(err.Error(), `tables[0].attributes[0].type: unknown type "strng"`) {
		t.Fatalf("error %v", err)
	}
	if _, err := emulator.New(nil, emulator.Options{Token: "t"}); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

func TestElasticPartitionColumn(t *testing.T) {
	_, err := emulator.ParseSchema([]byte(`
tables:
  - logical_name: dvs_event
    entity_set: dvs_events
    elastic: true
    attributes:
      - {name: partitionid, type: string}
`), "elastic.yaml")
	if err == nil || !strings.Contains(err.Error(), "partition column") {
		t.Errorf("error %v, want the partitionid clash", err)
	}
}

func TestSystemUserIsBuiltIn(t *testing.T) {
	_, err := emulator.ParseSchema([]byte(`
tables:
  - logical_name: systemuser
    entity_set: systemusers
    attributes:
      - {name: fullname, type: string}
`), "users.yaml")
	if err == nil || !strings.Contains(err.Error(), "provided by the emulator") {
		t.Errorf("error %v, want systemuser reserved", err)
	}
	// Lookups may point at it.
	if _, err := emulator.ParseSchema([]byte(`
tables:
  - logical_name: dvs_task
    entity_set: dvs_tasks
    attributes:
      - {name: dvs_ownerid, type: lookup, targets: [systemuser]}
`), "task.yaml"); err != nil {
		t.Error(err)
	}
}
