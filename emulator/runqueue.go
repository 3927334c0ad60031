package emulator

import "sync"

// runQueue is a FIFO of asynchronous runs waiting for a consumer: the
// webhook workers, or an event hub's publishing loop. It grows as needed,
// because Dataverse's asynchronous service queues durably and never drops
// a run for load; limit, when positive, caps the runs waiting, for an
// operator who would rather see failures than memory grow.
//
// Runs are taken in the order they were put. A runQueue is safe for
// concurrent use.
type runQueue struct {
	mu    sync.Mutex
	ready sync.Cond // signalled when runs arrive or the queue closes
	// runs[head:] are waiting; the taken slots before head are reused
	// once the queue empties or they make up most of the slice.
	runs   []*delivery
	head   int
	limit  int
	closed bool
}

func newRunQueue(limit int) *runQueue {
	q := &runQueue{limit: limit}
	q.ready.L = &q.mu
	return q
}

// put appends r; it reports false, leaving r out, when the queue is at its
// limit or closed.
func (q *runQueue) put(r *delivery) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || (q.limit > 0 && len(q.runs)-q.head >= q.limit) {
		return false
	}
	if q.head > 0 && q.head >= len(q.runs)/2 && len(q.runs) == cap(q.runs) {
		// Reclaim the taken half rather than let append double a slice
		// that is mostly spent.
		n := copy(q.runs, q.runs[q.head:])
		clear(q.runs[n:])
		q.runs, q.head = q.runs[:n], 0
	}
	q.runs = append(q.runs, r)
	q.ready.Signal()
	return true
}

// take waits for runs and appends up to n of them to buf, oldest first.
// It returns buf unchanged and false once the queue is closed and empty.
func (q *runQueue) take(buf []*delivery, n int) ([]*delivery, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.runs) {
		if q.closed {
			return buf, false
		}
		q.ready.Wait()
	}
	n = min(n, len(q.runs)-q.head)
	buf = append(buf, q.runs[q.head:q.head+n]...)
	clear(q.runs[q.head : q.head+n])
	q.head += n
	if q.head == len(q.runs) {
		q.runs, q.head = q.runs[:0], 0
	}
	if q.head < len(q.runs) {
		// More remain: another consumer may take them meanwhile.
		q.ready.Signal()
	}
	return buf, true
}

// close stops put and wakes the consumers; the runs already waiting can
// still be taken.
func (q *runQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.ready.Broadcast()
}
