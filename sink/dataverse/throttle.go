package dataverse

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// MaxConcurrency is the most requests a Sink has in flight: Dataverse's
// default limit of concurrent requests per user. Above it every extra
// request is answered 429 at once.
const MaxConcurrency = 52

// Stats are a Sink's current throttling figures.
type Stats struct {
	// Limit is the number of requests currently allowed in flight; it
	// halves on throttling and grows by one after Limit successes in a
	// row, up to Ceiling.
	Limit int
	// Ceiling is the configured concurrency, lowered to the service's
	// x-ms-dop-hint when it sends a smaller one.
	Ceiling int
	// InFlight is the number of requests being sent now.
	InFlight int
	// PausedUntil is when the service's last Retry-After ends; requests
	// wait until then. Zero or past when not paused.
	PausedUntil time.Time
	// Requests counts the HTTP requests sent, Throttled those answered
	// with throttling (429 or a service protection code), Retries the
	// requests sent again after a temporary failure.
	Requests, Throttled, Retries int64
}

// limiter bounds the requests in flight and adapts the bound the way TCP
// adapts its window: halve on throttling, add one after a window's worth
// of successes. It also holds every request back while the service's
// Retry-After runs, because service protection counts per user, not per
// connection: one 429 means every goroutine should wait.
//
// Waiters are served first come, first served, and a freed slot wakes one
// waiter only: with hundreds of goroutines queued, waking them all on
// every release would spend the CPU the requests need.
type limiter struct {
	max    int
	client *odataclient.Client

	mu          sync.Mutex
	limit       int
	inFlight    int
	successes   int       // in a row since the last change of limit
	lastCut     time.Time // when limit was last halved
	pausedUntil time.Time
	pauseTimer  *time.Timer // grants the queue when the pause ends
	waiters     []*waiter
	stats       Stats
}

// waiter is one acquire queued for a slot. granted is set, under the
// limiter's lock, when the slot is handed over and ready closed.
type waiter struct {
	ready   chan struct{}
	granted bool
}

func newLimiter(client *odataclient.Client, n int) *limiter {
	return &limiter{max: n, limit: n, client: client}
}

// ceiling is max lowered to the service's hint. Callers hold mu.
func (l *limiter) ceiling() int {
	if h := l.client.DOPHint(); h > 0 && h < l.max {
		return h
	}
	return l.max
}

// acquire waits for a slot and for any pause to end.
func (l *limiter) acquire(ctx context.Context) error {
	l.mu.Lock()
	l.limit = min(l.limit, l.ceiling())
	if len(l.waiters) == 0 && l.available(time.Now()) {
		l.take()
		l.mu.Unlock()
		return nil
	}
	w := &waiter{ready: make(chan struct{})}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()

	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		if w.granted {
			// Granted as ctx ended: pass the slot on.
			l.inFlight--
			l.stats.Requests--
			l.grant(time.Now())
		} else if i := slices.Index(l.waiters, w); i >= 0 {
			l.waiters = slices.Delete(l.waiters, i, i+1)
		}
		return ctx.Err()
	}
}

// available reports whether a request may start now. Callers hold mu.
func (l *limiter) available(now time.Time) bool {
	return l.inFlight < l.limit && !now.Before(l.pausedUntil)
}

// take counts a request as started. Callers hold mu.
func (l *limiter) take() {
	l.inFlight++
	l.stats.Requests++
}

// grant hands free slots to waiters in arrival order. Callers hold mu.
func (l *limiter) grant(now time.Time) {
	for len(l.waiters) > 0 && l.available(now) {
		w := l.waiters[0]
		l.waiters[0] = nil
		l.waiters = l.waiters[1:]
		l.take()
		w.granted = true
		close(w.ready)
	}
}

// release frees the slot taken by acquire and adapts the limit to the
// request's outcome: throttled (with the wait the service asked for) or
// not.
func (l *limiter) release(throttled bool, retryAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	now := time.Now()
	if throttled {
		l.stats.Throttled++
		l.successes = 0
		// A burst of requests in flight all come back 429 together; cut
		// once per burst, not once per request.
		if now.Sub(l.lastCut) > time.Second {
			l.limit = max(1, l.limit/2)
			l.lastCut = now
		}
		if until := now.Add(retryAfter); until.After(l.pausedUntil) {
			l.pausedUntil = until
			if l.pauseTimer != nil {
				l.pauseTimer.Stop()
			}
			l.pauseTimer = time.AfterFunc(retryAfter, func() {
				l.mu.Lock()
				l.grant(time.Now())
				l.mu.Unlock()
			})
		}
	} else {
		l.successes++
		if l.successes >= l.limit && l.limit < l.ceiling() {
			l.limit++
			l.successes = 0
		}
	}
	l.grant(now)
}

// throttle records a throttling answer to a request inside a $batch whose
// slot has been released already: it cuts the limit and pauses like
// release(true, wait).
func (l *limiter) throttle(wait time.Duration) {
	l.mu.Lock()
	l.inFlight++
	l.mu.Unlock()
	l.release(true, wait)
}

// stop cancels a pending pause timer.
func (l *limiter) stop() {
	l.mu.Lock()
	if l.pauseTimer != nil {
		l.pauseTimer.Stop()
	}
	l.mu.Unlock()
}

func (l *limiter) snapshot() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Limit, s.Ceiling, s.InFlight, s.PausedUntil = l.limit, l.ceiling(), l.inFlight, l.pausedUntil
	return s
}

func (l *limiter) countRetry() {
	l.mu.Lock()
	l.stats.Retries++
	l.mu.Unlock()
}

// retryPolicy bounds the retries of temporary failures inside the sink,
// before they reach the engine. Throttling and other failures are bounded
// apart: the service asks for throttled requests to be sent again after
// its Retry-After, however often it takes, so they are bounded by the
// total wait rather than by a count.
type retryPolicy struct {
	attempts      int           // tries of one request failing other than by throttling, ≥ 1
	base          time.Duration // first backoff; doubles per retry
	cap           time.Duration // longest backoff
	throttleLimit time.Duration // longest total wait on throttling per request
}

// backoff returns the wait before retry n (0-based): exponential with full
// jitter, so that many workers failing together do not retry together.
func (p retryPolicy) backoff(n int) time.Duration {
	d := p.base << min(n, 16)
	if d <= 0 || d > p.cap {
		d = p.cap
	}
	return d/2 + rand.N(d/2+1)
}

// retryState follows one request's retries.
type retryState struct {
	failures  int           // temporary failures other than throttling
	throttled time.Duration // total wait asked for by throttling
}

// next records a temporary failure and reports whether the request may be
// sent again. wait is the throttling wait (Retry-After or a backoff) when
// isThrottled.
func (p retryPolicy) next(st *retryState, isThrottled bool, wait time.Duration) bool {
	if isThrottled {
		st.throttled += wait
		return st.throttled <= p.throttleLimit
	}
	st.failures++
	return st.failures < p.attempts
}

// send runs one request through the limiter, retrying temporary failures
// per the policy. A throttling answer pauses every request of the sink
// for its Retry-After; other temporary failures (busy service, 5xx,
// broken connections) wait an exponential backoff. The request must be
// idempotent: it may reach the service more than once.
func (s *Sink) send(ctx context.Context, req func(context.Context) error) error {
	var st retryState
	for {
		if err := s.limiter.acquire(ctx); err != nil {
			return err
		}
		err := req(ctx)
		wait, isThrottled := throttleWait(err)
		if isThrottled && wait == 0 {
			wait = s.retry.backoff(st.failures)
		}
		s.limiter.release(isThrottled, wait)
		if err == nil || !temporary(ctx, err) || !s.retry.next(&st, isThrottled, wait) {
			return err
		}
		s.limiter.countRetry()
		if !isThrottled {
			// A throttled request waits in acquire, with every other one.
			if sleep(ctx, s.retry.backoff(st.failures-1)) != nil {
				return err
			}
		}
	}
}

// temporary reports whether err, from one request, may go away if the
// same request is sent again: see classify.
func temporary(ctx context.Context, err error) bool {
	_, ok := change.RetryWait(classify(ctx, err))
	return ok && ctx.Err() == nil
}

// throttleWait reports whether err is a service protection answer, and
// the Retry-After it carried (zero when none).
func throttleWait(err error) (time.Duration, bool) {
	var oe *odataclient.Error
	if !errors.As(err, &oe) {
		return 0, false
	}
	if oe.StatusCode == 429 || oe.RetryAfter > 0 && oe.Temporary() {
		return oe.RetryAfter, true
	}
	return 0, false
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
