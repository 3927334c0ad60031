package dataverse

import (
	"context"
	"errors"
	"sync"
)

// hookQueue gathers the webhook requests that arrive while the inbox is
// being written, so that one store write (one bbolt or PostgreSQL commit)
// admits all of them: group commit. Dataverse posts
// asynchronous steps from several workers at once, and a write per request
// would bound the receiver by the store's commit latency. Every request
// still answers only after the write that holds its change has returned.
//
// One request at a time is the leader: it takes everything waiting
// (itself included), writes it, hands leadership to the first request that
// arrived meanwhile, and then releases the ones it wrote. A leader writes
// one group only, so no request waits behind more than one write besides
// its own.
type hookQueue struct {
	mu      sync.Mutex
	waiting []*hookAdmission
	leading bool // a leader is writing or about to
}

// hookAdmission is one webhook request's change, waiting for its write.
type hookAdmission struct {
	c    candidate
	err  error         // the outcome, set before wake is closed
	lead bool          // set before wake is closed: write the next group
	wake chan struct{} // closed when written or when made leader
}

// admitHook admits c together with the webhook changes that arrive while
// another group is being written, and returns once the write that holds c
// has returned. A waiting request does not watch its own ctx: the write
// it waits for is bounded by the leader's. A leader's ctx bounds the write
// of its whole group: a leader whose client went away fails its group,
// whose requests answer 503 and are posted again by Dataverse.
func (s *Source) admitHook(ctx context.Context, c candidate) error {
	a := &hookAdmission{c: c, wake: make(chan struct{})}
	q := &s.hooksQ
	q.mu.Lock()
	q.waiting = append(q.waiting, a)
	if q.leading {
		q.mu.Unlock()
		<-a.wake
		if !a.lead {
			return a.err
		}
		q.mu.Lock()
	}
	q.leading = true
	group := q.waiting
	q.waiting = nil
	q.mu.Unlock()

	// Deferred so that a write that panics still passes leadership on and
	// releases its group, whose requests then fail rather than hang.
	defer func() {
		q.mu.Lock()
		if len(q.waiting) > 0 {
			next := q.waiting[0]
			next.lead = true
			close(next.wake)
		} else {
			q.leading = false
		}
		q.mu.Unlock()
		for _, g := range group {
			if g != a {
				close(g.wake)
			}
		}
	}()
	for _, g := range group {
		g.err = errNotWritten
	}
	s.admitGroup(ctx, group)
	return a.err
}

// errNotWritten is the outcome of a change whose group's write ended
// without one.
var errNotWritten = errors.New("dataverse source: webhook change not written")

// admitGroup stores group in one admission and records the outcome in
// each. When the joint write fails, each change is admitted alone, so one
// change that cannot be stored (one that does not encode) fails only its
// own request, as it would have without grouping.
func (s *Source) admitGroup(ctx context.Context, group []*hookAdmission) {
	cands := make([]candidate, len(group))
	for i, g := range group {
		cands[i] = g.c
	}
	_, err := s.admit(ctx, cands, nil)
	if err == nil || len(group) == 1 {
		for _, g := range group {
			g.err = err
		}
		return
	}
	for _, g := range group {
		_, g.err = s.admit(ctx, []candidate{g.c}, nil)
	}
}
