package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/dvsync/dvsync/change"
)

// ackLoop persists and acks the watermark every AckInterval until ctx
// ends, and as soon as nothing is in flight, but not sooner than
// AckInterval/4 after the previous commit. Shutdown commits once more
// after it returns.
func (p *Pipeline) ackLoop(ctx context.Context) {
	tick := time.NewTicker(p.cfg.AckInterval)
	defer tick.Stop()
	gap := p.cfg.AckInterval / 4
	soon := time.NewTimer(time.Hour)
	soon.Stop()
	defer soon.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.tracker.idle:
			if wait := gap - time.Since(last); wait > 0 {
				// A commit after the wait covers this one, and any other
				// idle moment meanwhile.
				soon.Reset(wait)
				continue
			}
		case <-soon.C:
		}
		soon.Stop()
		last = time.Now()
		err := p.commit(ctx)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return
		case isRetryable(err):
			// The watermark only moves forward, so the next tick's
			// commit covers this one.
			p.log.Warn("ack failed; trying again at the next interval", "err", err)
		default:
			p.fail(err)
			return
		}
	}
}

// commit persists the watermark if it moved, then acks it to the source.
// It is called by one goroutine at a time: the ack loop, then shutdown.
func (p *Pipeline) commit(ctx context.Context) error {
	passed, pos := p.tracker.watermark()
	if passed > p.savedSeq {
		if err := p.st.SavePosition(ctx, p.cfg.Name, pos); err != nil {
			return fmt.Errorf("engine: save position of pipeline %q: %w", p.cfg.Name, err)
		}
		p.savedSeq, p.savedPos = passed, pos
	}
	if p.savedSeq > p.ackedSeq {
		// The source hears of a position only after it is persisted: a
		// crash between the two replays from the saved position, whereas
		// the other order could let the source release changes the state
		// store does not know are done.
		if err := p.src.Ack(ctx, p.savedPos); err != nil {
			return fmt.Errorf("engine: ack source: %w", err)
		}
		p.ackedSeq = p.savedSeq
		p.ackMu.Lock()
		p.acked, p.lastAck = p.savedPos, time.Now()
		p.ackMu.Unlock()
	}
	return nil
}

// isRetryable reports whether err was classified as retryable by the
// adapter that returned it. Unclassified errors are not: outside writes,
// the engine does not guess.
func isRetryable(err error) bool {
	_, ok := change.RetryWait(err)
	return ok
}
