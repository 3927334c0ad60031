package emulator

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/google/uuid"
)

// TestRowIndexMatchesMap: puts, removes and lookups on a rowIndex give what
// a map gives, through growth and with hashes that collide often, so that
// long probe runs and the shifting back on removal are exercised.
func TestRowIndexMatchesMap(t *testing.T) {
	// spread is how many distinct hashes there are (0: no limit), spaced
	// evenly, so that the runs of a few also wrap around the table's end.
	for _, spread := range []uint64{0, 64, 3} {
		x := rowIndex[string]{keyOf: func(r *row) string { return r.vals[0].(string) }}
		want := map[string]*row{}
		rnd := rand.New(rand.NewPCG(1, spread))
		hash := func(k string) uint64 {
			if spread == 0 {
				return hashKey(k)
			}
			return hashKey(k) % spread * (math.MaxUint64 / spread)
		}
		for step := range 20000 {
			k := strconv.Itoa(rnd.IntN(2000))
			switch rnd.IntN(3) {
			case 0, 1:
				r := &row{id: uuid.New(), vals: []any{k}}
				x.put(hash(k), k, r)
				want[k] = r
			case 2:
				old := want[k]
				id := uuid.New() // another row's id leaves the entry
				if old != nil && rnd.IntN(2) == 0 {
					id = old.id
				}
				removed := x.remove(hash(k), k, id)
				if removed != (old != nil && old.id == id) {
					t.Fatalf("spread %d step %d: remove(%s) = %v", spread, step, k, removed)
				}
				if removed {
					delete(want, k)
				}
			}
			if x.len() != len(want) {
				t.Fatalf("spread %d step %d: len %d, want %d", spread, step, x.len(), len(want))
			}
		}
		for i := range 2000 {
			k := strconv.Itoa(i)
			if got := x.get(hash(k), k); got != want[k] {
				t.Fatalf("spread %d: get(%s) = %p, want %p", spread, k, got, want[k])
			}
		}
		n := 0
		for r := range x.all() {
			n++
			if r == nil {
				t.Fatal("all yielded nil")
			}
		}
		if n != len(want) {
			t.Fatalf("spread %d: all yielded %d rows, want %d", spread, n, len(want))
		}
		x.clear()
		if x.len() != 0 || x.get(hash("1"), "1") != nil {
			t.Fatalf("spread %d: clear left rows", spread)
		}
	}
}

// TestHashIDSpreads: sequential ids, as a client might choose, land in
// distinct slots of a small table about as often as random ones would.
func TestHashIDSpreads(t *testing.T) {
	const n, slots = 1024, 4096
	used := map[uint64]bool{}
	for i := range n {
		var id uuid.UUID
		id[15] = byte(i)
		id[14] = byte(i >> 8)
		used[hashID(id)%slots] = true
	}
	// Random placement of 1024 keys in 4096 slots fills about 907.
	if len(used) < 850 {
		t.Fatalf("%d distinct slots of %d for sequential ids", len(used), n)
	}
}
