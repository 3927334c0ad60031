package emulator

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Limits are service protection limits, enforced per user as Dataverse
// enforces them per user and web server. A zero field turns that limit off;
// the zero Limits enforce nothing. Dataverse's defaults are 6000 requests
// and 20 minutes of execution time per 5-minute sliding window, and 52
// concurrent requests.
type Limits struct {
	// Requests is the number of requests a user may start per Window.
	Requests int
	// ExecutionTime is the combined time the emulator may spend on a
	// user's requests per Window.
	ExecutionTime time.Duration
	// Window is the sliding window of Requests and ExecutionTime; default
	// 5 minutes.
	Window time.Duration
	// Concurrent is the number of requests a user may have in flight.
	Concurrent int
	// DOPHint is sent as x-ms-dop-hint, the degree of parallelism the
	// service recommends; default 4.
	DOPHint int
}

// Service protection error codes (429).
const (
	codeThrottleRequests   = "0x80072322"
	codeThrottleExecTime   = "0x80072321"
	codeThrottleConcurrent = "0x80072326"
)

// limiter keeps each user's usage. Users are few (the static token's and
// one per application), so usage is never evicted.
type limiter struct {
	limits Limits
	mu     sync.Mutex
	users  map[uuid.UUID]*usage
}

// usage is one user's recent activity. Slices hold events oldest first.
type usage struct {
	mu        sync.Mutex
	starts    []time.Time // request arrivals within the window
	execs     []execEvent // finished requests within the window
	execTotal time.Duration
	inFlight  int
}

type execEvent struct {
	at  time.Time
	dur time.Duration
}

func newLimiter(l Limits) *limiter {
	if l.Window <= 0 {
		l.Window = 5 * time.Minute
	}
	if l.DOPHint <= 0 {
		l.DOPHint = 4
	}
	return &limiter{limits: l, users: map[uuid.UUID]*usage{}}
}

func (lm *limiter) usageOf(user uuid.UUID) *usage {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	u := lm.users[user]
	if u == nil {
		u = &usage{}
		lm.users[user] = u
	}
	return u
}

// acquire admits a request of user, or returns the 429 to answer with and
// its Retry-After. An admitted request must be finished with release. The
// x-ms-ratelimit-* and x-ms-dop-hint headers are set either way.
func (lm *limiter) acquire(h http.Header, user uuid.UUID, now time.Time) (*usage, time.Duration, *apiError) {
	l := lm.limits
	h.Set("x-ms-dop-hint", strconv.Itoa(l.DOPHint))
	u := lm.usageOf(user)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.prune(now.Add(-l.Window))
	window := int(l.Window / time.Second)

	var retry time.Duration
	var err *apiError
	switch {
	case l.Concurrent > 0 && u.inFlight >= l.Concurrent:
		// The concurrency limit has no window: a slot frees as soon as a
		// request finishes.
		retry = time.Second
		err = &apiError{http.StatusTooManyRequests, codeThrottleConcurrent,
			fmt.Sprintf("Number of concurrent requests exceeded the limit of %d.", l.Concurrent)}
	case l.Requests > 0 && len(u.starts) >= l.Requests:
		retry = u.starts[0].Add(l.Window).Sub(now)
		err = &apiError{http.StatusTooManyRequests, codeThrottleRequests,
			fmt.Sprintf("Number of requests exceeded the limit of %d over time window of %d seconds.", l.Requests, window)}
	case l.ExecutionTime > 0 && u.execTotal >= l.ExecutionTime:
		retry = u.execs[0].at.Add(l.Window).Sub(now)
		err = &apiError{http.StatusTooManyRequests, codeThrottleExecTime,
			fmt.Sprintf("Combined execution time of incoming requests exceeded limit of %s milliseconds over time window of %d seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
				groupThousands(l.ExecutionTime.Milliseconds()), window)}
	default:
		// Only what a limit needs is kept, so that an unlimited server
		// stores nothing per request.
		if l.Requests > 0 {
			u.starts = append(u.starts, now)
		}
		u.inFlight++
	}
	if l.Requests > 0 {
		h.Set("x-ms-ratelimit-burst-remaining-xrm-requests", strconv.Itoa(max(l.Requests-len(u.starts), 0)))
	}
	if l.ExecutionTime > 0 {
		left := max(l.ExecutionTime-u.execTotal, 0)
		h.Set("x-ms-ratelimit-time-remaining-xrm-requests", strconv.FormatFloat(left.Seconds(), 'f', 2, 64))
	}
	if err != nil {
		return nil, retry, err
	}
	return u, 0, nil
}

// release ends an admitted request of u that started at start and adds its
// execution time.
func (lm *limiter) release(u *usage, start, end time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inFlight--
	if lm.limits.ExecutionTime > 0 {
		d := end.Sub(start)
		u.execs = append(u.execs, execEvent{end, d})
		u.execTotal += d
	}
}

// prune drops events older than cutoff. The slices are compacted once
// their dead prefix is larger than the live part, so memory stays bounded
// by the window.
func (u *usage) prune(cutoff time.Time) {
	i := 0
	for i < len(u.starts) && u.starts[i].Before(cutoff) {
		i++
	}
	u.starts = compact(u.starts, i)
	j := 0
	for j < len(u.execs) && u.execs[j].at.Before(cutoff) {
		u.execTotal -= u.execs[j].dur
		j++
	}
	u.execs = compact(u.execs, j)
}

func compact[T any](s []T, dead int) []T {
	if dead > 0 && dead >= cap(s)/2 {
		return append(make([]T, 0, len(s)-dead+16), s[dead:]...)
	}
	return s[dead:]
}

// retryAfterSeconds renders a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(int(math.Ceil(d.Seconds())), 1))
}

// groupThousands renders n with comma separators, as Dataverse's messages do.
func groupThousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
