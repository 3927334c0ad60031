// Package sinktest is the conformance suite every sink.Sink runs: writes
// read back, updates, Unchanged columns, deletes, idempotent replays,
// concurrent writes, Close and goroutine hygiene.
//
// A sink's own test supplies a Harness that reaches the destination
// independently of the sink under test, and calls Run:
//
//	func TestConformance(t *testing.T) { sinktest.Run(t, &harness{...}) }
package sinktest

import (
	"testing"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/sink"
)

// Harness lets the suite drive a sink and inspect the destination
// independently of the sink under test.
//
// The suite calls it from one goroutine at a time, except that sinks it
// returned may be written concurrently.
type Harness interface {
	// NewSink returns a new sink writing to the destination. The suite
	// closes it; the harness may register further cleanup on t.
	NewSink(t *testing.T) sink.Sink
	// Read returns the destination row for table/key, false if absent. It
	// must not go through the sink under test.
	Read(t *testing.T, table string, key change.Key) (change.Row, bool)
	// Table returns a destination table the suite may write to. Its rows
	// need not be empty at the start, but the suite's keys must not be
	// written by anyone else while it runs.
	Table() string
	// Key returns the key of the i-th test row, in destination column
	// names. Different i give different keys; the suite uses i < 1000.
	Key(i int) change.Key
	// Row returns the i-th test row's columns after mapping, in
	// destination names; it may include the key columns. Every column that
	// is not a key column must have different values for version 0 and
	// version 1, so that the suite can tell which version it reads.
	Row(i int, version int) change.Row
}

// Run runs every conformance case as a subtest of t, one after the other
// (the goroutine check needs a quiet process).
func Run(t *testing.T, h Harness) {
	s := &suite{h: h}
	t.Run("EmptyBatch", s.emptyBatch)
	t.Run("WriteThenRead", s.writeThenRead)
	t.Run("UpdateChangesValues", s.updateChangesValues)
	t.Run("UnchangedColumnsLeftAlone", s.unchangedColumnsLeftAlone)
	t.Run("Delete", s.delete)
	t.Run("DeleteMissingRow", s.deleteMissingRow)
	t.Run("ReplayIsNoOp", s.replayIsNoOp)
	t.Run("LargeBatch", s.largeBatch)
	t.Run("ConcurrentWrites", s.concurrentWrites)
	t.Run("CloseAfterUse", s.closeAfterUse)
	t.Run("NoGoroutineLeak", s.noGoroutineLeak)
}
