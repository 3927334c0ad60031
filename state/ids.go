package state

import (
	"context"

	"github.com/dvsync/dvsync/change"
)

// IDIndex remembers, per Dataverse row id, the key attributes of the row,
// so that a delete Dataverse reports by id alone (a change-tracking
// @removed entry) can still be mapped to the source row its mapping keys
// by an alternate key. Both Bolt and Postgres implement it; their storage
// for it is created on first use.
//
// Spaces are opaque names (a pipeline and a table); ids are compared as
// given. Every method is safe for concurrent use and returns only after
// its write is durable.
type IDIndex interface {
	// PutIDKeys stores, in one durable write, each entry's key attributes
	// under its id, or forgets the id when Key is nil.
	PutIDKeys(ctx context.Context, space string, entries []IDKey) error
	// IDKey returns the key attributes stored under id, or false.
	IDKey(ctx context.Context, space, id string) (change.Row, bool, error)
}

// IDKey is one entry of an IDIndex.
type IDKey struct {
	ID string
	// Key holds the row's key attributes and their values; nil forgets
	// the id.
	Key change.Row
}

var (
	_ IDIndex = (*Bolt)(nil)
	_ IDIndex = (*Postgres)(nil)
)

func encodeIDKey(key change.Row) []byte {
	return AppendRecord(nil, &change.Record{After: key})
}

func decodeIDKey(b []byte) (change.Row, error) {
	r, err := DecodeRecord(b)
	return r.After, err
}
