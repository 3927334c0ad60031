// Package state keeps what dvsync must remember across restarts: each
// source's acked position and the dead-letter records. The default store is
// an embedded file (bbolt); the Store interface lets a PostgreSQL-table
// store stand in where the local disk is not durable.
package state

import (
	"context"
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
	// oldest first.
	DeadLetters(ctx context.Context, pipeline string, limit int) ([]DeadLetter, error)
	Close() error
}

// DeadLetter is a record that could not be mapped or written, kept with
// the reason so an operator can inspect and replay it.
type DeadLetter struct {
	Pipeline string
	// Stage is where it failed: "map" or "write".
	Stage  string
	Reason string
	Time   time.Time
	Record change.Record
}
