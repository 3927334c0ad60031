package engine

import "github.com/dvsync/dvsync/change"

// item is one mapped record on its way to a worker.
type item struct {
	seq uint64 // emission sequence number, for the ack tracker
	at  int64  // when the reader routed it, in nanoseconds since the pipeline started
	key string // destination table and key, encoded unambiguously
	rec change.Record
	// src is the source record rec was mapped from, kept for dead letters
	// (an operator re-drives the source record under fixed mappings) and
	// for metrics labelled by source table. It points into the slice the
	// source returned, which nothing modifies: a pointer keeps items small.
	src *change.Record
	// table is src's table, copied so that counting written records does
	// not touch the source records again.
	table string
}

// owners lists the sequence numbers folded into one written record. Most
// records fold nothing, so the first is kept inline. item is the index in
// the batch of the first item folded in.
type owners struct {
	first uint64
	more  []uint64
	item  int
}

func (o *owners) appendTo(dst []uint64) []uint64 {
	return append(append(dst, o.first), o.more...)
}

func (o *owners) count() int { return 1 + len(o.more) }

// coalescer folds a worker's batch so that it holds one record per key.
// It is reused from batch to batch and is not safe for concurrent use.
type coalescer struct {
	index  map[string]int // key -> index in out
	out    []change.Record
	owners []owners
}

func newCoalescer(size int) *coalescer {
	return &coalescer{
		index:  make(map[string]int, size),
		out:    make([]change.Record, 0, size),
		owners: make([]owners, 0, size),
	}
}

// fold replaces out and owners with the folded form of items, which must
// be in emission order. Records keep the order of each key's first change.
func (c *coalescer) fold(items []item) {
	c.reset()
	for i := range items {
		it := &items[i]
		j, seen := c.index[it.key]
		if !seen {
			c.index[it.key] = len(c.out)
			c.out = append(c.out, it.rec)
			c.owners = append(c.owners, owners{first: it.seq, item: i})
			continue
		}
		c.out[j] = fold(&c.out[j], &it.rec)
		c.owners[j].more = append(c.owners[j].more, it.seq)
	}
}

// reset empties the batch, dropping references to its records so they can
// be collected while the worker waits for the next batch.
func (c *coalescer) reset() {
	clear(c.index)
	clear(c.out)
	clear(c.owners)
	c.out = c.out[:0]
	c.owners = c.owners[:0]
}

// fold returns the single change equivalent to prev followed by next, two
// changes to the same key:
//
//   - a delete ends the chain: whatever came before, the result is next;
//   - after a delete, an insert or update starts afresh: the result is next,
//     with only its own columns, because the row it updated is gone;
//   - otherwise next's columns are laid over prev's (change.Merge: an
//     Unchanged column keeps prev's value); an insert or read followed by
//     updates stays an insert or read, and Before is the row as it was
//     before the whole chain.
//
// Position, commit time, origin and meta are next's: the result stands for
// the state after next. Neither input is modified.
func fold(prev, next *change.Record) change.Record {
	if next.Op == change.OpDelete || prev.Op == change.OpDelete {
		return *next
	}
	out := *next
	out.After = change.Merge(prev.After, next.After)
	out.Before = prev.Before
	if prev.Op == change.OpInsert || prev.Op == change.OpRead {
		out.Op = prev.Op
	}
	return out
}
