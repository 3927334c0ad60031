package emulator

import (
	"encoding/binary"
	"hash/maphash"
	"iter"
	"math/bits"

	"github.com/google/uuid"
)

// rowIndex maps keys (a row id, or the rendering of an alternate key's
// values) to rows: open addressing with linear probing, each slot holding
// the row and its key's hash; the key itself is the row's, found by keyOf.
//
// It replaces a Go map because a table only grows during a bulk load and
// the map's growth was a fifth of the emulator's CPU per row: splitting a
// map rehashes every key, which for string keys reads each string where
// the row stored it. Here a slot keeps its key's hash, so growing copies
// slots of 16 bytes without touching the keys or rows, and a lookup
// derives a row's key only when the full 64-bit hashes agree, which all
// but never happens for another key. A key's home slot is taken from the
// top bits of its hash, so that doubling the table sends the slots of one
// stretch of the old table to one stretch of the new: growing writes
// memory nearly in order instead of at random. Deletion shifts the
// following slots back instead of leaving tombstones, so lookups never
// slow down with churn.
//
// A rowIndex is not safe for concurrent use; the table's lock guards it.
type rowIndex[K comparable] struct {
	slots []indexSlot // len is zero or a power of two
	shift uint8       // 64 - log2(len(slots)): home is hash >> shift
	n     int
	// keyOf returns the key under which r is indexed; it is the function
	// the caller derives k from for get, put and remove.
	keyOf func(r *row) K
}

type indexSlot struct {
	hash uint64
	r    *row // nil for an empty slot
}

// holds reports whether slot s holds key k of hash h.
func (x *rowIndex[K]) holds(s *indexSlot, h uint64, k K) bool {
	return s.hash == h && x.keyOf(s.r) == k
}

// minIndexSlots is the smallest table a first insert allocates.
const minIndexSlots = 16

// len returns the number of rows indexed.
func (x *rowIndex[K]) len() int { return x.n }

// get returns the row of key k with hash h, or nil.
func (x *rowIndex[K]) get(h uint64, k K) *row {
	if x.n == 0 {
		return nil
	}
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.r == nil {
			return nil
		}
		if x.holds(s, h, k) {
			return s.r
		}
	}
}

// put sets key k (hash h) to r, replacing the row it had; it reports
// whether k is new to the index.
func (x *rowIndex[K]) put(h uint64, k K, r *row) bool {
	// A load factor of at most 3/4 keeps probe runs short.
	if 4*(x.n+1) > 3*len(x.slots) {
		x.grow()
	}
	mask := uint64(len(x.slots) - 1)
	for i := h >> x.shift; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.r == nil {
			*s = indexSlot{hash: h, r: r}
			x.n++
			return true
		}
		if x.holds(s, h, k) {
			s.r = r
			return false
		}
	}
}

// grow doubles the table, placing each slot by its stored hash.
func (x *rowIndex[K]) grow() {
	old := x.slots
	x.slots = make([]indexSlot, max(minIndexSlots, 2*len(old)))
	x.shift = uint8(64 - bits.TrailingZeros(uint(len(x.slots))))
	mask := uint64(len(x.slots) - 1)
	for _, s := range old {
		if s.r == nil {
			continue
		}
		i := s.hash >> x.shift
		for x.slots[i].r != nil {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

// remove deletes key k (hash h) when it maps to the row with id id, and
// reports whether it did.
func (x *rowIndex[K]) remove(h uint64, k K, id uuid.UUID) bool {
	if x.n == 0 {
		return false
	}
	mask := uint64(len(x.slots) - 1)
	i := h >> x.shift
	for {
		s := &x.slots[i]
		if s.r == nil {
			return false
		}
		if x.holds(s, h, k) {
			if s.r.id != id {
				return false
			}
			break
		}
		i = (i + 1) & mask
	}
	// Shift back each following slot of the run that may live at i:
	// one whose home position is not cyclically within (i, j].
	for j := (i + 1) & mask; ; j = (j + 1) & mask {
		s := x.slots[j]
		if s.r == nil {
			break
		}
		home := s.hash >> x.shift
		if (j-home)&mask >= (j-i)&mask {
			x.slots[i] = s
			i = j
		}
	}
	x.slots[i] = indexSlot{}
	x.n--
	return true
}

// clear removes every row, keeping the table's memory.
func (x *rowIndex[K]) clear() {
	clear(x.slots)
	x.n = 0
}

// all yields the indexed rows in no particular order; the index must not
// change meanwhile.
func (x *rowIndex[K]) all() iter.Seq[*row] {
	return func(yield func(*row) bool) {
		for i := range x.slots {
			if r := x.slots[i].r; r != nil && !yield(r) {
				return
			}
		}
	}
}

// keySeed seeds the hashes of alternate-key renderings.
var keySeed = maphash.MakeSeed()

// hashKey is the hash of an alternate key's rendering (see indexKey).
func hashKey(k string) uint64 { return maphash.String(keySeed, k) }

// hashID is the hash of a row id. Ids are usually random (version 7: a
// millisecond clock, then random bits) but may be chosen by clients, so
// both halves are mixed.
func hashID(id uuid.UUID) uint64 {
	hi := binary.LittleEndian.Uint64(id[:8])
	lo := binary.LittleEndian.Uint64(id[8:])
	return mix64(lo ^ mix64(hi^idSeed))
}

// idSeed varies id hashes between processes, as map hashes do.
var idSeed = maphash.Comparable(maphash.MakeSeed(), 0)

// mix64 is a 64-bit finalizer (from MurmurHash3): every input bit affects
// every output bit, so sequential ids spread over the table.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
