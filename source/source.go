// Package source defines the contract every change source implements:
// PostgreSQL logical replication, SQL Server change tracking, Kafka topics
// and Dataverse change events. The conformance suite in source/sourcetest
// checks an adapter against it.
package source

import (
	"context"

	"github.com/dvsync/dvsync/change"
)

// Source produces change records and learns, through Ack, which of them
// are durable downstream.
//
// Lifecycle: Open once, then Read repeatedly (from one goroutine) while Ack
// is called from another, then Close once. Read and Ack may run
// concurrently; nothing else may.
//
// Ordering: records for one key are returned in the order the source
// committed them. Records of one transaction are returned together and in
// order, but may be split across Read calls.
//
// Delivery: at least once. After a restart from an acked position, the
// source returns every change committed after it, and may return some at
// or before it again; sinks are idempotent, so replays are harmless.
type Source interface {
	// Open connects and positions the source just after from. A nil
	// position means "wherever this source starts by default" (for
	// PostgreSQL: the slot's confirmed position; for Kafka: the group's
	// committed offsets). Open returns an error that names the missing
	// thing (a permission, a setting, a table) when the source cannot run.
	Open(ctx context.Context, from change.Position) error

	// Read blocks until at least one record is available, the context is
	// done, or the source fails, and returns the records available then
	// (at most a source-chosen number). The caller owns the returned slice.
	// A returned error is terminal for this Open; the caller closes the
	// source and may open it again.
	Read(ctx context.Context) ([]change.Record, error)

	// Ack tells the source that every record it returned up to and
	// including the one at pos has been made durable by the sink, and pos
	// has been persisted in the state store. The source may then release
	// the changes up to pos upstream (confirm an LSN, commit an offset).
	// Positions passed to Ack never go backwards.
	Ack(ctx context.Context, pos change.Position) error

	// Close releases the connection. It does not ack anything.
	Close(ctx context.Context) error
}

// HealthReporter is implemented by a source that can tell whether it is
// connected to its system right now, for instance one that reconnects by
// itself inside Read after the connection drops. The engine reports a
// pipeline unready (dvsync's /readyz) while Healthy returns an error; a
// source that does not implement it is taken to be healthy while it is
// open.
type HealthReporter interface {
	// Healthy returns nil while the source is connected and an error
	// saying what is wrong otherwise (without secrets: it is served over
	// HTTP). It reports the last known state and must not block on I/O.
	// It may be called from any goroutine at any time, concurrently with
	// every other method, before Open and after Close.
	Healthy() error
}
