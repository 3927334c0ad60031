package dataverse

import (
	"sync"

	"github.com/dvsync/dvsync/odataclient"
)

// Dataverse's service protection limits count per user, and a Client acts
// as one user: Sinks built on the same Client (one per pipeline) must share
// one limiter, or N pipelines would have N×52 requests in flight and be
// throttled as one. The registry below hands every such Sink the same
// limiter, and forgets it when the last of them closes.
var shared = struct {
	mu       sync.Mutex
	limiters map[*odataclient.Client]*limiterRef
}{limiters: make(map[*odataclient.Client]*limiterRef)}

type limiterRef struct {
	l    *limiter
	refs int
}

// sharedLimiter returns c's limiter, creating it with a cap of n requests
// in flight. A later Sink asking for a lower cap lowers it for all: the
// strictest configuration wins, since they all count against one user.
func sharedLimiter(c *odataclient.Client, n int) *limiter {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	ref, ok := shared.limiters[c]
	if !ok {
		ref = &limiterRef{l: newLimiter(c, n)}
		shared.limiters[c] = ref
	}
	ref.refs++
	if ok {
		l := ref.l
		l.mu.Lock()
		l.max = min(l.max, n)
		l.limit = min(l.limit, l.max)
		l.mu.Unlock()
	}
	return ref.l
}

// releaseLimiter drops one Sink's reference to c's limiter; the last one
// stops the limiter's pause timer and forgets it.
func releaseLimiter(c *odataclient.Client) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	ref, ok := shared.limiters[c]
	if !ok {
		return
	}
	ref.refs--
	if ref.refs == 0 {
		ref.l.stop()
		delete(shared.limiters, c)
	}
}
