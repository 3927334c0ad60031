package engine

import (
	"strings"
	"testing"

	"github.com/dvsync/dvsync/change"
)

// withMeta returns r carrying meta.
func withMeta(r change.Record, meta map[string]string) change.Record {
	r.Meta = meta
	return r
}

// readsOnly is a pass-through mapper that reads only the given columns.
type readsOnly map[string]bool

func (m readsOnly) Map(r *change.Record) (change.Record, bool, error) { return *r, true, nil }
func (m readsOnly) ReadsColumn(_, column string) bool                 { return m[column] }

func TestSchemaChangeToAMappedColumnPausesTheTable(t *testing.T) {
	e := newEnv(t)
	p := e.start(testConfig())
	e.src.add(row(change.OpInsert, 1),
		withMeta(row(change.OpUpdate, 1, col("name", change.Int(5))), map[string]string{
			MetaDroppedColumns: `["note"]`, MetaRetypedColumns: `["name"]`,
		}),
		inTable("u", change.OpInsert, 2))
	eventually(t, "other table written", func() bool { return e.dst.has("u", 2) && e.src.lastAck() == 1 })
	st := p.Stats()
	reason := st.SchemaPaused["t"]
	if !strings.Contains(reason, "dropped note") || !strings.Contains(reason, "changed type of name") {
		t.Errorf("SchemaPaused = %v", st.SchemaPaused)
	}
	if err := p.Ready(); err == nil || !strings.Contains(err.Error(), "table t paused") {
		t.Errorf("Ready = %v, want the paused table named", err)
	}
	if r, _ := e.dst.row(1); rowText(r) != "id=1" {
		t.Errorf("row 1 = %s: the change after the schema change was written", rowText(r))
	}

	// An operator checks the mapping and resumes the table.
	if n, err := p.Resume("t"); n != 1 || err != nil {
		t.Fatalf("Resume = %d, %v", n, err)
	}
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 3 })
	if st := p.Stats(); st.SchemaPaused != nil {
		t.Errorf("SchemaPaused = %v after resume", st.SchemaPaused)
	}
	if err := p.Ready(); err != nil {
		t.Errorf("Ready = %v after resume", err)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaChangeToAnUnmappedColumnDoesNotPause(t *testing.T) {
	e := newEnv(t)
	e.mapFn = readsOnly{"id": true, "name": true}
	p := e.start(testConfig())
	e.src.add(withMeta(row(change.OpInsert, 1), map[string]string{MetaDroppedColumns: `["note"]`}))
	eventually(t, "record acked", func() bool { return e.src.lastAck() == 1 })
	if st := p.Stats(); st.SchemaPaused != nil || len(p.Paused()) != 0 {
		t.Errorf("paused after a change to a column the mapping does not read: %v", st.SchemaPaused)
	}

	// The same mapper pauses when a column it reads changes.
	e.src.add(withMeta(row(change.OpUpdate, 1), map[string]string{MetaDroppedColumns: `["name"]`}))
	eventually(t, "table paused", func() bool { return p.Stats().SchemaPaused["t"] != "" })
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestSchemaChangeOfAnUnmappedTableDoesNotPause(t *testing.T) {
	e := newEnv(t)
	e.mapFn = MapperFunc(func(r *change.Record) (change.Record, bool, error) { return *r, r.Table == "t", nil })
	p := e.start(testConfig())
	e.src.add(withMeta(inTable("u", change.OpInsert, 1), map[string]string{MetaDroppedColumns: `["name"]`}),
		row(change.OpInsert, 2))
	eventually(t, "records acked", func() bool { return e.src.lastAck() == 2 })
	if st := p.Stats(); st.SchemaPaused != nil {
		t.Errorf("SchemaPaused = %v for a table the pipeline does not map", st.SchemaPaused)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}
