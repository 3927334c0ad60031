package engine

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/state"
)

// Dead-letter stages.
const (
	stageMap   = "map"
	stageWrite = "write"
)

// putDeadLetters stores letters, retrying a retryable or unclassified
// failure like a write. It returns ctx's error if ctx ends first.
func (p *Pipeline) putDeadLetters(ctx context.Context, letters []state.DeadLetter) error {
	for attempt := 1; ; attempt++ {
		err := p.st.PutDeadLetters(ctx, letters)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if change.IsPermanent(err) || (p.cfg.MaxRetries > 0 && attempt > p.cfg.MaxRetries) {
			return fmt.Errorf("engine: store %d dead letter(s): %w", len(letters), err)
		}
		wait := p.retryDelay(err, attempt)
		p.log.Warn("storing dead letters failed; retrying", "attempt", attempt, "wait", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// deadLettered counts and logs letters, which are stored and whose
// records are done, and stops the pipeline if StopAfterFailures records
// in a row have now failed.
func (p *Pipeline) deadLettered(stage string, letters []state.DeadLetter) {
	n := len(letters)
	p.nDead.Add(uint64(n))
	for i := range letters {
		table, op := letterLabels(&letters[i])
		p.metrics.dead.WithLabelValues(table, op, stage).Inc()
		if stage == stageMap {
			// Write failures were counted as they happened.
			p.metrics.failed.WithLabelValues(table, op).Inc()
		}
	}
	// Reasons may quote values, so they stay in the dead-letter store.
	p.log.Warn("records dead-lettered", "stage", stage, "records", n)
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		for i := range letters {
			p.log.Debug("record dead-lettered", "stage", stage, "table", letters[i].Record.Table,
				"key", letters[i].Record.Key.String())
		}
	}
	c := p.consecutiveDead.Add(int64(n))
	if limit := p.cfg.StopAfterFailures; limit > 0 && c >= int64(limit) {
		p.fail(fmt.Errorf("engine: pipeline %q stopped: %d records in a row were dead-lettered (StopAfterFailures is %d)",
			p.cfg.Name, c, limit))
	}
}

// letterLabels returns the table and op labels of a dead letter's
// counters: the source table, and the failed record's operation.
func letterLabels(dl *state.DeadLetter) (table, op string) {
	table = dl.Record.Table
	if len(dl.Sources) > 0 {
		table = dl.Sources[0].Table
	}
	return table, opLabel(dl.Record.Op)
}
