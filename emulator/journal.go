package emulator

// journal records the writes of an atomic group (a $batch change set or a
// bulk message on a standard table) so that a failure can undo them, as
// Dataverse rolls back the transaction behind ExecuteTransaction and
// CreateMultiple.
//
// A journal is used by one goroutine at a time; the owner guarantees that no
// other writer touches the tables meanwhile.
type journal struct {
	entries []journalEntry
}

// journalEntry is one write: before is nil for an insert, after is nil for a
// delete.
type journalEntry struct {
	ts            *tableStore
	before, after *row
	// tomb is the row id's tombstone before the write, if it had one.
	tomb    tombstone
	hadTomb bool
	// runs are the asynchronous webhook runs of the write; they start
	// only when the group commits, and are dropped with a rolled-back
	// write.
	runs []*delivery
}

// record notes a write; the caller records before changing anything. A
// nil journal records nothing, so that the store's write paths need no
// branch of their own.
func (j *journal) record(ts *tableStore, before, after *row) {
	if j == nil {
		return
	}
	e := journalEntry{ts: ts, before: before, after: after}
	id := after
	if id == nil {
		id = before
	}
	e.tomb, e.hadTomb = ts.deleted[id.id]
	j.entries = append(j.entries, e)
}

// mark is the position to roll back to.
func (j *journal) mark() int { return len(j.entries) }

// rollback undoes the writes after mark, newest first, restoring the rows
// and alternate-key indexes exactly as they were. lock tells whether to take
// each table's lock (false when the caller already holds it).
func (j *journal) rollback(mark int, lock bool) {
	for i := len(j.entries) - 1; i >= mark; i-- {
		e := j.entries[i]
		if lock {
			e.ts.mu.Lock()
		}
		if e.after != nil {
			e.ts.unindex(e.after)
			e.ts.deleteRow(e.after)
		}
		if e.before != nil {
			e.ts.putRow(e.before)
			e.ts.index(e.before)
		}
		id := e.before
		if id == nil {
			id = e.after
		}
		if e.hadTomb {
			e.ts.deleted[id.id] = e.tomb
		} else {
			delete(e.ts.deleted, id.id)
		}
		if lock {
			e.ts.mu.Unlock()
		}
	}
	j.entries = j.entries[:mark]
}

// takeRuns returns the asynchronous webhook runs of the journal's writes,
// in write order, for a group that committed.
func (j *journal) takeRuns() []*delivery {
	var runs []*delivery
	for i := range j.entries {
		runs = append(runs, j.entries[i].runs...)
		j.entries[i].runs = nil
	}
	return runs
}
