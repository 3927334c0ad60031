package postgres

import (
	"encoding/binary"
	"fmt"

	"github.com/jackc/pglogrepl"

	"github.com/dvsync/dvsync/change"
)

// position locates a record in the change stream: the commit LSN of its
// transaction and its index among the row changes pgoutput sent for that
// transaction. Replaying a transaction from the WAL yields the same
// changes in the same order, so the pair names one record across
// restarts, and records of one transaction can be acked one by one.
//
// The zero position precedes every record.
type position struct {
	commit pglogrepl.LSN
	index  uint64
}

// Encoded positions start with a tag naming their phase and layout, so a
// snapshot phase (with its last key) can be added without ambiguity.
const (
	tagStream   = 1 // tag, commit LSN, index: 17 bytes
	streamBytes = 1 + 8 + 8
)

func (p position) encode() change.Position {
	b := make([]byte, 0, streamBytes)
	b = append(b, tagStream)
	b = binary.BigEndian.AppendUint64(b, uint64(p.commit))
	b = binary.BigEndian.AppendUint64(b, p.index)
	return b
}

func decodePosition(b change.Position) (position, error) {
	if len(b) != streamBytes || b[0] != tagStream {
		return position{}, fmt.Errorf("postgres: not a position of this source (%d bytes, tag %d)", len(b), firstByte(b))
	}
	return position{
		commit: pglogrepl.LSN(binary.BigEndian.Uint64(b[1:])),
		index:  binary.BigEndian.Uint64(b[9:]),
	}, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// after reports whether p comes after q in the stream.
func (p position) after(q position) bool {
	return p.commit > q.commit || p.commit == q.commit && p.index > q.index
}

func (p position) String() string { return fmt.Sprintf("%s#%d", p.commit, p.index) }
