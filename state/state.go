// Package state keeps what dvsync must remember across restarts: each
// source's acked position and the dead-letter records. The default store is
// an embedded file (bbolt); the Store interface lets a PostgreSQL-table
// store stand in where the local disk is not durable.
package state

import (
	"context"
	"errors"
	"time"

	"github.com/dvsync/dvsync/change"
)

// Store is durable, concurrency-safe storage for dvsync's own state.
// Every method returns only after its write is on disk.
type Store interface {
	// Position returns the last saved position of the named pipeline, or
	// nil if none was ever saved.
	Position(ctx context.Context, pipeline string) (change.Position, error)
	// SavePosition records pos as the named pipeline's acked position.
	SavePosition(ctx context.Context, pipeline string, pos change.Position) error
	// PutDeadLetters stores records that could not be written, with their
	// reasons, in one durable write.
	PutDeadLetters(ctx context.Context, letters []DeadLetter) error
	// DeadLetters returns up to limit dead letters of the named pipeline,
	// oldest first, each with its ID set; all of them when limit <= 0.
	DeadLetters(ctx context.Context, pipeline string, limit int) ([]DeadLetter, error)
	// DeadLetter returns the named pipeline's dead letter with the given
	// ID, or an error wrapping ErrNotFound.
	DeadLetter(ctx context.Context, pipeline string, id uint64) (DeadLetter, error)
	// DeleteDeadLetter removes the named pipeline's dead letter with the
	// given ID, or returns an error wrapping ErrNotFound if there is none.
	DeleteDeadLetter(ctx context.Context, pipeline string, id uint64) error
	Close() error
}

// ErrNotFound is wrapped by errors about a dead letter that does not exist
// (any more: an operator may have retried or dropped it).
var ErrNotFound = errors.New("not found")

// DeadLetter is a record that could not be mapped or written, kept with
// the reason so an operator can inspect and replay it.
type DeadLetter struct {
	// ID identifies the letter within its store. The store assigns it when
	// the letter is put (PutDeadLetters ignores the field); IDs increase in
	// the order letters were put.
	ID       uint64
	Pipeline string
	// Stage is where it failed: "map" or "write".
	Stage  string
	Reason string
	Time   time.Time
	// Record is the record that failed: the source record when Stage is
	// "map", the mapped record handed to the sink when Stage is "write".
	Record change.Record
	// Sources are, when Stage is "write", the source records that were
	// mapped and folded into Record, in the order the source emitted
	// them: re-mapping and writing them in that order reproduces Record
	// under the current mappings. Nil when Stage is "map".
	Sources []change.Record
}
