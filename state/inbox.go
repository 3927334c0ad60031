package state

import "time"

// An inbox is a source's own durable log, for sources whose upstream
// cannot replay: the Dataverse webhook receiver must make an event durable
// before it answers, and the change-tracking poller must keep what it read
// before it moves its delta token. Both stores (Bolt and Postgres) keep
// inboxes next to positions and dead letters, in buckets or tables created
// the first time an inbox method needs them.
//
// An inbox holds, under its name:
//
//   - entries: opaque byte strings numbered by a sequence that only
//     grows, read back in that order and removed by InboxAck;
//   - marks: per (table, id), a version, a deleted flag and the version
//     of the last change that was not the source's own, which the source
//     uses to apply each change once and in version order, and as the set
//     of ids it has seen;
//   - cursors: named byte strings, such as delta links;
//   - kept bodies: requests the source refused as malformed, kept for an
//     operator to inspect.
//
// InboxAppend writes entries, marks and cursors in one transaction, so a
// source never stores an event without its dedupe mark or moves a cursor
// past entries it has not stored. Every method returns only after its
// write is durable. Appends to one inbox must not run concurrently (the
// source serializes them; sequence numbers are then dense and follow
// commit order); everything else is safe for concurrent use.

// InboxEntry is one stored entry.
type InboxEntry struct {
	// Seq is the entry's sequence number, unique and increasing within
	// its inbox, never reused after InboxAck removes the entry.
	Seq  uint64
	Data []byte
}

// InboxMark is what an inbox remembers about one row.
type InboxMark struct {
	Table, ID string
	// Version is the row's last version accepted (Dataverse's
	// versionnumber): applied, or the source's own and skipped. A source
	// may store other ordered numbers under a table name of its own.
	Version int64
	// Deleted says the last change accepted was a delete.
	Deleted bool
	// Foreign is the version of the last change applied that was not the
	// source's own (for Dataverse, not made by dvsync); zero when there
	// was none. Version is above it when the source's own changes came
	// later. A mark stored before this field existed reads it as Version.
	Foreign int64
}

// InboxWrite is one atomic append to an inbox.
type InboxWrite struct {
	// Entries are appended in order, numbered from the inbox's next
	// sequence number.
	Entries [][]byte
	// Marks replace the marks of the same table and id.
	Marks []InboxMark
	// Cursors replace the named cursors; a nil value deletes one.
	Cursors map[string][]byte
}

// KeptBody is a request body a source refused, kept for inspection.
type KeptBody struct {
	// ID is assigned by the store, increasing in the order bodies were
	// kept.
	ID     uint64
	Time   time.Time
	Reason string
	Body   []byte
}
