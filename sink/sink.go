// Package sink defines the contract every destination implements:
// Dataverse, PostgreSQL and SQL Server tables, Kafka topics. The
// conformance suite in sink/sinktest checks an adapter against it.
package sink

import (
	"context"

	"github.com/dvsync/dvsync/change"
)

// Sink writes mapped change records to a destination.
//
// Durability: Write returns nil only when every record of the batch is
// durable at the destination, so that the engine may ack the source.
//
// Idempotence: every write is an upsert by key or a delete by key, and a
// delete of a missing row succeeds, so a replayed batch leaves the
// destination unchanged.
//
// Ordering: the engine hands a sink at most one record per key in a batch
// (it folds the rest), and never writes two batches holding the same key
// concurrently. Within those rules a sink may write a batch's records in
// any order and in parallel.
//
// Partial failure: when some records fail and others are durable, Write
// returns a *change.BatchError naming the failed indexes. Any other error
// means none of the batch may be assumed durable; the engine will retry it
// whole. Errors are classified with change.Retryable and change.Permanent.
//
// Write may be called from several goroutines at once.
type Sink interface {
	Write(ctx context.Context, batch []change.Record) error
	// Close releases resources after the last Write has returned.
	Close(ctx context.Context) error
}
