package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// heartbeatPrefix is the prefix of the heartbeat's logical decoding
// message, so that other consumers of the WAL can recognise and skip it.
const heartbeatPrefix = "dvsync.heartbeat"

// heartbeat writes a logical decoding message on an ordinary connection
// every interval and measures the slot's lag. The message is WAL of our
// database that decoding walks over; the next keepalive then carries a
// WAL position past it, and the stream, having nothing left to ack,
// confirms it (see ackTracker.idle). Without it, a database with no
// writes of its own holds its slot back while other databases of the
// cluster fill the WAL.
//
// Failures to write or measure are logged and retried at the next tick:
// the heartbeat only helps, the stream does not depend on it. A slot
// found lost stops the stream.
type heartbeat struct {
	cfg    Config
	logger *slog.Logger
	lag    *atomic.Int64 // bytes; -1 while unknown
	fail   func(error)   // stops the stream with an error

	conn   *pgx.Conn
	warned bool // whether the lack of privilege has been logged
}

// run beats until ctx ends, then closes its connection.
func (h *heartbeat) run(ctx context.Context) {
	defer func() {
		if h.conn != nil {
			h.conn.Close(context.Background())
		}
	}()
	tick := time.NewTicker(h.cfg.HeartbeatInterval)
	defer tick.Stop()
	for {
		if err := h.beat(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrSlotLost) {
				h.fail(err)
				return
			}
			h.logger.Warn("postgres: heartbeat failed", "slot", h.cfg.Slot, "err", err)
			if h.conn != nil {
				h.conn.Close(context.Background())
				h.conn = nil
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// beat writes one heartbeat and measures the slot.
func (h *heartbeat) beat(ctx context.Context) error {
	if h.conn == nil {
		conn, err := pgx.Connect(ctx, h.cfg.DSN)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		h.conn = conn
	}
	// Non-transactional: decoded where it is written, with no
	// transaction around it for pgoutput to send.
	_, err := h.conn.Exec(ctx, "SELECT pg_logical_emit_message(false, $1, '')", heartbeatPrefix)
	switch {
	case err == nil:
	case isCode(err, "42501"): // insufficient privilege
		// Measuring the lag is still worth it.
		if !h.warned {
			h.warned = true
			h.logger.Warn("postgres: cannot write heartbeats, so a quiet database may hold its slot back; GRANT EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) to the role",
				"slot", h.cfg.Slot, "err", err)
		}
	default:
		return fmt.Errorf("write heartbeat: %w", err)
	}
	var (
		walStatus *string
		lag       *int64
	)
	err = h.conn.QueryRow(ctx, `
		SELECT wal_status, (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint
		  FROM pg_replication_slots WHERE slot_name = $1`, h.cfg.Slot).Scan(&walStatus, &lag)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("replication slot %s has been dropped", h.cfg.Slot)
	}
	if err != nil {
		return fmt.Errorf("measure slot lag: %w", err)
	}
	if walStatus != nil && *walStatus == "lost" {
		return fmt.Errorf("postgres: replication slot %s: %w", h.cfg.Slot, ErrSlotLost)
	}
	if lag != nil {
		h.lag.Store(max(*lag, 0))
	}
	return nil
}
