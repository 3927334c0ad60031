package mapping

import (
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/dvsync/dvsync/change"
)

const head = "version: 1\nsource: {connection: app, table: public.t}\ndataverse: {table: account, entity_set: accounts}\n"

// golden is one mapping applied to one record: the output record, or
// ok=false, or the error's text.
type golden struct {
	name    string
	mapping string // after head
	in      change.Record
	want    *change.Record // nil: dropped (ok=false, no error)
	err     string
}

func ins(after change.Row) change.Record {
	return change.Record{Op: change.OpInsert, Table: "public.t", Key: change.Key(row("id", change.Int(1))), After: after}
}

func upd(before, after change.Row) change.Record {
	return change.Record{Op: change.OpUpdate, Table: "public.t", Key: change.Key(row("id", change.Int(1))), Before: before, After: after}
}

func del(before change.Row) change.Record {
	return change.Record{Op: change.OpDelete, Table: "public.t", Key: change.Key(row("id", change.Int(1))), Before: before}
}

func want(op change.Op, key change.Key, after change.Row) *change.Record {
	return &change.Record{Op: op, Table: "account", Key: key, After: after}
}

func byNumber(n string) change.Key { return change.Key(row("accountnumber", change.Text(n))) }

func runGolden(t *testing.T, tests []golden, reverse bool) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp := compile(t, head+tt.mapping).Mapper("app")
			mapFn := mp.Map
			if reverse {
				mapFn = mp.MapToSource
			}
			out, ok, err := mapFn(&tt.in)
			switch {
			case tt.err != "":
				if err == nil || err.Error() != tt.err || !change.IsPermanent(err) || ok {
					t.Errorf("got ok=%v err=%v\nwant %s", ok, err, tt.err)
				}
			case err != nil:
				t.Fatalf("Map: %v", err)
			case tt.want == nil:
				if ok {
					t.Errorf("got %+v, want the record dropped", out)
				}
			case !ok:
				t.Errorf("dropped, want %+v", tt.want)
			case !reflect.DeepEqual(out, *tt.want):
				t.Errorf("got  %+v\nwant %+v", out, *tt.want)
			}
		})
	}
}

const byAccountNumber = "key: {alternate_key: [accountnumber]}\n"

func TestGoldenTransforms(t *testing.T) {
	runGolden(t, []golden{{
		name: "expression over two columns",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: 'first + " " + upper(last)', target: name}
  - {expr: 'amount * 2', target: creditlimit, type: money}
`,
		in: ins(row("id", change.Int(1), "first", change.Text("ada"), "last", change.Text("lovelace"), "amount", change.MustDecimal("2.5"))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"),
			"name", change.Text("ada LOVELACE"), "creditlimit", change.MustDecimal("5"))),
	}, {
		name: "expression returning nil writes NULL, then the default",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: 'code == "" ? nil : code', target: name, default: none}
`,
		in:   ins(row("id", change.Int(1), "code", change.Text(""))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "name", change.Text("none"))),
	}, {
		name: "expression reading an unchanged value leaves the attribute alone",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: 'len(notes)', target: numberofemployees}
`,
		in:   upd(nil, row("id", change.Int(1), "notes", change.Unchanged())),
		want: &change.Record{Op: change.OpUpdate, Table: "account", Key: byNumber("1"), After: row("accountnumber", change.Text("1"), "numberofemployees", change.Unchanged())},
	}, {
		name: "constants and defaults, converted to the column's type",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {constant: "7", target: numberofemployees, type: integer}
  - {constant: dvsync, target: description}
  - {source: phone, target: telephone1, default: unknown}
  - {source: limit, target: creditlimit, type: money, default: "0"}
`,
		in: ins(row("id", change.Int(1), "phone", change.Null(), "limit", change.Null())),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"),
			"telephone1", change.Text("unknown"), "creditlimit", change.MustDecimal("0"),
			"numberofemployees", change.Int(7), "description", change.Text("dvsync"))),
	}, {
		name: "dates, NULL and a nil-safe expression",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: 'birthday == nil ? nil : birthday.Year()', target: cr1_year, type: integer}
  - {expr: 'opened.Format("2006-01")', target: cr1_month}
  - {expr: 'nickname ?? "none"', target: nickname}
`,
		in: ins(row("id", change.Int(1), "birthday", change.Null(), "nickname", change.Null(),
			"opened", change.Date(time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC)))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"),
			"cr1_year", change.Null(), "cr1_month", change.Text("2024-05"), "nickname", change.Text("none"))),
	}, {
		name: "a column named like a builtin is the column",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: 'date + "/" + string(len)', target: name}
`,
		in:   ins(row("id", change.Int(1), "date", change.Text("d"), "len", change.Int(3))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "name", change.Text("d/3"))),
	}, {
		name: "expression reading a column not in the row",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: 'nickname', target: name}
`,
		in:  ins(row("id", change.Int(1))),
		err: "mapping m0.yaml: public.t id=1: computed column (target name) reads column nickname, which is not in the row",
	}, {
		name: "expression failing at run time",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: 'a + b', target: name}
`,
		in:  ins(row("id", change.Int(1), "a", change.Int(1), "b", change.Text("x"))),
		err: "mapping m0.yaml: public.t id=1: computed column (target name) failed: invalid operation: int + string (at 1:3 of the expression)",
	}, {
		name: "expression returning a list",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: '[a]', target: name}
`,
		in:  ins(row("id", change.Int(1), "a", change.Int(1))),
		err: "mapping m0.yaml: public.t id=1: computed column (target name) returned a []interface {}, which is not a column value",
	}, {
		name: "expression result that does not convert",
		mapping: byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {expr: 'a + "x"', target: numberofemployees, type: integer}
`,
		in:  ins(row("id", change.Int(1), "a", change.Text("1"))),
		err: "mapping m0.yaml: public.t id=1: computed column (target numberofemployees) cannot convert a text value to integer: the value does not parse",
	}}, false)
}

func TestGoldenKeys(t *testing.T) {
	ns := "6ba7b811-9dad-11d1-80b4-00c04fd430c8" // the URL namespace
	nsUUID := uuid.MustParse(ns)
	id42 := change.UUID(uuid.NewSHA1(nsUUID, []byte("42")))
	composite := change.UUID(uuid.NewSHA1(nsUUID, []byte("7/x")))
	guid, _ := change.ParseUUID("d6f193fc-ce85-e611-80d8-00155d2a68de")
	uuid5 := "key: {id: {uuid5: {namespace: " + ns + "}}}\ncolumns:\n  - {source: name, target: name}\n"
	runGolden(t, []golden{{
		name:    "uuid5 of the source key",
		mapping: uuid5,
		in: change.Record{Op: change.OpInsert, Table: "public.t", Key: change.Key(row("id", change.Int(42))),
			After: row("id", change.Int(42), "name", change.Text("n"))},
		want: want(change.OpInsert, change.Key(row("accountid", id42)), row("name", change.Text("n"))),
	}, {
		name:    "uuid5 of a composite key, values joined by /",
		mapping: uuid5,
		in: change.Record{Op: change.OpDelete, Table: "public.t",
			Key: change.Key(row("a", change.Int(7), "b", change.Text("x")))},
		want: want(change.OpDelete, change.Key(row("accountid", composite)), nil),
	}, {
		name:    "uuid5 with a NULL source key",
		mapping: uuid5,
		in:      change.Record{Op: change.OpDelete, Table: "public.t", Key: change.Key(row("id", change.Null()))},
		err:     "mapping m0.yaml: public.t id=<null>: the source key column id has no value to derive the id from",
	}, {
		name:    "id from a column, with its attribute named",
		mapping: "key: {id: {column: crm_id, attribute: accountid}}\ncolumns:\n  - {source: name, target: name}\n",
		in:      ins(row("id", change.Int(1), "crm_id", change.Text("{D6F193FC-CE85-E611-80D8-00155D2A68DE}"), "name", change.Text("n"))),
		want:    want(change.OpInsert, change.Key(row("accountid", guid)), row("name", change.Text("n"))),
	}, {
		name:    "id column in a delete's old row",
		mapping: "key: {id: {column: crm_id}}\ncolumns:\n  - {source: name, target: name}\n",
		in:      del(row("id", change.Int(1), "crm_id", guid)),
		want:    want(change.OpDelete, change.Key(row("accountid", guid)), nil),
	}, {
		name:    "id column missing from a delete",
		mapping: "key: {id: {column: crm_id}}\ncolumns:\n  - {source: name, target: name}\n",
		in:      del(nil),
		err:     "mapping m0.yaml: public.t id=1: key column crm_id (target accountid) is missing from the row",
	}, {
		name:    "id column NULL",
		mapping: "key: {id: {column: crm_id}}\ncolumns:\n  - {source: name, target: name}\n",
		in:      ins(row("crm_id", change.Null())),
		err:     "mapping m0.yaml: public.t id=1: key column crm_id (target accountid) is NULL, and a row's id cannot be",
	}, {
		name:    "id column that is not a GUID",
		mapping: "key: {id: {column: crm_id}}\ncolumns:\n  - {source: name, target: name}\n",
		in:      ins(row("crm_id", change.Text("nope"))),
		err:     "mapping m0.yaml: public.t id=1: key column crm_id (target accountid) cannot convert a text value to uniqueidentifier: the value does not parse",
	}}, false)
}

func TestGoldenChoices(t *testing.T) {
	single := func(policy string) string {
		return byAccountNumber + "columns:\n  - {source: id, target: accountnumber, type: string}\n" +
			"  - source: tier\n    target: customertypecode\n    choices: {values: {gold: 1, silver: 2, \"3\": 3}" + policy + "}\n"
	}
	multi := byAccountNumber + "columns:\n  - {source: id, target: accountnumber, type: string}\n" +
		"  - source: tags\n    target: cr1_tags\n    choices: {values: {red: 100, blue: 200}, multi: true, separator: ;}\n"
	runGolden(t, []golden{{
		name:    "mapped value",
		mapping: single(""),
		in:      ins(row("id", change.Int(1), "tier", change.Text("silver"))),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "customertypecode", change.Int(2))),
	}, {
		name:    "a number matched by its text",
		mapping: single(""),
		in:      ins(row("id", change.Int(1), "tier", change.Int(3))),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "customertypecode", change.Int(3))),
	}, {
		name:    "NULL stays NULL",
		mapping: single(""),
		in:      ins(row("id", change.Int(1), "tier", change.Null())),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "customertypecode", change.Null())),
	}, {
		name:    "unmapped: error",
		mapping: single(""),
		in:      ins(row("id", change.Int(1), "tier", change.Text("bronze"))),
		err:     "mapping m0.yaml: public.t id=1: column tier (target customertypecode) the value is not one of the choices' values",
	}, {
		name:    "unmapped: default",
		mapping: single(", unmapped: default, default: 3"),
		in:      ins(row("id", change.Int(1), "tier", change.Text("bronze"))),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "customertypecode", change.Int(3))),
	}, {
		name:    "unmapped: skip the column",
		mapping: single(", unmapped: skip"),
		in:      ins(row("id", change.Int(1), "tier", change.Text("bronze"))),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"))),
	}, {
		name:    "multi-select from text",
		mapping: multi,
		in:      ins(row("id", change.Int(1), "tags", change.Text("blue; red"))),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "cr1_tags", change.Text("200,100"))),
	}, {
		name:    "multi-select from a JSON array",
		mapping: multi,
		in:      ins(row("id", change.Int(1), "tags", change.JSON([]byte(`["red"]`)))),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "cr1_tags", change.Text("100"))),
	}, {
		name:    "multi-select empty clears the column",
		mapping: multi,
		in:      ins(row("id", change.Int(1), "tags", change.Text(""))),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "cr1_tags", change.Null())),
	}, {
		name:    "multi-select unmapped item",
		mapping: multi,
		in:      ins(row("id", change.Int(1), "tags", change.Text("red;green"))),
		err:     "mapping m0.yaml: public.t id=1: column tags (target cr1_tags) the value is not one of the choices' values",
	}, {
		name:    "multi-select from a number",
		mapping: multi,
		in:      ins(row("id", change.Int(1), "tags", change.Int(4))),
		err:     "mapping m0.yaml: public.t id=1: column tags (target cr1_tags) a multi-select column needs text or a JSON array, not int",
	}, {
		name:    "multi-select JSON that is not an array",
		mapping: multi,
		in:      ins(row("id", change.Int(1), "tags", change.JSON([]byte(`{}`)))),
		err:     "mapping m0.yaml: public.t id=1: column tags (target cr1_tags) the value is not a JSON array",
	}}, false)
}

func TestGoldenLookups(t *testing.T) {
	lookup := func(extra string) string {
		return byAccountNumber + "columns:\n  - {source: id, target: accountnumber, type: string}\n" +
			"  - {source: parent_id, target: parentaccountid, type: string, lookup: {table: account, key: accountnumber" + extra + "}}\n"
	}
	runGolden(t, []golden{{
		name:    "foreign key to the parent's address, entity set from the mapping",
		mapping: lookup(""),
		in:      ins(row("id", change.Int(1), "parent_id", change.Int(42))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"),
			"parentaccountid@odata.bind", change.Text("/accounts(accountnumber='42')"))),
	}, {
		name:    "NULL foreign key clears the lookup",
		mapping: lookup(""),
		in:      ins(row("id", change.Int(1), "parent_id", change.Null())),
		want:    want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "parentaccountid@odata.bind", change.Null())),
	}, {
		name:    "quotes doubled, entity set given by the lookup",
		mapping: lookup(", entity_set: parents"),
		in:      ins(row("id", change.Int(1), "parent_id", change.Text("O'Neil & co/50%"))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"),
			"parentaccountid@odata.bind", change.Text("/parents(accountnumber='O''Neil & co%2F50%25')"))),
	}, {
		name: "integer key unquoted",
		mapping: byAccountNumber + "columns:\n  - {source: id, target: accountnumber, type: string}\n" +
			"  - {source: parent_id, target: parentaccountid, lookup: {table: account, key: cr1_number}}\n",
		in: ins(row("id", change.Int(1), "parent_id", change.Int(42))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"),
			"parentaccountid@odata.bind", change.Text("/accounts(cr1_number=42)"))),
	}, {
		name: "by the parent's derived id",
		mapping: "key: {id: {uuid5: {namespace: 6ba7b811-9dad-11d1-80b4-00c04fd430c8}}}\ncolumns:\n  - {source: name, target: name}\n" +
			"  - {source: parent_id, target: parentaccountid, lookup: {table: account, id: uuid5}}\n",
		in: ins(row("name", change.Text("n"), "parent_id", change.Int(42))),
		want: want(change.OpInsert, change.Key(row("accountid", change.UUID(uuid.NewSHA1(uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), []byte("1"))))),
			row("name", change.Text("n"), "parentaccountid@odata.bind",
				change.Text("/accounts("+uuid.NewSHA1(uuid.MustParse("6ba7b811-9dad-11d1-80b4-00c04fd430c8"), []byte("42")).String()+")"))),
	}, {
		name: "by the id the foreign key holds",
		mapping: byAccountNumber + "columns:\n  - {source: id, target: accountnumber, type: string}\n" +
			"  - {source: parent_guid, target: parentaccountid, lookup: {table: account, id: column}}\n",
		in: ins(row("id", change.Int(1), "parent_guid", change.Text("D6F193FC-CE85-E611-80D8-00155D2A68DE"))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"),
			"parentaccountid@odata.bind", change.Text("/accounts(d6f193fc-ce85-e611-80d8-00155d2a68de)"))),
	}, {
		name: "by an id that is not a GUID",
		mapping: byAccountNumber + "columns:\n  - {source: id, target: accountnumber, type: string}\n" +
			"  - {source: parent_guid, target: parentaccountid, lookup: {table: account, id: column}}\n",
		in:  ins(row("id", change.Int(1), "parent_guid", change.Int(5))),
		err: "mapping m0.yaml: public.t id=1: column parent_guid (target parentaccountid) cannot convert a int value to uniqueidentifier: there is no such conversion",
	}, {
		name: "a key value of a kind no key has",
		mapping: byAccountNumber + "columns:\n  - {source: id, target: accountnumber, type: string}\n" +
			"  - {source: parent_id, target: parentaccountid, lookup: {table: account, key: cr1_number}}\n",
		in:  ins(row("id", change.Int(1), "parent_id", change.Float(1.5))),
		err: "mapping m0.yaml: public.t id=1: column parent_id (target parentaccountid) a float value cannot be an alternate key value; give the column a type",
	}}, false)
}

func TestGoldenFiltersAndDeletes(t *testing.T) {
	cols := "columns:\n  - {source: id, target: accountnumber, type: string}\n  - {source: name, target: name}\n"
	filtered := func(deletes string) string {
		return byAccountNumber + "filter: 'active && region == \"EU\"'\n" + cols + deletes
	}
	soft := "deletes: soft\nsoft: {set: {statuscode: 2, statecode: 1}}\n"
	softFlag := "deletes: soft\nsoft: {column: cr1_deleted}\n"
	eu := row("id", change.Int(1), "name", change.Text("n"), "active", change.Bool(true), "region", change.Text("EU"))
	us := row("id", change.Int(1), "name", change.Text("n"), "active", change.Bool(true), "region", change.Text("US"))
	inactive := row("id", change.Int(1), "name", change.Text("n"), "active", change.Bool(false), "region", change.Text("EU"))
	noRegion := row("id", change.Int(1), "name", change.Text("n"), "active", change.Bool(true), "region", change.Null())
	nameOnly := row("accountnumber", change.Text("1"), "name", change.Text("n"))
	deactivate := row("statecode", change.Int(1), "statuscode", change.Int(2))
	runGolden(t, []golden{
		{name: "insert inside the filter", mapping: filtered(""), in: ins(eu), want: want(change.OpInsert, byNumber("1"), nameOnly)},
		{name: "insert outside the filter", mapping: filtered(""), in: ins(us)},
		{name: "insert of an inactive row", mapping: filtered(""), in: ins(inactive)},
		{name: "NULL compares unequal", mapping: filtered(""), in: ins(noRegion)},
		{name: "a filter giving nil is false", mapping: byAccountNumber + "filter: 'region == \"EU\" ? true : nil'\n" + cols, in: ins(us)},
		{name: "update leaving the filter deletes", mapping: filtered(""), in: upd(eu, us), want: want(change.OpDelete, byNumber("1"), nil)},
		{name: "update leaving the filter without the old row deletes", mapping: filtered(""), in: upd(nil, us), want: want(change.OpDelete, byNumber("1"), nil)},
		{name: "update outside before and after", mapping: filtered(""), in: upd(us, inactive)},
		{name: "update leaving the filter, ignored", mapping: filtered("deletes: ignore\n"), in: upd(eu, us)},
		{name: "update leaving the filter, soft", mapping: filtered(soft), in: upd(eu, us), want: want(change.OpUpdate, byNumber("1"), deactivate)},
		{name: "update entering the filter", mapping: filtered(""), in: upd(us, eu), want: want(change.OpUpdate, byNumber("1"), nameOnly)},
		{name: "delete of a row outside the filter", mapping: filtered(""), in: del(us)},
		{name: "delete of a row inside the filter", mapping: filtered(""), in: del(eu), want: want(change.OpDelete, byNumber("1"), nil)},
		{name: "delete without the old row", mapping: filtered(""), in: del(nil), want: want(change.OpDelete, byNumber("1"), nil)},
		{name: "filter reading an unchanged value, from Before", mapping: filtered(""),
			in:   upd(eu, row("id", change.Int(1), "name", change.Text("n"), "active", change.Bool(true), "region", change.Unchanged())),
			want: want(change.OpUpdate, byNumber("1"), nameOnly)},
		{name: "filter reading an unchanged value, no Before", mapping: filtered(""),
			in:  upd(nil, row("id", change.Int(1), "active", change.Bool(true), "region", change.Unchanged())),
			err: "mapping m0.yaml: public.t id=1: the filter reads a column the source did not send (an unchanged TOASTed value); for PostgreSQL set REPLICA IDENTITY FULL on the table"},
		{name: "filter reading a column not in the row", mapping: filtered(""), in: ins(row("id", change.Int(1))),
			err: "mapping m0.yaml: public.t id=1: the filter reads column active, which is not in the row"},
		{name: "filter returning a string", mapping: byAccountNumber + "filter: region\n" + cols, in: ins(us),
			err: "mapping m0.yaml: public.t id=1: the filter returned a string, not a boolean"},
		{name: "soft delete sets state and status", mapping: byAccountNumber + cols + soft, in: del(nil),
			want: want(change.OpUpdate, byNumber("1"), deactivate)},
		{name: "soft delete sets the flag", mapping: byAccountNumber + cols + softFlag, in: del(nil),
			want: want(change.OpUpdate, byNumber("1"), row("cr1_deleted", change.Bool(true)))},
		{name: "upsert clears the soft-delete flag", mapping: byAccountNumber + cols + softFlag,
			in:   ins(row("id", change.Int(1), "name", change.Text("n"))),
			want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "name", change.Text("n"), "cr1_deleted", change.Bool(false)))},
		{name: "ignored delete", mapping: byAccountNumber + cols + "deletes: ignore\n", in: del(nil)},
		{name: "truncate is not applied", mapping: byAccountNumber + cols, in: change.Record{Op: change.OpTruncate, Table: "public.t"}},
	}, false)
}

func TestGoldenDirections(t *testing.T) {
	both := byAccountNumber + `direction: both
columns:
  - {source: id, target: accountnumber, type: string}
  - {source: name, target: name}
  - {source: secret, target: cr1_internal, direction: to-dataverse}
  - {source: revenue, target: revenue, direction: from-dataverse}
  - {expr: 'name + "!"', target: description}
  - {source: tier, target: customertypecode, choices: {values: {gold: 1, silver: 2}}}
`
	runGolden(t, []golden{{
		name:    "to Dataverse: from-dataverse columns are left out",
		mapping: both,
		in: ins(row("id", change.Int(1), "name", change.Text("n"), "secret", change.Text("s"),
			"revenue", change.Int(5), "tier", change.Text("gold"))),
		want: want(change.OpInsert, byNumber("1"), row("accountnumber", change.Text("1"), "name", change.Text("n"),
			"cr1_internal", change.Text("s"), "customertypecode", change.Int(1), "description", change.Text("n!"))),
	}, {
		name:    "a from-dataverse mapping maps nothing to Dataverse",
		mapping: byAccountNumber + "direction: from-dataverse\ncolumns:\n  - {source: id, target: accountnumber}\n",
		in:      ins(row("id", change.Int(1))),
	}}, false)

	from := func(op change.Op, key change.Key, after change.Row) change.Record {
		return change.Record{Op: op, Table: "account", Key: key, After: after, Position: change.Position("p")}
	}
	back := func(op change.Op, key change.Key, after change.Row) *change.Record {
		return &change.Record{Op: op, Table: "public.t", Key: key, After: after, Position: change.Position("p")}
	}
	guid, _ := change.ParseUUID("d6f193fc-ce85-e611-80d8-00155d2a68de")
	multi := byAccountNumber + "direction: both\ncolumns:\n  - {source: id, target: accountnumber}\n" +
		"  - {source: tags, target: cr1_tags, choices: {values: {red: 100, blue: 200}, multi: true, separator: ;}}\n"
	runGolden(t, []golden{{
		name:    "from Dataverse: renamed back, choices mapped back, to-dataverse columns left out",
		mapping: both,
		in: from(change.OpUpdate, byNumber("1"), row("name", change.Text("n"), "cr1_internal", change.Text("s"),
			"revenue", change.MustDecimal("9.5"), "customertypecode", change.Int(2), "description", change.Text("d"), "accountid", guid)),
		want: back(change.OpUpdate, change.Key(row("id", change.Text("1"))), row("name", change.Text("n"),
			"revenue", change.MustDecimal("9.5"), "tier", change.Text("silver"))),
	}, {
		name:    "from Dataverse: the key from After",
		mapping: both,
		in:      from(change.OpInsert, change.Key(row("accountid", guid)), row("accountnumber", change.Text("7"), "name", change.Text("n"))),
		want:    back(change.OpInsert, change.Key(row("id", change.Text("7"))), row("id", change.Text("7"), "name", change.Text("n"))),
	}, {
		name:    "from Dataverse: a delete",
		mapping: both,
		in:      from(change.OpDelete, byNumber("7"), nil),
		want:    back(change.OpDelete, change.Key(row("id", change.Text("7"))), nil),
	}, {
		name:    "from Dataverse: a delete keyed by its pre-image",
		mapping: both,
		in: func() change.Record {
			r := from(change.OpDelete, change.Key(row("accountid", guid)), nil)
			r.Before = row("accountnumber", change.Text("7"), "name", change.Text("n"))
			return r
		}(),
		want: back(change.OpDelete, change.Key(row("id", change.Text("7"))), nil),
	}, {
		name:    "from Dataverse: by id column",
		mapping: "key: {id: {column: crm_id}}\ndirection: both\ncolumns:\n  - {source: name, target: name}\n",
		in:      from(change.OpUpdate, change.Key(row("accountid", guid)), row("name", change.Text("n"))),
		want:    back(change.OpUpdate, change.Key(row("crm_id", guid)), row("name", change.Text("n"))),
	}, {
		name:    "from Dataverse: multi-select back",
		mapping: multi,
		in:      from(change.OpUpdate, byNumber("7"), row("cr1_tags", change.Text("200,100"))),
		want:    back(change.OpUpdate, change.Key(row("id", change.Text("7"))), row("tags", change.Text("blue;red"))),
	}, {
		name:    "from Dataverse: unknown option",
		mapping: both,
		in:      from(change.OpUpdate, byNumber("7"), row("customertypecode", change.Int(9))),
		err:     "mapping m0.yaml: account accountnumber=7: column tier (target customertypecode) the option value is not one of the choices' values",
	}, {
		name:    "from Dataverse: key missing",
		mapping: both,
		in:      from(change.OpUpdate, change.Key(row("accountid", guid)), row("name", change.Text("n"))),
		err:     "mapping m0.yaml: account accountid=d6f193fc-ce85-e611-80d8-00155d2a68de: key column id (target accountnumber) is missing from the Dataverse record",
	}, {
		name:    "from Dataverse: filter applies to the mapped row",
		mapping: byAccountNumber + "direction: both\nfilter: name != \"hidden\"\ncolumns:\n  - {source: id, target: accountnumber}\n  - {source: name, target: name}\n",
		in:      from(change.OpUpdate, byNumber("7"), row("name", change.Text("hidden"))),
	}, {
		name:    "from Dataverse: ignored delete",
		mapping: byAccountNumber + "direction: both\ndeletes: ignore\ncolumns:\n  - {source: id, target: accountnumber}\n",
		in:      from(change.OpDelete, byNumber("7"), nil),
	}, {
		name:    "a to-dataverse mapping maps nothing back",
		mapping: byAccountNumber + "columns:\n  - {source: id, target: accountnumber}\n",
		in:      from(change.OpDelete, byNumber("7"), nil),
	}}, true)
}

// The record's envelope passes through every feature untouched.
func TestGoldenEnvelope(t *testing.T) {
	mp := compile(t, head+byAccountNumber+"filter: 'true'\ncolumns:\n  - {source: id, target: accountnumber, type: string}\n  - {expr: '1', target: numberofemployees}\n").Mapper("app")
	commit := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := ins(row("id", change.Int(1)))
	rec.Position, rec.CommitTime, rec.Meta = change.Position("lsn"), commit, map[string]string{"xid": "1"}
	rec.Origin = change.Origin{System: "postgres", Name: "app"}
	out, ok, err := mp.Map(&rec)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if string(out.Position) != "lsn" || !out.CommitTime.Equal(commit) || out.Meta["xid"] != "1" || out.Origin != rec.Origin {
		t.Errorf("envelope = %+v", out)
	}
}

// A connection that mappings only write back to is not read from, but its
// Mapper maps records back.
func TestSetFromDataverseOnly(t *testing.T) {
	s := compile(t, strings.Replace(head, "app", "crm", 1)+byAccountNumber+
		"direction: from-dataverse\ncolumns:\n  - {source: id, target: accountnumber}\n")
	if s.Connections() != nil || s.Tables("crm") != nil {
		t.Errorf("Connections = %q, Tables = %q", s.Connections(), s.Tables("crm"))
	}
	rec := change.Record{Op: change.OpDelete, Table: "account", Key: byNumber("3")}
	out, ok, err := s.Mapper("crm").MapToSource(&rec)
	if err != nil || !ok || out.Table != "public.t" || !out.Key.Equal(change.Key(row("id", change.Text("3")))) {
		t.Errorf("MapToSource = %+v, %v, %v", out, ok, err)
	}
}

// Choices and constants cost no allocation beyond the output's columns.
func TestMapChoicesAndConstantsAllocateOnlyTheOutput(t *testing.T) {
	mp := compile(t, head+byAccountNumber+`columns:
  - {source: number, target: accountnumber}
  - {source: tier, target: customertypecode, choices: {values: {gold: 1}}}
  - {constant: "7", target: numberofemployees, type: integer}
  - {source: phone, target: telephone1, default: none}
`).Mapper("app")
	rec := ins(row("number", change.Text("1"), "tier", change.Text("gold"), "phone", change.Null()))
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok, err := mp.Map(&rec); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	if allocs != 1 {
		t.Errorf("Map allocates %v times per record, want 1", allocs)
	}

	byID := compile(t, head+"key: {id: {column: crm_id}}\ncolumns:\n  - {source: name, target: name}\n").Mapper("app")
	guid, _ := change.ParseUUID("d6f193fc-ce85-e611-80d8-00155d2a68de")
	rec = ins(row("crm_id", guid, "name", change.Text("n")))
	allocs = testing.AllocsPerRun(100, func() {
		if _, ok, err := byID.Map(&rec); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	if allocs != 1 {
		t.Errorf("Map by id column allocates %v times per record, want 1", allocs)
	}
}

// Expressions and filters share pooled environments and VMs between
// goroutines; each record must still see only its own row.
func TestMapExpressionsConcurrently(t *testing.T) {
	mp := compile(t, head+byAccountNumber+`filter: 'n % 3 != 0'
columns:
  - {source: n, target: accountnumber, type: string}
  - {expr: '"#" + string(n * 2)', target: name}
`).Mapper("app")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				n := int64(g*1000 + i)
				rec := ins(row("n", change.Int(n)))
				out, ok, err := mp.Map(&rec)
				if err != nil || ok != (n%3 != 0) {
					t.Errorf("Map(%d) = %v, %v", n, ok, err)
					return
				}
				if ok && (out.After[1].Value.Str() != "#"+strconv.FormatInt(n*2, 10) || out.Key[0].Value.Str() != strconv.FormatInt(n, 10)) {
					t.Errorf("Map(%d) = %+v", n, out)
					return
				}
			}
		})
	}
	wg.Wait()
}
