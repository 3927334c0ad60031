package postgres

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

func TestAckTracker(t *testing.T) {
	pos := func(commit pglogrepl.LSN, index uint64) position { return position{commit, index} }
	const start = pglogrepl.LSN(50)

	type step struct {
		do   func(a *ackTracker)
		want pglogrepl.LSN // confirmed LSN after the step
	}
	commit := func(c, end pglogrepl.LSN, records bool, last uint64) func(*ackTracker) {
		return func(a *ackTracker) { a.committed(c, end, records, last) }
	}
	ack := func(p position) func(*ackTracker) { return func(a *ackTracker) { a.ack(p) } }
	idle := func(l pglogrepl.LSN) func(*ackTracker) { return func(a *ackTracker) { a.idle(l) } }

	for _, tc := range []struct {
		name  string
		from  position
		steps []step
	}{
		{"partly acked transaction is not confirmed", position{}, []step{
			{commit(100, 110, true, 2), start},
			{ack(pos(100, 0)), start},
			{ack(pos(100, 1)), start},
			{ack(pos(100, 2)), 110},
		}},
		{"ack before commit", position{}, []step{
			{ack(pos(100, 2)), start},
			{commit(100, 110, true, 2), 110},
		}},
		{"ack of a later transaction confirms earlier ones", position{}, []step{
			{commit(100, 110, true, 2), start},
			{commit(200, 210, true, 0), start},
			{ack(pos(200, 0)), 210},
		}},
		{"transactions without records are confirmed with the one before", position{}, []step{
			{commit(100, 110, true, 1), start},
			{commit(150, 160, false, 0), start},
			{commit(170, 180, false, 0), start},
			{ack(pos(100, 1)), 180},
			{commit(190, 195, false, 0), 195},
		}},
		{"transaction without records, nothing pending", position{}, []step{
			{commit(100, 110, false, 0), 110},
		}},
		{"idle confirms only when everything is acked", position{}, []step{
			{idle(60), 60},
			{commit(100, 110, true, 0), 60},
			{idle(300), 60},
			{ack(pos(100, 0)), 110},
			{idle(300), 300},
			{idle(200), 300}, // never backwards
		}},
		{"replay from inside a transaction", pos(100, 1), []step{
			// Records 0 and 1 were acked before the restart; 2 was not.
			{commit(100, 110, true, 2), start},
			{ack(pos(100, 2)), 110},
		}},
		{"replay of a fully acked transaction", pos(100, 2), []step{
			{commit(100, 110, true, 2), 110},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAckTracker(tc.from, start)
			for i, s := range tc.steps {
				s.do(a)
				if got := a.confirmedLSN(); got != s.want {
					t.Fatalf("step %d: confirmed %d, want %d", i, got, s.want)
				}
			}
		})
	}
}

func TestPosition(t *testing.T) {
	p := position{commit: 0x16B3748, index: 3}
	enc := p.encode()
	got, err := decodePosition(enc)
	if err != nil || got != p {
		t.Fatalf("decode(encode(%s)) = %s, %v", p, got, err)
	}
	if p.String() != "0/16B3748#3" {
		t.Errorf("String() = %q", p.String())
	}
	for _, bad := range [][]byte{nil, {}, enc[:10], append([]byte{9}, enc[1:]...)} {
		if _, err := decodePosition(bad); err == nil {
			t.Errorf("decodePosition(%x) succeeded", bad)
		}
	}
	order := []position{{}, {1, 0}, {1, 1}, {1, 7}, {2, 0}}
	for i := range order {
		for j := range order {
			if got := order[i].after(order[j]); got != (i > j) {
				t.Errorf("%s.after(%s) = %v", order[i], order[j], got)
			}
		}
	}
}
