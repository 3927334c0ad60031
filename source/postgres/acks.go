package postgres

import (
	"sync"

	"github.com/jackc/pglogrepl"
)

// ackTracker turns acked record positions into the LSN the server may
// consider flushed (confirmed_flush_lsn of the slot), which is where the
// slot resumes and below which the server may recycle WAL.
//
// Its methods are safe for concurrent use: the stream goroutine reports
// transactions, Ack reports progress.
type ackTracker struct {
	mu sync.Mutex
	// acked is the highest position acked, or the Open position.
	acked position
	// pending are committed transactions that had records for us and are
	// not confirmed yet, in commit order. A transaction without records
	// for us is folded into the one before it (its end LSN carries over),
	// so the slice grows only with transactions awaiting acks.
	pending []pendingTxn
	// confirmed only grows.
	confirmed pglogrepl.LSN
}

type pendingTxn struct {
	commit pglogrepl.LSN // commit LSN: the position's commit
	end    pglogrepl.LSN // end of the commit record: what we confirm
	last   uint64        // index of the transaction's last record for us
}

// newAckTracker starts from the position Open resumed at (records at or
// before it count as acked) and the slot's confirmed LSN.
func newAckTracker(from position, confirmed pglogrepl.LSN) *ackTracker {
	return &ackTracker{acked: from, confirmed: confirmed}
}

// ack records that every record up to and including p is durable.
func (a *ackTracker) ack(p position) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p.after(a.acked) {
		a.acked = p
	}
	a.advance()
}

// committed records a transaction's commit. records says whether it had
// records for us (emitted now, or dropped on replay because acked before);
// last is the index of its last one.
func (a *ackTracker) committed(commit, end pglogrepl.LSN, records bool, last uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case records:
		a.pending = append(a.pending, pendingTxn{commit: commit, end: end, last: last})
	case len(a.pending) > 0:
		// Nothing to ack here: it is confirmed along with the transaction
		// before it.
		a.pending[len(a.pending)-1].end = end
	default:
		a.confirm(end)
	}
	a.advance()
}

// idle reports that the stream stands between transactions at walEnd
// (a keepalive's position) and that every transaction before walEnd has
// been seen. If all their records are acked, walEnd can be confirmed even
// though no transaction of ours ends there, so a database busy with other
// tables does not keep WAL for this slot.
func (a *ackTracker) idle(walEnd pglogrepl.LSN) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.pending) == 0 {
		a.confirm(walEnd)
	}
}

// restart forgets the pending transactions, which a new replication
// session delivers again (committed reports them anew); acks and the
// confirmed LSN stay.
func (a *ackTracker) restart() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = nil
}

// confirmedLSN returns the LSN to report as flushed.
func (a *ackTracker) confirmedLSN() pglogrepl.LSN {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.confirmed
}

// advance confirms the pending transactions whose records are all acked.
func (a *ackTracker) advance() {
	n := 0
	for _, t := range a.pending {
		// A transaction is confirmed only when its *last* record is acked.
		// Confirming a partly acked one would let the slot resume after
		// it, losing its unacked records for good.
		if a.acked.commit < t.commit || a.acked.commit == t.commit && a.acked.index < t.last {
			break
		}
		a.confirm(t.end)
		n++
	}
	a.pending = a.pending[n:]
}

func (a *ackTracker) confirm(lsn pglogrepl.LSN) {
	if lsn > a.confirmed {
		a.confirmed = lsn
	}
}
