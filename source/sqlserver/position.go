package sqlserver

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/dvsync/dvsync/change"
)

// tagPosition starts every encoded position, so a position of another
// source is refused rather than misread.
const tagPosition = 'S'

// position is where the source stands in every table: each table's
// cursor, streaming or snapshotting. Records carry the position after
// them; acked in order, a position means every change it covers is
// durable downstream.
type position struct {
	Tables map[string]cursor `json:"tables"`
	// Seq numbers the records, so that records of one poll, which may
	// share cursors, still have distinct positions.
	Seq uint64 `json:"seq"`
}

// cursor is one table's progress.
//
// Streaming in change tracking mode, every change up to and including
// Version has been delivered. Streaming in CDC mode, every change row up
// to and including (LSN, Seqval, Op) has; a Seqval of all 0xFF bytes
// means the whole of LSN.
//
// While Snap is set, the table is being read whole (a backfill, or a
// re-snapshot after its cursor fell behind the retained changes), and
// Version or LSN is where streaming resumes once the read is done: the
// high-water mark taken before the read began.
type cursor struct {
	Version int64  `json:"v,omitempty"`
	LSN     []byte `json:"lsn,omitempty"`
	Seqval  []byte `json:"seq,omitempty"`
	Op      int64  `json:"op,omitempty"`
	Snap    *snap  `json:"snap,omitempty"`
}

// snap is a whole-table read in progress.
type snap struct {
	// After is the key of the last row read, nil before the first.
	After []keyValue `json:"after,omitempty"`
	// Rows counts the rows read so far.
	Rows int64 `json:"rows"`
}

// keyValue is a key column's value in a form that reads back as the same
// kind and can be passed as a parameter of the column's type.
type keyValue struct {
	Kind change.Kind `json:"k"`
	Text string      `json:"t"`
}

// allSeqval is the Seqval that covers a whole LSN.
var allSeqval = bytes.Repeat([]byte{0xFF}, 10)

func (p *position) encode() change.Position {
	body, err := json.Marshal(p)
	if err != nil {
		// Maps of strings, numbers and byte slices always marshal.
		panic(fmt.Sprintf("sqlserver: encode position: %v", err))
	}
	return append([]byte{tagPosition}, body...)
}

func decodePosition(b change.Position) (*position, error) {
	p := &position{Tables: map[string]cursor{}}
	if len(b) == 0 {
		return p, nil
	}
	if b[0] != tagPosition {
		return nil, fmt.Errorf("sqlserver: not a position of this source (%d bytes, tag %d)", len(b), b[0])
	}
	if err := json.Unmarshal(b[1:], p); err != nil {
		return nil, fmt.Errorf("sqlserver: corrupt position: %w", err)
	}
	if p.Tables == nil {
		p.Tables = map[string]cursor{}
	}
	return p, nil
}

func encodeKey(k change.Key) []keyValue {
	out := make([]keyValue, len(k))
	for i, c := range k {
		out[i] = keyValue{Kind: c.Value.Kind(), Text: c.Value.String()}
	}
	return out
}

// decodeKey reads back a key that encodeKey wrote, with names.
func decodeKey(names []string, kv []keyValue) (change.Key, error) {
	if len(kv) != len(names) {
		return nil, fmt.Errorf("sqlserver: position holds a key of %d columns, the table's has %d", len(kv), len(names))
	}
	k := make(change.Key, len(kv))
	for i, c := range kv {
		v, err := parseKeyValue(c)
		if err != nil {
			return nil, fmt.Errorf("sqlserver: position: key column %s: %w", names[i], err)
		}
		k[i] = change.Column{Name: names[i], Value: v}
	}
	return k, nil
}

func parseKeyValue(c keyValue) (change.Value, error) {
	switch c.Kind {
	case change.KindInt:
		n, err := strconv.ParseInt(c.Text, 10, 64)
		return change.Int(n), err
	case change.KindText:
		return change.Text(c.Text), nil
	case change.KindDecimal:
		return change.Decimal(c.Text)
	case change.KindBool:
		b, err := strconv.ParseBool(c.Text)
		return change.Bool(b), err
	case change.KindFloat:
		f, err := strconv.ParseFloat(c.Text, 64)
		return change.Float(f), err
	case change.KindTimestamp:
		t, err := time.Parse(time.RFC3339Nano, c.Text)
		return change.Timestamp(t), err
	case change.KindDate:
		t, err := time.Parse(time.DateOnly, c.Text)
		return change.Date(t), err
	case change.KindUUID:
		return change.ParseUUID(c.Text)
	case change.KindBytes:
		b, err := hex.DecodeString(c.Text)
		return change.Bytes(b), err
	}
	return change.Value{}, fmt.Errorf("a %s value cannot be a key", c.Kind)
}
