package emulator

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ids is the state of newID, shared by every Server of the process so
// that ids grow across all of them.
var ids struct {
	mu   sync.Mutex
	ms   int64  // the Unix millisecond of the last id
	seq  uint16 // its counter within ms, 12 bits
	rnd  [64 * 8]byte
	left int // the last left bytes of rnd are unused
}

// newID returns an id for a new row: a version 7 UUID (RFC 9562), which
// starts with the Unix time in milliseconds, so that rows list in creation
// order by default, much as Dataverse's sequential GUIDs do. The 12 bits
// after the version count up within a millisecond (running into the next
// one when they run out, or when the clock steps back), so ids grow
// strictly; the 62 bits after the variant are random. They are read from
// crypto/rand a block at a time, since a bulk message draws an id per
// row.
func newID() uuid.UUID {
	ids.mu.Lock()
	defer ids.mu.Unlock()
	if ms := time.Now().UnixMilli(); ms > ids.ms {
		ids.ms, ids.seq = ms, 0
	} else if ids.seq++; ids.seq > 0xfff {
		ids.ms, ids.seq = ids.ms+1, 0
	}
	if ids.left < 8 {
		_, _ = rand.Read(ids.rnd[:]) // never fails: it crashes the program instead
		ids.left = len(ids.rnd)
	}
	var id uuid.UUID
	copy(id[8:], ids.rnd[len(ids.rnd)-ids.left:])
	ids.left -= 8
	ms := ids.ms
	for i := 5; i >= 0; i-- {
		id[i] = byte(ms)
		ms >>= 8
	}
	id[6] = 0x70 | byte(ids.seq>>8)
	id[7] = byte(ids.seq)
	id[8] = id[8]&0x3f | 0x80
	return id
}
