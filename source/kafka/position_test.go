package kafka

import (
	"fmt"
	"testing"
)

func TestPositionRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		topic     string
		partition int
		offset    int64
	}{{"orders", 0, 0}, {"a.b-c_d", 2147483647, 1<<63 - 1}, {"", 5, 12}} {
		pos := encodePosition(tc.topic, tc.partition, tc.offset)
		topic, p, off, err := decodePosition(pos)
		if err != nil || topic != tc.topic || p != tc.partition || off != tc.offset {
			t.Errorf("round trip of %v = %s/%d@%d, %v", tc, topic, p, off, err)
		}
	}
	for _, bad := range [][]byte{nil, {}, {2, 0, 0}, {1}, {1, 0x80}, {1, 0, 0x80}} {
		if _, _, _, err := decodePosition(bad); err == nil {
			t.Errorf("decodePosition(%x) accepted", bad)
		}
	}
}

func TestPendingReleasesContiguously(t *testing.T) {
	p0, p1 := partitionKey{"t", 0}, partitionKey{"t", 1}
	var q pending
	// Emission order interleaves partitions; a skipped message follows.
	for _, e := range []entry{
		{partitionKey: p0, offset: 10}, {partitionKey: p1, offset: 5}, {partitionKey: p0, offset: 11},
		{partitionKey: p1, offset: 6, skipped: true}, {partitionKey: p1, offset: 7}, {partitionKey: p0, offset: 12},
	} {
		q.add(e)
	}
	got := map[partitionKey]int64{}
	if !q.release(p0, 11, got) {
		t.Fatal("release of a returned position failed")
	}
	// Up to p0@11: p0 next is 12, p1 next is 7 (6 was skipped right after).
	if fmt.Sprint(got) != fmt.Sprint(map[partitionKey]int64{p0: 12, p1: 7}) {
		t.Errorf("released %v", got)
	}
	if q.release(p0, 10, got) {
		t.Error("a released position was released again")
	}
	if !q.outstanding(0) {
		t.Error("nothing outstanding although p1@7 and p0@12 are not acked")
	}
	q.dropGeneration(0)
	if q.outstanding(0) || q.release(p0, 12, got) {
		t.Error("entries of a dropped generation remain")
	}

	// A message read twice (before and after a rebalance): the first ack
	// releases the first copy only.
	q = pending{}
	for _, e := range []entry{{partitionKey: p0, offset: 1, gen: 1}, {partitionKey: p0, offset: 1, gen: 2}, {partitionKey: p0, offset: 2, gen: 2}} {
		q.add(e)
	}
	got = map[partitionKey]int64{}
	q.release(p0, 1, got)
	if !q.outstanding(2) || got[p0] != 2 {
		t.Errorf("after the first ack: outstanding(2)=%v, next %d", q.outstanding(2), got[p0])
	}
	q.release(p0, 1, got)
	q.release(p0, 2, got)
	if q.outstanding(2) || got[p0] != 3 {
		t.Errorf("after every ack: outstanding(2)=%v, next %d", q.outstanding(2), got[p0])
	}

	// Skipped messages at the front are released when nothing precedes.
	q = pending{}
	q.add(entry{partitionKey: p1, offset: 9, skipped: true})
	got = map[partitionKey]int64{}
	q.trailingSkips(got)
	if got[p1] != 10 {
		t.Errorf("leading skipped message not released: %v", got)
	}
}

func TestPendingCompacts(t *testing.T) {
	var q pending
	k := partitionKey{"t", 0}
	got := map[partitionKey]int64{}
	for i := range int64(5000) {
		q.add(entry{partitionKey: k, offset: i})
		if !q.release(k, i, got) {
			t.Fatalf("release %d failed", i)
		}
	}
	if len(q.entries) > 2100 || got[k] != 5000 {
		t.Errorf("%d entries kept after releasing all, next offset %d", len(q.entries), got[k])
	}
}
