package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dvsync/dvsync/change"
)

// A position names one message: its topic, partition and offset.
//
//	byte 0      positionVersion
//	uvarint     partition
//	uvarint     offset
//	rest        topic
//
// It names a single message rather than a set of offsets so that it stays
// small however many partitions a source reads; the source learns from the
// order in which it returned records which offsets of the other partitions
// an ack covers (see pending).
const positionVersion = 1

// encodePosition returns the position of the message at offset of
// topic/partition.
func encodePosition(topic string, partition int, offset int64) change.Position {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(topic))
	b = append(b, positionVersion)
	b = binary.AppendUvarint(b, uint64(partition))
	b = binary.AppendUvarint(b, uint64(offset))
	return append(b, topic...)
}

// decodePosition parses a position made by encodePosition.
func decodePosition(pos change.Position) (topic string, partition int, offset int64, err error) {
	if len(pos) == 0 || pos[0] != positionVersion {
		return "", 0, 0, errors.New("kafka: not a Kafka source position")
	}
	b := pos[1:]
	p, n := binary.Uvarint(b)
	if n <= 0 || p > 1<<31-1 {
		return "", 0, 0, errors.New("kafka: malformed position: partition")
	}
	b = b[n:]
	o, n := binary.Uvarint(b)
	if n <= 0 || o > 1<<63-1 {
		return "", 0, 0, errors.New("kafka: malformed position: offset")
	}
	return string(b[n:]), int(p), int64(o), nil
}

// partitionKey identifies a partition of a topic.
type partitionKey struct {
	topic     string
	partition int
}

func (p partitionKey) String() string { return fmt.Sprintf("%s/%d", p.topic, p.partition) }

// entry is one message in the order the source handed it on.
type entry struct {
	partitionKey
	offset int64
	// gen is the group generation the message was fetched in.
	gen int32
	// skipped marks a message that became no record (an echo, a Debezium
	// heartbeat): nothing downstream will ack it, so it is released with
	// the records before it.
	skipped bool
}

// pending lists, in emission order, the messages the source has handed on
// and nobody has acked yet. An ack of a record's position releases every
// entry up to and including that record's, because the engine acks a
// contiguous watermark over the emission order; within a partition the
// entries are in offset order, so the released offsets of each partition
// are a prefix and the commit is contiguous.
//
// It is not safe for concurrent use; Source guards it.
type pending struct {
	entries []entry
	head    int // entries[:head] are released; compacted now and then
}

func (q *pending) add(e entry) { q.entries = append(q.entries, e) }

// release removes the entries up to and including the first one for
// (k, offset), then any skipped entries right after it, and records in
// into the next offset to commit for each partition they belong to. It
// reports false, and removes nothing, when no entry matches: the position
// was released already or was never returned by this source.
//
// The first match from the front is the right one even when a rebalance
// made the source read a message twice: acks never go backwards, so an
// earlier copy is always acked before a later one.
func (q *pending) release(k partitionKey, offset int64, into map[partitionKey]int64) bool {
	i := q.head
	for ; i < len(q.entries); i++ {
		if e := &q.entries[i]; e.offset == offset && e.partitionKey == k {
			break
		}
	}
	if i == len(q.entries) {
		return false
	}
	end := i + 1
	for end < len(q.entries) && q.entries[end].skipped {
		end++
	}
	for _, e := range q.entries[q.head:end] {
		if next, ok := into[e.partitionKey]; !ok || e.offset+1 > next {
			into[e.partitionKey] = e.offset + 1
		}
	}
	clear(q.entries[q.head:end])
	q.head = end
	if q.head > 1024 && q.head*2 > len(q.entries) {
		n := copy(q.entries, q.entries[q.head:])
		q.entries = q.entries[:n]
		q.head = 0
	}
	return true
}

// outstanding reports whether an entry of generation gen is unreleased.
func (q *pending) outstanding(gen int32) bool {
	for _, e := range q.entries[q.head:] {
		if e.gen == gen && !e.skipped {
			return true
		}
	}
	return false
}

// trailingSkips releases skipped entries at the front of the queue, when
// nothing unacked precedes them, into into.
func (q *pending) trailingSkips(into map[partitionKey]int64) {
	for q.head < len(q.entries) && q.entries[q.head].skipped {
		e := q.entries[q.head]
		if next, ok := into[e.partitionKey]; !ok || e.offset+1 > next {
			into[e.partitionKey] = e.offset + 1
		}
		q.entries[q.head] = entry{}
		q.head++
	}
}

// dropGeneration forgets the unreleased entries of generation gen: the
// partitions were given up, and whoever reads them next starts from the
// committed offsets.
func (q *pending) dropGeneration(gen int32) {
	kept := q.entries[:q.head]
	for _, e := range q.entries[q.head:] {
		if e.gen != gen {
			kept = append(kept, e)
		}
	}
	clear(q.entries[len(kept):])
	q.entries = kept
}
