package mapping

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func compile(t testing.TB, files ...string) *Set {
	t.Helper()
	var ms []*Mapping
	for i, data := range files {
		m, err := Parse([]byte(data), fmt.Sprintf("m%d.yaml", i))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	s, err := Compile(ms)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func row(kv ...any) change.Row {
	var r change.Row
	for i := 0; i < len(kv); i += 2 {
		r = append(r, change.Column{Name: kv[i].(string), Value: kv[i+1].(change.Value)})
	}
	return r
}

func TestMapUpsert(t *testing.T) {
	mp := compile(t, customers).Mapper("app")
	commit := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rec := change.Record{
		Op:         change.OpUpdate,
		Table:      "public.customers",
		Key:        change.Key(row("id", change.Int(42))),
		After:      row("id", change.Int(42), "name", change.Text("Contoso"), "phone", change.Text("555"), "email", change.Unchanged()),
		Position:   change.Position("lsn/1"),
		CommitTime: commit,
		Origin:     change.Origin{System: "postgres", Name: "app"},
		Meta:       map[string]string{"xid": "7"},
	}
	out, ok, err := mp.Map(&rec)
	if err != nil || !ok {
		t.Fatalf("Map = %v, %v", ok, err)
	}
	want := change.Record{
		Op:         change.OpUpdate,
		Table:      "account",
		Key:        change.Key(row("accountnumber", change.Text("42"))),
		After:      row("accountnumber", change.Text("42"), "name", change.Text("Contoso"), "emailaddress1", change.Unchanged()),
		Position:   change.Position("lsn/1"),
		CommitTime: commit,
		Origin:     change.Origin{System: "postgres", Name: "app"},
		Meta:       map[string]string{"xid": "7"},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("got  %+v\nwant %+v", out, want)
	}
	// The output must not share columns with the input.
	out.After[1].Value = change.Text("changed")
	if rec.After[1].Value.Str() != "Contoso" {
		t.Error("output row aliases the input row")
	}
}

func TestMapDelete(t *testing.T) {
	mp := compile(t, customers).Mapper("app")
	for name, rec := range map[string]change.Record{
		"key":    {Op: change.OpDelete, Table: "public.customers", Key: change.Key(row("id", change.Int(7)))},
		"before": {Op: change.OpDelete, Table: "public.customers", Key: change.Key(row("other", change.Int(1))), Before: row("name", change.Null(), "id", change.Int(7))},
	} {
		out, ok, err := mp.Map(&rec)
		if err != nil || !ok {
			t.Fatalf("%s: Map = %v, %v", name, ok, err)
		}
		if out.Op != change.OpDelete || out.After != nil || out.Before != nil ||
			!out.Key.Equal(change.Key(row("accountnumber", change.Text("7")))) {
			t.Errorf("%s: got %+v", name, out)
		}
	}
}

func TestMapSkips(t *testing.T) {
	ignoring := strings.Replace(customers, "public.customers", "public.archive", 1) + "deletes: ignore\nname: archive\n"
	s := compile(t, customers, ignoring)
	del := change.Record{Op: change.OpDelete, Table: "public.archive", Key: change.Key(row("id", change.Int(1)))}
	if _, ok, err := s.Mapper("app").Map(&del); ok || err != nil {
		t.Errorf("ignored delete: ok=%v err=%v", ok, err)
	}
	other := change.Record{Op: change.OpInsert, Table: "public.unmapped", Key: change.Key(row("id", change.Int(1))), After: row("id", change.Int(1))}
	if _, ok, err := s.Mapper("app").Map(&other); ok || err != nil {
		t.Errorf("unmapped table: ok=%v err=%v", ok, err)
	}
	ins := change.Record{Op: change.OpInsert, Table: "public.customers", Key: change.Key(row("id", change.Int(1))), After: row("id", change.Int(1))}
	if _, ok, err := s.Mapper("elsewhere").Map(&ins); ok || err != nil {
		t.Errorf("nil mapper: ok=%v err=%v", ok, err)
	}
}

func TestMapCompositeKeyAndFanOut(t *testing.T) {
	data := `version: 1
source: {connection: erp, table: sales.lines}
dataverse: {table: cr1_line}
key: {alternate_key: [cr1_order, cr1_lineno]}
columns:
  - {source: line, target: cr1_lineno, type: integer}
  - {source: order_id, target: cr1_order, type: string}
  - {source: order_id, target: cr1_ordernumber, type: bigint}
  - {source: amount, target: cr1_amount, type: money}
`
	mp := compile(t, data).Mapper("erp")
	rec := change.Record{
		Op:    change.OpInsert,
		Table: "sales.lines",
		Key:   change.Key(row("order_id", change.Int(9), "line", change.Int(2))),
		After: row("amount", change.MustDecimal("12.50"), "order_id", change.Int(9), "line", change.Text("2"), "note", change.Text("x")),
	}
	out, ok, err := mp.Map(&rec)
	if err != nil || !ok {
		t.Fatalf("Map = %v, %v", ok, err)
	}
	wantKey := change.Key(row("cr1_order", change.Text("9"), "cr1_lineno", change.Int(2)))
	wantAfter := row("cr1_amount", change.MustDecimal("12.50"), "cr1_order", change.Text("9"),
		"cr1_ordernumber", change.Int(9), "cr1_lineno", change.Int(2))
	if !out.Key.Equal(wantKey) || !reflect.DeepEqual(out.After, wantAfter) {
		t.Errorf("got key %v after %+v", out.Key, out.After)
	}
}

// An Unchanged key column in After (a TOASTed value) is taken from Key.
func TestMapKeyFallsBackToRecordKey(t *testing.T) {
	mp := compile(t, customers).Mapper("app")
	rec := change.Record{
		Op: change.OpUpdate, Table: "public.customers",
		Key:   change.Key(row("id", change.Int(5))),
		After: row("id", change.Unchanged(), "name", change.Text("n")),
	}
	out, ok, err := mp.Map(&rec)
	if err != nil || !ok {
		t.Fatalf("Map = %v, %v", ok, err)
	}
	if !out.Key.Equal(change.Key(row("accountnumber", change.Text("5")))) {
		t.Errorf("key = %v", out.Key)
	}
	if v, _ := out.After.Get("accountnumber"); !v.IsUnchanged() {
		t.Errorf("After keeps the Unchanged column as %v", v)
	}
}

func TestMapErrors(t *testing.T) {
	data := strings.Replace(customers, "alternate_key: [accountnumber]", "alternate_key: [emailaddress1]", 1)
	data = strings.Replace(data, "{source: name,  target: name}", "{source: name,  target: name, type: integer}", 1)
	mp := compile(t, data).Mapper("app")
	const prefix = "mapping m0.yaml: public.customers id=1: "
	tests := []struct {
		name string
		rec  change.Record
		want string
	}{{
		name: "delete without the key column",
		rec:  change.Record{Op: change.OpDelete, Table: "public.customers", Key: change.Key(row("id", change.Int(1)))},
		want: prefix + "key column email (target emailaddress1) is missing from the delete: the source sent only its own key columns; make the column part of the table's primary key, or for PostgreSQL set REPLICA IDENTITY FULL on the table",
	}, {
		name: "null key",
		rec: change.Record{Op: change.OpInsert, Table: "public.customers", Key: change.Key(row("id", change.Int(1))),
			After: row("id", change.Int(1), "email", change.Null())},
		want: prefix + "key column email (target emailaddress1) is NULL, and an alternate key value cannot be",
	}, {
		name: "null key in a delete's old row",
		rec: change.Record{Op: change.OpDelete, Table: "public.customers", Key: change.Key(row("id", change.Int(1))),
			Before: row("id", change.Int(1), "email", change.Null())},
		want: prefix + "key column email (target emailaddress1) is NULL, and an alternate key value cannot be",
	}, {
		name: "key column not in the row",
		rec: change.Record{Op: change.OpInsert, Table: "public.customers", Key: change.Key(row("id", change.Int(1))),
			After: row("id", change.Int(1))},
		want: prefix + "key column email (target emailaddress1) is missing from the row; is the source column's name right?",
	}, {
		name: "value that does not convert",
		rec: change.Record{Op: change.OpInsert, Table: "public.customers", Key: change.Key(row("id", change.Int(1))),
			After: row("id", change.Int(1), "email", change.Text("a@b"), "name", change.Text("Contoso"))},
		want: prefix + "column name (target name) cannot convert a text value to integer: the value does not parse",
	}, {
		name: "no row",
		rec:  change.Record{Op: change.OpInsert, Table: "public.customers", Key: change.Key(row("id", change.Int(1)))},
		want: prefix + "the record has no row",
	}, {
		name: "unknown op",
		rec:  change.Record{Op: 0, Table: "public.customers", Key: change.Key(row("id", change.Int(1)))},
		want: prefix + "unknown operation Op(0)",
	}}
	for _, tt := range tests {
		out, ok, err := mp.Map(&tt.rec)
		if ok || err == nil || err.Error() != tt.want || !change.IsPermanent(err) {
			t.Errorf("%s: got ok=%v err=%v\nwant %s", tt.name, ok, err, tt.want)
		}
		if out.Table != "" {
			t.Errorf("%s: returned a record with an error", tt.name)
		}
	}
	// Values other than the key are not quoted.
	_, _, err := mp.Map(&tests[4].rec)
	if strings.Contains(err.Error(), "Contoso") {
		t.Errorf("error quotes a value: %v", err)
	}
}

// Map is the hot path: one allocation for the output's columns, none for
// lookups.
func TestMapAllocatesOnlyTheOutput(t *testing.T) {
	data := strings.Replace(customers, ", type: string}", "}", 1)
	mp := compile(t, data).Mapper("app")
	rec := change.Record{
		Op: change.OpUpdate, Table: "public.customers",
		Key:   change.Key(row("id", change.Int(1))),
		After: row("id", change.Int(1), "name", change.Text("n"), "email", change.Text("e"), "phone", change.Null()),
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok, err := mp.Map(&rec); !ok || err != nil {
			t.Fatal(ok, err)
		}
	})
	if allocs != 1 {
		t.Errorf("Map allocates %v times per record, want 1", allocs)
	}
}

func TestMapConcurrently(t *testing.T) {
	mp := compile(t, customers).Mapper("app")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := int64(g*1000 + i)
				rec := change.Record{Op: change.OpInsert, Table: "public.customers",
					Key: change.Key(row("id", change.Int(id))), After: row("id", change.Int(id), "name", change.Text("n"))}
				out, ok, err := mp.Map(&rec)
				if err != nil || !ok || out.Key[0].Value.Str() != fmt.Sprint(id) {
					t.Errorf("Map(%d) = %v %v %v", id, out.Key, ok, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestReadsColumn(t *testing.T) {
	s := compile(t, head+`key: {alternate_key: [accountnumber]}
filter: 'active'
columns:
  - {source: id, target: accountnumber, type: string}
  - {target: description, expr: 'note + "!"'}
`)
	m := s.Mapper("app")
	for col, want := range map[string]bool{"id": true, "active": true, "note": true, "other": false} {
		if got := m.ReadsColumn("public.t", col); got != want {
			t.Errorf("ReadsColumn(public.t, %s) = %v, want %v", col, got, want)
		}
	}
	if m.ReadsColumn("public.unmapped", "id") {
		t.Error("a column of an unmapped table is read")
	}
}
