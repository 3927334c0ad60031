package postgres

import (
	"encoding/json"
	"fmt"

	"github.com/dvsync/dvsync/change"
)

// tagSnapshot starts the encoding of a backfill position, after the
// stream's tagStream, so a position given to the wrong kind of source is
// refused rather than misread.
const tagSnapshot = 2

// snapshotPosition is a backfill's progress at one record: for each table
// it has started, either done, or the key of the last row read. Records
// are acked in the order they were emitted, so when a record's position is
// acked, every row of every table up to the keys it names is durable.
type snapshotPosition struct {
	Tables map[string]*tableProgress `json:"tables"`
}

// tableProgress is one table's part of a snapshotPosition.
type tableProgress struct {
	// Where is the filter the table was read with; resuming with another
	// filter would leave rows out, so it is refused.
	Where string `json:"where,omitempty"`
	// After holds the text form of the paging key columns of the last row
	// read, in paging order: the next page starts after it. Nil before the
	// first row. Kept as bytes: the text form reads back exactly, whatever
	// the type, and it need not be valid UTF-8 in a SQL_ASCII database.
	After [][]byte `json:"after,omitempty"`
	// Rows counts the rows read so far.
	Rows int64 `json:"rows"`
	// Done is set once the last row has been read.
	Done bool `json:"done,omitempty"`
	// Ranges, when set, split a large table by key into ranges read in
	// parallel; each keeps its own progress, and After is unused.
	Ranges []*rangeProgress `json:"ranges,omitempty"`
}

// rangeProgress is one key range of a split table: the keys after From
// (from the first, when nil) up to and including To (to the last, when
// nil). Keys are in the text form of After.
type rangeProgress struct {
	From  [][]byte `json:"from,omitempty"`
	To    [][]byte `json:"to,omitempty"`
	After [][]byte `json:"after,omitempty"`
	Rows  int64    `json:"rows"`
	Done  bool     `json:"done,omitempty"`
}

func (p *snapshotPosition) encode() change.Position {
	body, err := json.Marshal(p)
	if err != nil {
		// Maps of strings, byte slices and numbers always marshal.
		panic(fmt.Sprintf("postgres: encode backfill position: %v", err))
	}
	return append([]byte{tagSnapshot}, body...)
}

// decodeSnapshotPosition reads a position made by encode. An empty
// position (nil, or saved empty to start over) is a backfill not begun.
func decodeSnapshotPosition(b change.Position) (*snapshotPosition, error) {
	p := &snapshotPosition{Tables: map[string]*tableProgress{}}
	if len(b) == 0 {
		return p, nil
	}
	if b[0] != tagSnapshot {
		return nil, fmt.Errorf("postgres: not a backfill position (%d bytes, tag %d); a streaming position cannot resume a backfill", len(b), firstByte(b))
	}
	if err := json.Unmarshal(b[1:], p); err != nil {
		return nil, fmt.Errorf("postgres: corrupt backfill position: %w", err)
	}
	if p.Tables == nil {
		p.Tables = map[string]*tableProgress{}
	}
	return p, nil
}
