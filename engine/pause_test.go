package engine

import (
	"fmt"
	"maps"
	"testing"

	"github.com/dvsync/dvsync/change"
)

// inTable is row(op, id) of another table.
func inTable(table string, op change.Op, id int64) change.Record {
	r := row(op, id)
	r.Table = table
	return r
}

func (s *memSink) has(table string, id int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.rows[fmt.Sprintf("%s/id=%d", table, id)]
	return ok
}

func TestPauseHoldsATableWhileOthersFlow(t *testing.T) {
	e := newEnv(t)
	e.mapFn = version(1)
	p := e.start(testConfig())
	if err := p.Pause("t"); err != nil {
		t.Fatal(err)
	}
	e.src.add(row(change.OpInsert, 1), inTable("u", change.OpInsert, 1),
		row(change.OpUpdate, 1, col("name", change.Text("x"))), inTable("u", change.OpInsert, 2))
	eventually(t, "table u written", func() bool { return e.dst.has("u", 1) && e.dst.has("u", 2) })
	if e.dst.has("t", 1) {
		t.Fatal("a paused table was written")
	}
	if got := p.Paused(); !maps.Equal(got, map[string]int{"t": 2}) {
		t.Errorf("Paused = %v", got)
	}
	// Nothing is acked past the first held change.
	if n := e.src.lastAck(); n != 0 {
		t.Errorf("acked up to %d while record 1 is held", n)
	}

	// Held changes are mapped when they resume, by the mapper of then.
	if err := p.SetMapper(version(2)); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Resume("t"); n != 2 || err != nil {
		t.Fatalf("Resume = %d, %v", n, err)
	}
	e.src.add(row(change.OpUpdate, 1, col("name", change.Text("y"))))
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 5 })
	if r, _ := e.dst.row(1); rowText(r) != "id=1,version=2,name=y" {
		t.Errorf("row 1 = %s, want the held changes then the later one, mapped by the new mapper", rowText(r))
	}
	if n, err := p.Resume("t"); n != 0 || err != nil {
		t.Errorf("Resume of a table not paused = %d, %v", n, err)
	}
	if len(p.Paused()) != 0 {
		t.Errorf("Paused = %v after resume", p.Paused())
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestPausedChangesAreReplayedAfterAStop(t *testing.T) {
	e := newEnv(t)
	p := e.start(testConfig())
	e.src.add(row(change.OpInsert, 1))
	eventually(t, "first record acked", func() bool { return e.src.lastAck() == 1 })
	if err := p.Pause("t"); err != nil {
		t.Fatal(err)
	}
	e.src.add(row(change.OpInsert, 2), inTable("u", change.OpInsert, 3))
	eventually(t, "table u written", func() bool { return e.dst.has("u", 3) })
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	// The saved position is before the held record, so a restart reads it.
	if got := e.st.saved(); got != 1 {
		t.Errorf("saved position %d, want 1 (before the held record)", got)
	}
}
