package emulator

import (
	"bytes"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestNewID: ids are RFC 9562 version 7 UUIDs that start with the current
// Unix millisecond, grow strictly, also many to a millisecond, and differ
// in their random bits.
func TestNewID(t *testing.T) {
	before := time.Now().UnixMilli()
	const n = 20_000 // more than the 4,096 a millisecond's counter holds
	got := make([]uuid.UUID, n)
	for i := range got {
		got[i] = newID()
	}
	after := time.Now().UnixMilli()
	random := map[[8]byte]bool{}
	for i, id := range got {
		if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
			t.Fatalf("id %d %s: version %d, variant %v", i, id, id.Version(), id.Variant())
		}
		var ms int64
		for _, b := range id[:6] {
			ms = ms<<8 | int64(b)
		}
		// The counter may run into milliseconds ahead of the clock.
		if ms < before || ms > after+n/4096+1 {
			t.Fatalf("id %d %s: millisecond %d, not in [%d, %d]", i, id, ms, before, after)
		}
		if i > 0 && bytes.Compare(got[i-1][:], id[:]) >= 0 {
			t.Fatalf("id %d %s does not follow %s", i, id, got[i-1])
		}
		random[[8]byte(id[8:])] = true
	}
	if len(random) != n {
		t.Errorf("%d ids share %d random parts", n, len(random))
	}
}
