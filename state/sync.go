package state

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/dvsync/dvsync/change"
)

// SyncStore keeps the state of bidirectional mappings: per mapped row, the
// values last synced to both sides and what dvsync knows of each side's
// version, and the conflicts parked for an operator. Both Bolt and
// Postgres implement it; their storage for it is created on first use.
//
// Every method returns only after its write is durable, and is safe for
// concurrent use. Keys are opaque bytes (conflict.KeyBytes); mapping names
// any string.
type SyncStore interface {
	// SyncEntries returns the entries stored under keys of mapping, in the
	// order of keys; found[i] is false where none is.
	SyncEntries(ctx context.Context, mapping string, keys [][]byte) (entries []SyncEntry, found []bool, err error)
	// PutSyncEntries stores entries under keys of mapping, replacing
	// what was there, in one durable write: all or none.
	PutSyncEntries(ctx context.Context, mapping string, keys [][]byte, entries []SyncEntry) error
	// ParkConflict stores c, assigning and returning its ID (c.ID is
	// ignored). IDs increase in the order conflicts were parked.
	ParkConflict(ctx context.Context, c ParkedConflict) (uint64, error)
	// ParkedConflicts returns up to limit parked conflicts of mapping,
	// oldest first; all of them when limit <= 0.
	ParkedConflicts(ctx context.Context, mapping string, limit int) ([]ParkedConflict, error)
	// ParkedConflict returns mapping's parked conflict id, or an error
	// wrapping ErrNotFound.
	ParkedConflict(ctx context.Context, mapping string, id uint64) (ParkedConflict, error)
	// DeleteParkedConflict removes mapping's parked conflict id, or
	// returns an error wrapping ErrNotFound.
	DeleteParkedConflict(ctx context.Context, mapping string, id uint64) error
}

var (
	_ SyncStore = (*Bolt)(nil)
	_ SyncStore = (*Postgres)(nil)
)

// SyncEntry is what dvsync remembers of one row of a bidirectional
// mapping. Rows are in the source table's column names (the canonical
// space of package conflict).
type SyncEntry struct {
	// Values are the row as last synced to both sides; nil when Deleted.
	Values change.Row
	// Deleted is true when the row was last synced as deleted.
	Deleted bool
	// SourceSeen and DataverseSeen identify a version of the row on one
	// side that the pipeline writing to that side met in a conflict and
	// decided, and that the side's own pipeline has not read yet (zero:
	// none pending). It recognises that version as decided, and older
	// ones as superseded. For the source it is the row's fingerprint
	// (conflict.Fingerprint) and SourceTime is when the conflict was
	// decided; for Dataverse it is the row's versionnumber.
	SourceSeen, DataverseSeen uint64
	SourceTime                time.Time
	// DataverseVersion is the Dataverse row's ETag as last written or
	// read by dvsync; empty when unknown. Writes to Dataverse are
	// conditional on it.
	DataverseVersion string
	// DataverseTime is the Dataverse row's modifiedon as last known.
	DataverseTime time.Time
	// SourceOwed and DataverseOwed are true when that side has not yet
	// been given Values: a conflict was decided by the pipeline writing to
	// the other side, and the next change from the owed side's own
	// counterpart pipeline carries the decision over.
	SourceOwed, DataverseOwed bool
	// SourceBefore is, while SourceOwed, the source row the owed values
	// are to replace: the version the conflict was decided against, so
	// that writing them is conditional on the row still being that
	// version. SourceBeforeDeleted says that version is a deleted row.
	// Both zero: unknown.
	SourceBefore        change.Row
	SourceBeforeDeleted bool
	// Decisions counts the conflicts decided over the row (and settled by
	// an operator). A write prepared before the latest decision does not
	// carry the synced state any more when it completes.
	Decisions uint64
	// Updated is when the entry was written.
	Updated time.Time
}

// ParkedConflict is a conflict the manual policy left for an operator:
// both versions of a row, and the values last synced before them.
type ParkedConflict struct {
	// ID is assigned by ParkConflict.
	ID      uint64
	Mapping string
	// Key is the row's key in the source table's names; SyncKey its
	// encoding, under which its SyncEntry is stored.
	Key     change.Key
	SyncKey []byte
	// Base is the row as last synced; BaseKnown is false when the row
	// was never synced.
	Base      change.Row
	BaseKnown bool
	// Source and Dataverse are the two versions, in the source table's
	// names; a nil row with the Deleted flag set is a deletion.
	Source, Dataverse               change.Row
	SourceDeleted, DataverseDeleted bool
	SourceTime, DataverseTime       time.Time
	// DataverseVersion is the Dataverse row's ETag when the conflict was
	// parked.
	DataverseVersion string
	// Detected is when the conflict was parked.
	Detected time.Time
}

const syncEntryV1 = 1

func appendSyncEntry(dst []byte, e *SyncEntry) []byte {
	dst = append(dst, syncEntryV1)
	var flags byte
	for i, f := range []bool{e.Deleted, e.SourceOwed, e.DataverseOwed, e.SourceBeforeDeleted} {
		if f {
			flags |= 1 << i
		}
	}
	dst = append(dst, flags)
	dst = appendRow(dst, e.Values)
	dst = binary.BigEndian.AppendUint64(dst, e.SourceSeen)
	dst = binary.BigEndian.AppendUint64(dst, e.DataverseSeen)
	dst = appendTime(dst, e.SourceTime)
	dst = appendString(dst, e.DataverseVersion)
	dst = appendTime(dst, e.DataverseTime)
	dst = appendRow(dst, e.SourceBefore)
	dst = appendTime(dst, e.Updated)
	return binary.BigEndian.AppendUint64(dst, e.Decisions)
}

func decodeSyncEntry(b []byte) (SyncEntry, error) {
	d := decoder{b: b}
	var e SyncEntry
	if v := d.byte(); d.err == nil && v != syncEntryV1 {
		return e, fmt.Errorf("unknown sync entry version %d", v)
	}
	flags := d.byte()
	e.Deleted, e.SourceOwed, e.DataverseOwed = flags&1 != 0, flags&2 != 0, flags&4 != 0
	e.SourceBeforeDeleted = flags&8 != 0
	e.Values = d.row()
	e.SourceSeen = d.uint64()
	e.DataverseSeen = d.uint64()
	e.SourceTime = d.time()
	e.DataverseVersion = d.string()
	e.DataverseTime = d.time()
	e.SourceBefore = d.row()
	e.Updated = d.time()
	if d.err == nil && len(d.b) != 0 {
		// Entries written before Decisions was kept end here: none.
		e.Decisions = d.uint64()
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return e, d.err
}

const parkedV1 = 1

func appendParked(dst []byte, c *ParkedConflict) []byte {
	dst = append(dst, parkedV1)
	dst = appendString(dst, c.Mapping)
	dst = appendColumns(dst, c.Key)
	dst = appendBytes(dst, c.SyncKey)
	var flags byte
	for i, f := range []bool{c.BaseKnown, c.SourceDeleted, c.DataverseDeleted} {
		if f {
			flags |= 1 << i
		}
	}
	dst = append(dst, flags)
	dst = appendRow(dst, c.Base)
	dst = appendRow(dst, c.Source)
	dst = appendRow(dst, c.Dataverse)
	dst = appendTime(dst, c.SourceTime)
	dst = appendTime(dst, c.DataverseTime)
	dst = appendString(dst, c.DataverseVersion)
	return appendTime(dst, c.Detected)
}

func decodeParked(id uint64, b []byte) (ParkedConflict, error) {
	d := decoder{b: b}
	c := ParkedConflict{ID: id}
	if v := d.byte(); d.err == nil && v != parkedV1 {
		return c, fmt.Errorf("unknown parked conflict version %d", v)
	}
	c.Mapping = d.string()
	c.Key = change.Key(d.columns())
	c.SyncKey = d.bytes()
	flags := d.byte()
	c.BaseKnown, c.SourceDeleted, c.DataverseDeleted = flags&1 != 0, flags&2 != 0, flags&4 != 0
	c.Base = d.row()
	c.Source = d.row()
	c.Dataverse = d.row()
	c.SourceTime = d.time()
	c.DataverseTime = d.time()
	c.DataverseVersion = d.string()
	c.Detected = d.time()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return c, d.err
}

// uint64 reads a big-endian uint64.
func (d *decoder) uint64() uint64 {
	b := d.take(8)
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
