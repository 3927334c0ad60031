package mapping

import (
	"strings"
	"testing"
)

// Every validation message, with the line and field it names.
func TestValidationMessages(t *testing.T) {
	const cols = "columns:\n  - {source: id, target: accountnumber}\n"
	tests := []struct {
		name, body string
		want       []string
	}{{
		name: "filter syntax",
		body: byAccountNumber + "filter: 'a +'\n" + cols,
		want: []string{`v.yaml:5: filter: unexpected token EOF (at 1:3 of the expression)`},
	}, {
		name: "column origins",
		body: byAccountNumber + `columns:
  - {source: id, target: accountnumber}
  - {target: name}
  - {source: a, expr: b, target: description}
  - {constant: "1", default: "2", target: revenue}
  - {expr: "a +", target: fax}
`,
		want: []string{
			`v.yaml:7: columns[1].source: required: the source column's name (or give expr or constant)`,
			`v.yaml:8: columns[2].expr: give only one of source, expr and constant (this column also has source)`,
			`v.yaml:9: columns[3].default: a constant is never NULL; drop default`,
			`v.yaml:10: columns[4].expr: unexpected token EOF (at 1:3 of the expression)`,
		},
	}, {
		name: "directions",
		body: byAccountNumber + `columns:
  - {source: id, target: accountnumber}
  - {source: a, target: name, direction: from-dataverse}
  - {source: b, target: fax, direction: up}
`,
		want: []string{
			`v.yaml:7: columns[1].direction: from-dataverse in a to-dataverse mapping: the column would never sync; drop it or make the mapping both`,
			`v.yaml:8: columns[2].direction: "up" is not one of: to-dataverse, from-dataverse, both`,
		},
	}, {
		name: "directions of columns that cannot flow back",
		body: byAccountNumber + `direction: both
columns:
  - {source: id, target: accountnumber}
  - {expr: a, target: name, direction: both}
  - {source: p, target: parentaccountid, direction: from-dataverse, lookup: {table: account, key: accountnumber}}
`,
		want: []string{
			`v.yaml:8: columns[1].direction: both needs a source column to write back to; a computed column only flows to-dataverse`,
			`v.yaml:9: columns[2].direction: from-dataverse is not supported for lookups; they flow to-dataverse only`,
		},
	}, {
		name: "choices",
		body: byAccountNumber + `direction: both
columns:
  - {source: id, target: accountnumber}
  - {source: a, target: c1, type: integer, choices: {unmapped: default}}
  - {source: b, target: c2, choices: {values: {x: 1}, default: "1", separator: ";"}}
  - {source: c, target: c3, choices: {values: {x: 1}, unmapped: maybe}}
  - {source: d, target: c4, choices: {values: {x: 1}, unmapped: default, default: one}}
  - {source: e, target: c5, choices: {values: {x: 1, y: 1}}}
  - {source: f, target: c6, choices: {values: {x: 1}}, lookup: {table: account, key: accountnumber}}
`,
		want: []string{
			`v.yaml:8: columns[1].choices.values: required: the source values and their option values, such as {gold: 100000000}`,
			`v.yaml:8: columns[1].choices: choices write option values; drop type: integer`,
			`v.yaml:8: columns[1].choices.default: required with unmapped: default: the option value to write`,
			`v.yaml:9: columns[2].choices.default: only used with unmapped: default`,
			`v.yaml:9: columns[2].choices.separator: only used with multi: true`,
			`v.yaml:10: columns[3].choices.unmapped: "maybe" is not one of: error, default, skip`,
			`v.yaml:11: columns[4].choices.default: "one" is not an option value (an integer)`,
			`v.yaml:12: columns[5].choices.values.y: option 1 is also the value of "x", so it cannot be mapped back from Dataverse; make the column's direction to-dataverse`,
			`v.yaml:13: columns[6].choices: a column is either a choice or a lookup, not both`,
		},
	}, {
		name: "lookups",
		body: byAccountNumber + `columns:
  - {source: id, target: accountnumber}
  - {source: a, target: parent-id, lookup: {entity_set: "a b"}}
  - {source: b, target: p2, lookup: {table: Account, key: Number}}
  - {source: c, target: p3, lookup: {table: account, id: guess}}
  - {source: d, target: p4, lookup: {table: account, id: uuid5, key: accountnumber}}
`,
		want: []string{
			`v.yaml:7: columns[1].target: "parent-id" is not a navigation property name (letters, digits and _)`,
			`v.yaml:7: columns[1].lookup.table: required: the parent table's logical name, such as account`,
			`v.yaml:7: columns[1].lookup.key: required: the parent's alternate key attribute that the source column holds (or give id)`,
			`v.yaml:7: columns[1].lookup.entity_set: "a b" is not an entity set name (letters, digits and _)`,
			`v.yaml:8: columns[2].lookup.table: "Account" is not a logical name (lower-case letters, digits and _)`,
			`v.yaml:8: columns[2].lookup.key: "Number" is not a logical name (lower-case letters, digits and _)`,
			`v.yaml:9: columns[3].lookup.id: "guess" is not one of: uuid5, column`,
			`v.yaml:10: columns[4].lookup.id: give either key or id, not both`,
		},
	}, {
		name: "alternate key attributes that are not plain source columns",
		body: `key: {alternate_key: [accountnumber, name, cr1_tier]}
columns:
  - {source: id, target: accountnumber}
  - {expr: a, target: name}
  - {source: t, target: cr1_tier, choices: {values: {x: 1}}}
`,
		want: []string{
			`v.yaml:4: key.alternate_key[1]: "name" must come from a source column, so that deletes can find it`,
			`v.yaml:4: key.alternate_key[2]: "cr1_tier" is a lookup or choice column; key attributes are written as they are`,
		},
	}, {
		name: "a key attribute flowing one way in a both mapping",
		body: "direction: both\n" + byAccountNumber + "columns:\n  - {source: id, target: accountnumber, direction: to-dataverse}\n",
		want: []string{`v.yaml:5: key.alternate_key[0]: "accountnumber" flows to-dataverse only; a key attribute flows both, like its mapping`},
	}, {
		name: "both kinds of key",
		body: "key: {alternate_key: [accountnumber], id: {column: x}}\n" + cols,
		want: []string{`v.yaml:4: key.id: give either alternate_key or id, not both`},
	}, {
		name: "id with neither uuid5 nor column",
		body: "key: {id: {attribute: Account-Id}}\n" + cols,
		want: []string{
			`v.yaml:4: key.id: give uuid5 or column`,
			`v.yaml:4: key.id.attribute: "Account-Id" is not a logical name (lower-case letters, digits and _)`,
		},
	}, {
		name: "id with both",
		body: "key: {id: {column: x, uuid5: {namespace: 6ba7b811-9dad-11d1-80b4-00c04fd430c8}}}\n" + cols,
		want: []string{`v.yaml:4: key.id.column: give either uuid5 or column, not both`},
	}, {
		name: "uuid5 namespace and direction",
		body: "direction: both\nkey: {id: {uuid5: {namespace: not-a-uuid}}}\n" + cols,
		want: []string{
			`v.yaml:5: key.id.uuid5.namespace: "not-a-uuid" is not a UUID`,
			`v.yaml:5: key.id.uuid5: a derived id cannot be mapped back from Dataverse; use id.column or alternate_key with direction both`,
		},
	}, {
		name: "soft without deletes: soft",
		body: byAccountNumber + cols + "soft: {column: cr1_deleted}\n",
		want: []string{`v.yaml:7: soft: only used with deletes: soft`},
	}, {
		name: "deletes: soft without soft",
		body: byAccountNumber + cols + "deletes: soft\n",
		want: []string{`v.yaml:1: soft: required with deletes: soft: set, column or both`},
	}, {
		name: "soft attributes",
		body: byAccountNumber + "columns:\n  - {source: id, target: accountnumber}\n  - {source: s, target: statecode}\n" +
			"deletes: soft\nsoft:\n  set: {statecode: 1, Bad: 2}\n  column: accountnumber\n",
		want: []string{
			`v.yaml:10: soft.set.Bad: "Bad" is not a logical name (lower-case letters, digits and _)`,
			`v.yaml:10: soft.set.statecode: "statecode" is also the target of a column; a soft delete would fight the upserts`,
			`v.yaml:11: soft.column: "accountnumber" is also written by a column or soft.set`,
		},
	}, {
		name: "soft column name",
		body: byAccountNumber + cols + "deletes: soft\nsoft: {column: Deleted}\n",
		want: []string{`v.yaml:8: soft.column: "Deleted" is not a logical name (lower-case letters, digits and _)`},
	}}
	for _, tt := range tests {
		_, err := Parse([]byte(head+tt.body), "v.yaml")
		if got, want := errText(err), strings.Join(tt.want, "\n"); got != want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", tt.name, got, want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Problems only compiling finds: expressions that do not type-check,
// constants and defaults that cannot be written, lookups without an entity
// set, and two mappings writing one Dataverse table back to a connection.
func TestCompileMessages(t *testing.T) {
	const noSet = "version: 1\nsource: {connection: app, table: public.t}\ndataverse: {table: contact}\n"
	tests := []struct {
		name  string
		files []string
		want  []string
	}{{
		name: "expressions, constants and defaults",
		files: []string{head + byAccountNumber + `filter: 'len(1)'
columns:
  - {source: id, target: accountnumber}
  - {expr: '1 + "a"', target: name}
  - {constant: lots, target: numberofemployees, type: integer}
  - {source: tier, target: customertypecode, default: platinum, choices: {values: {gold: 1}}}
  - {source: n, target: revenue, type: money, default: "n/a"}
  - {constant: bronze, target: cr1_tier, choices: {values: {gold: 1}, unmapped: skip}}
`},
		want: []string{
			`m0.yaml:5: filter: invalid argument for len (type int) (at 1:1 of the expression)`,
			`m0.yaml:8: columns[1].expr: invalid operation: + (mismatched types int and string) (at 1:3 of the expression)`,
			`m0.yaml:9: columns[2].constant: "lots" cannot convert a text value to integer: the value does not parse`,
			`m0.yaml:10: columns[3].default: "platinum" the value is not one of the choices' values`,
			`m0.yaml:11: columns[4].default: "n/a" cannot convert a text value to money: the value does not parse`,
			`m0.yaml:12: columns[5].constant: "bronze" is not one of the choices' values`,
		},
	}, {
		name: "lookup without an entity set",
		files: []string{noSet + "key: {alternate_key: [emailaddress1]}\ncolumns:\n  - {source: e, target: emailaddress1}\n" +
			"  - {source: p, target: parentcustomerid_contact, lookup: {table: contact, key: emailaddress1}}\n"},
		want: []string{`m0.yaml:7: columns[1].lookup.entity_set: required: no mapping gives the entity set of contact; write it here or in that mapping's dataverse.entity_set`},
	}, {
		name: "uuid5 lookup without a parent deriving ids",
		files: []string{head + byAccountNumber + "columns:\n  - {source: id, target: accountnumber}\n" +
			"  - {source: p, target: parentaccountid, lookup: {table: account, id: uuid5}}\n"},
		want: []string{`m0.yaml:7: columns[1].lookup.id: uuid5 needs a mapping of account whose key is id.uuid5, to take its namespace from`},
	}, {
		name: "uuid5 lookup to a parent whose mappings disagree",
		files: []string{
			noSet + "key: {id: {uuid5: {namespace: 6ba7b811-9dad-11d1-80b4-00c04fd430c8}}}\ncolumns:\n  - {source: e, target: emailaddress1}\n" +
				"  - {source: p, target: parentcustomerid_contact, lookup: {table: contact, id: uuid5, entity_set: contacts}}\n",
			strings.Replace(noSet, "public.t", "public.u", 1) + "name: u\nkey: {id: {uuid5: {namespace: 6ba7b810-9dad-11d1-80b4-00c04fd430c8}}}\ncolumns:\n  - {source: e, target: emailaddress1}\n",
		},
		want: []string{`m0.yaml:7: columns[1].lookup.id: the mappings of contact derive ids in different namespaces; a lookup cannot tell which`},
	}, {
		name: "two mappings writing one table back",
		files: []string{
			head + byAccountNumber + "direction: both\ncolumns:\n  - {source: id, target: accountnumber}\n",
			strings.Replace(head, "public.t", "public.u", 1) + byAccountNumber + "direction: from-dataverse\nname: u\ncolumns:\n  - {source: id, target: accountnumber}\n",
		},
		want: []string{`m1.yaml:3: dataverse.table: account is already mapped back to connection app by m0.yaml:3`},
	}}
	for _, tt := range tests {
		var ms []*Mapping
		for i, f := range tt.files {
			m, err := Parse([]byte(f), "m"+string(rune('0'+i))+".yaml")
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			ms = append(ms, m)
		}
		_, err := Compile(ms)
		if got, want := errText(err), strings.Join(tt.want, "\n"); got != want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", tt.name, got, want)
		}
	}
}
