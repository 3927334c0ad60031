package change

import (
	"fmt"
	"time"
)

// Op is what happened to a row.
type Op uint8

const (
	// OpInsert is a new row.
	OpInsert Op = iota + 1
	// OpUpdate changes an existing row. Columns the source did not send
	// carry Unchanged values.
	OpUpdate
	// OpDelete removes a row. After is nil; Key names the row.
	OpDelete
	// OpRead is a row read by a snapshot or backfill rather than captured
	// from a change stream. Sinks treat it as an upsert.
	OpRead
	// OpTruncate empties Table (SQL TRUNCATE). It names no row: Key,
	// Before and After are nil. The mapping decides what it means for a
	// destination; by default it is ignored with a warning.
	OpTruncate
)

// String returns the Debezium-style one-letter code: c, u, d, r or t.
func (o Op) String() string {
	switch o {
	case OpInsert:
		return "c"
	case OpUpdate:
		return "u"
	case OpDelete:
		return "d"
	case OpRead:
		return "r"
	case OpTruncate:
		return "t"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// Position is a source's own resume point, opaque to everything but the
// source that made it: an LSN, a set of Kafka offsets, a Change Tracking
// version, a Dataverse delta token. It also records the phase (snapshot with
// its last key, or streaming) so a backfill can resume without a gap.
//
// Positions are compared by nobody but their source. The engine orders
// records by the sequence in which the source emitted them.
type Position []byte

// Origin says who made a change, as far as the source can tell. Echo
// suppression compares it with dvsync's own identity on that system.
type Origin struct {
	// System is the kind of source that observed the change:
	// "postgres", "sqlserver", "kafka" or "dataverse".
	System string
	// Name identifies the writer on that system: the PostgreSQL
	// replication origin, the SQL Server change tracking context, the
	// Dataverse user id. Empty when the source cannot tell.
	Name string
}

// Record is one change to one row. It is the only value that crosses between
// dvsync's packages.
//
// A source fills Table, Key and Op, then After for inserts, updates and
// reads, and Before when the source knows the old row. After a mapping has
// been applied, Table names the destination table and the columns carry
// destination names.
//
// Records are not safe for concurrent mutation; whoever holds one owns it.
type Record struct {
	Op Op
	// Table is the qualified name of the table the row belongs to, in the
	// namespace of whoever produced the record: "public.customers" for
	// PostgreSQL, the topic for Kafka, the logical name for Dataverse.
	Table string
	// Key identifies the row within Table. Never empty, except for
	// OpTruncate, which concerns the whole table.
	Key Key
	// Before is the row as it was, when known (replica identity full,
	// Dataverse pre-images). Nil otherwise.
	Before Row
	// After is the row as it is now. Nil for deletes.
	After Row
	// Position is where to resume after this record has been made durable.
	// Several records may share a commit; their positions still differ.
	Position Position
	// CommitTime is when the source committed the change; zero if unknown.
	CommitTime time.Time
	// Origin is who made the change, as far as the source can tell.
	Origin Origin
	// Meta carries source-specific details (transaction id, partition,
	// offset) for logs and dead letters. Nil when there are none.
	Meta map[string]string
}

// String describes the record for logs and error messages without values,
// which may be sensitive.
func (r *Record) String() string {
	return fmt.Sprintf("%s %s %s", r.Op, r.Table, r.Key)
}
