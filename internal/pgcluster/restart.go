package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Restart shuts the server down the way Stop does (fast shutdown: open
// transactions roll back, clients are disconnected, logical walsenders
// first wait for their clients to confirm what was sent) and starts it
// again on the same port with the same data, returning once it accepts
// connections. It lets tests see what clients do across a restart.
//
// Restart must not run concurrently with itself, RestartImmediate or
// Stop; other methods are fine. If ctx has no deadline, it gives up after
// two minutes.
func (c *Cluster) Restart(ctx context.Context) error {
	return c.restart(ctx, false)
}

// RestartImmediate is Restart with an immediate shutdown (SIGQUIT, as
// `pg_ctl stop -m immediate`): every process exits at once, nothing waits
// for clients, and the server runs crash recovery when it starts again.
func (c *Cluster) RestartImmediate(ctx context.Context) error {
	return c.restart(ctx, true)
}

func (c *Cluster) restart(ctx context.Context, immediate bool) error {
	if c.proc == nil {
		return errors.New("pgcluster: restart: server not running")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	began := time.Now()
	if immediate {
		// An error means the process is gone already; exited says so.
		_ = c.proc.cmd.Process.Signal(syscall.SIGQUIT)
	}
	c.proc.stop(ctx)
	c.proc = nil
	if err := c.run(ctx, c.bin, c.owner); err != nil {
		return fmt.Errorf("pgcluster: restart: %w", err)
	}
	c.logger.Debug("pgcluster: restarted", "port", c.Port, "immediate", immediate, "took", time.Since(began))
	return nil
}
