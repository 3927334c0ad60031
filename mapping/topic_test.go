package mapping

import (
	"slices"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/change"
)

func TestTopicMappings(t *testing.T) {
	const kafka = `version: 1
source: {connection: events, topic: erp.customers, format: debezium}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id, target: accountnumber, type: string}
  - {source: name, target: name}
`
	set := compile(t, kafka)
	if got := set.Tables("events"); !slices.Equal(got, []string{"erp.customers"}) {
		t.Fatalf("Tables = %v, want the topic", got)
	}
	rec := change.Record{Op: change.OpInsert, Table: "erp.customers", Key: change.Key(row("id", change.Int(7))),
		After: row("id", change.Int(7), "name", change.Text("Ada"))}
	out, ok, err := set.Mapper("events").Map(&rec)
	if err != nil || !ok || out.Table != "account" {
		t.Fatalf("Map = %v, %v, %v", out, ok, err)
	}

	out1 := compile(t, strings.Replace(strings.Replace(kafka, ", format: debezium", "", 1), "version: 1\n", "version: 1\ndirection: from-dataverse\n", 1))
	if m := out1.Mappings()[0]; m.Source.Format != FormatDebezium || !m.Source.TombstonesOn() {
		t.Errorf("written topic defaults: format %q tombstones %v, want debezium and true", m.Source.Format, m.Source.TombstonesOn())
	}
	if got := out1.WriteBackConnections(); !slices.Equal(got, []string{"events"}) {
		t.Errorf("WriteBackConnections = %v", got)
	}
	if got := out1.Mapper("events").DataverseTables(); !slices.Equal(got, []string{"account"}) {
		t.Errorf("DataverseTables = %v", got)
	}
	if got := out1.Connections(); len(got) != 0 {
		t.Errorf("Connections = %v, want none read", got)
	}
	off := compile(t, strings.Replace(strings.Replace(kafka, ", format: debezium", ", tombstones: false", 1), "version: 1\n", "version: 1\ndirection: from-dataverse\n", 1))
	if off.Mappings()[0].Source.TombstonesOn() {
		t.Error("tombstones: false is on")
	}
	read := compile(t, strings.Replace(kafka, ", format: debezium", "", 1))
	if f := read.Mappings()[0].Source.Format; f != FormatJSON {
		t.Errorf("read topic default format %q, want json", f)
	}
}

func TestConflictDefaults(t *testing.T) {
	both := head + "direction: both\nkey: {alternate_key: [accountnumber]}\ncolumns:\n  - {source: id, target: accountnumber, type: string}\n  - {source: changed_at, target: description, type: string, direction: to-dataverse}\n"
	c := compile(t, both).Mappings()[0].Conflict
	if c.Policy != NewestWins || c.TieBreak != SourceWins {
		t.Errorf("defaults = %+v, want newest-wins with source-wins", c)
	}
	c = compile(t, both+"conflict: {policy: merge, tie_break: dataverse-wins, timestamp_column: changed_at}\n").Mappings()[0].Conflict
	if c.Policy != Merge || c.TieBreak != DataverseWins || c.TimestampColumn != "changed_at" {
		t.Errorf("given = %+v", c)
	}
	for _, tb := range []Policy{SourceWins, DataverseWins, NewestWins, Manual} {
		c = compile(t, both+"conflict: {policy: merge, tie_break: "+string(tb)+"}\n").Mappings()[0].Conflict
		if c.TieBreak != tb {
			t.Errorf("tie_break %s read as %s", tb, c.TieBreak)
		}
	}
}

// The columns a bidirectional mapping syncs both ways are those that flow
// back: not the to-dataverse ones, computed ones or lookups.
func TestSyncedColumns(t *testing.T) {
	both := head + `direction: both
key: {alternate_key: [accountnumber]}
columns:
  - {source: id, target: accountnumber, type: string}
  - {source: name, target: name}
  - {source: changed_at, target: description, type: string, direction: to-dataverse}
  - {expr: "name + '!'", target: fax}
  - {source: city, target: address1_city, direction: from-dataverse}
`
	if got := compile(t, both).Mappings()[0].SyncedColumns(); !slices.Equal(got, []string{"id", "name", "city"}) {
		t.Errorf("SyncedColumns = %v, want [id name city]", got)
	}
	oneWay := head + "key: {alternate_key: [accountnumber]}\ncolumns:\n  - {source: id, target: accountnumber, type: string}\n"
	if got := compile(t, oneWay).Mappings()[0].SyncedColumns(); got != nil {
		t.Errorf("SyncedColumns of a one-way mapping = %v", got)
	}
}

func TestTopicAndConflictProblems(t *testing.T) {
	cols := "key: {alternate_key: [accountnumber]}\ncolumns:\n  - {source: id, target: accountnumber, type: string}\n"
	tests := []struct{ name, yaml, want string }{
		{"table and topic", "version: 1\nsource: {connection: k, table: public.t, topic: t}\ndataverse: {table: account}\n" + cols,
			"m.yaml:2: source.topic: give either table (a database table) or topic (a Kafka topic), not both"},
		{"bad format", "version: 1\nsource: {connection: k, topic: t, format: avro}\ndataverse: {table: account}\n" + cols,
			`m.yaml:2: source.format: "avro" is not one of: json, debezium, cloudevents, dataverse-event`},
		{"writes a read-only format", "version: 1\ndirection: from-dataverse\nsource: {connection: k, topic: t, format: cloudevents}\ndataverse: {table: account}\n" + cols,
			"m.yaml:3: source.format: dvsync writes topics as debezium or json; cloudevents is only read"},
		{"format on a table", "version: 1\nsource: {connection: k, table: public.t, format: json}\ndataverse: {table: account}\n" + cols,
			"m.yaml:2: source.format: only for a Kafka topic (source.topic)"},
		{"conflict one-way", head + cols + "conflict: {policy: merge}\n",
			"m.yaml:7: conflict: only for direction both: a one-way mapping has no conflicts"},
		{"bad policy", head + "direction: both\n" + cols + "conflict: {policy: lww}\n",
			`m.yaml:8: conflict.policy: "lww" is not one of: source-wins, dataverse-wins, newest-wins, merge, manual`},
		{"bad tie break", head + "direction: both\n" + cols + "conflict: {policy: merge, tie_break: merge}\n",
			`m.yaml:8: conflict.tie_break: "merge" is not one of: source-wins, dataverse-wins, newest-wins, manual`},
		{"newest-wins breaking its own ties", head + "direction: both\n" + cols + "conflict: {policy: newest-wins, tie_break: newest-wins}\n",
			"m.yaml:8: conflict.tie_break: newest-wins cannot break its own ties; use source-wins, dataverse-wins or manual"},
		{"unmapped timestamp", head + "direction: both\n" + cols + "conflict: {timestamp_column: nope}\n",
			"m.yaml:8: conflict.timestamp_column: nope is not the source of any column; map it (it may flow to-dataverse only)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), "m.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestKeyAttributes(t *testing.T) {
	both := head + "direction: both\nkey: {alternate_key: [accountnumber]}\ncolumns:\n  - {source: id, target: accountnumber, type: string}\n  - {source: name, target: name}\n"
	mp := compile(t, both).Mapper("app")
	if got := mp.KeyAttributes("account"); !slices.Equal(got, []string{"accountnumber"}) {
		t.Errorf("KeyAttributes = %v", got)
	}
	if got := mp.KeyAttributes("contact"); got != nil {
		t.Errorf("KeyAttributes of an unmapped table = %v", got)
	}
	byID := compile(t, head+"direction: both\nkey: {id: {column: crm_id}}\ncolumns:\n  - {source: name, target: name}\n").Mapper("app")
	if got := byID.KeyAttributes("account"); got != nil {
		t.Errorf("KeyAttributes by id column = %v", got)
	}
}

func TestTruncate(t *testing.T) {
	cols := "key: {alternate_key: [accountnumber]}\ncolumns:\n  - {source: id, target: accountnumber, type: string}\n"
	trunc := change.Record{Op: change.OpTruncate, Table: "public.t", Position: change.Position("p")}
	if _, ok, err := compile(t, head+cols).Mapper("app").Map(&trunc); ok || err != nil {
		t.Errorf("default: ok=%v err=%v, want the truncate dropped", ok, err)
	}
	out, ok, err := compile(t, head+cols+"truncate: delete\n").Mapper("app").Map(&trunc)
	if err != nil || !ok || out.Op != change.OpTruncate || out.Table != "account" || len(out.Key) != 0 || string(out.Position) != "p" {
		t.Errorf("truncate: delete: %v, %v, %v", out, ok, err)
	}
	if _, err := Parse([]byte(head+cols+"truncate: drop\n"), "m.yaml"); err == nil || !strings.Contains(err.Error(), `m.yaml:7: truncate: "drop" is not one of: ignore, delete`) {
		t.Errorf("bad truncate: %v", err)
	}
}
