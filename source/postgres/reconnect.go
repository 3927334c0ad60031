package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Backoff between reconnect attempts: it doubles from reconnectMin up to
// reconnectMax, so a server restart is picked up within a fraction of a
// second and a long outage costs one attempt every few seconds.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 5 * time.Second
)

// ErrSlotLost is returned (wrapped) by Open and Read when the server has
// invalidated the replication slot because it removed WAL the slot still
// needed (max_slot_wal_keep_size): changes were lost, and only a new slot
// and a backfill can bring the destination back in line. The source never
// recreates the slot by itself.
var ErrSlotLost = errors.New("the slot has lost WAL it needs (wal_status = lost, see max_slot_wal_keep_size): changes are missing; drop the slot and backfill again")

// ErrSlotDropped is returned (wrapped) by Open when asked to resume from
// a position and the slot does not exist, and by Read when the slot
// disappears while the source reconnects. The changes since the position
// went with the slot; a new slot would start after them, so the source
// does not create one by itself.
var ErrSlotDropped = errors.New("the slot does not exist, and the changes since the saved position went with it; backfill again")

// errSlotBusy marks a slot still held by another session, which may be
// our own walsender of a connection the network lost.
var errSlotBusy = errors.New("slot busy")

// connLost wraps an error that ended a replication connection without
// saying anything about the stream itself: the stream resumes on a new
// connection.
type connLost struct{ err error }

func (e *connLost) Error() string { return e.err.Error() }
func (e *connLost) Unwrap() error { return e.err }

// lost wraps err as a connection loss, with context.
func lost(format string, err error) error {
	return &connLost{fmt.Errorf(format, err)}
}

// transient reports whether err is worth another connection attempt: the
// server is down, starting, shutting down or unreachable, or the slot is
// still held by the walsender of a dead connection. Errors the server
// reports about our request (authentication, a missing slot, a lost slot)
// are not.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources: too many connections
			"57": // operator intervention: shutdown, crash, starting up
			return true
		}
		return pgErr.Code == "55006" // object in use: the slot is active elsewhere
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, errSlotBusy) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// startReplication opens a replication connection and starts streaming
// from the slot at lsn (the server starts at the later of lsn and the
// slot's confirmed position).
func startReplication(ctx context.Context, cfg Config, lsn pglogrepl.LSN) (*pgconn.PgConn, error) {
	pcfg, err := replicationConfig(cfg.DSN)
	if err != nil {
		return nil, err
	}
	// How much of a transaction the server decodes in memory before it
	// streams it to us.
	pcfg.RuntimeParams["logical_decoding_work_mem"] = cfg.DecodingWorkMem
	conn, err := connectConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	err = pglogrepl.StartReplication(ctx, conn, cfg.Slot, lsn, pglogrepl.StartReplicationOptions{
		PluginArgs: pluginArgs(cfg),
	})
	if err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("postgres: start replication from slot %s: %w", cfg.Slot, err)
	}
	return conn, nil
}

// pluginArgs are pgoutput's options for a session: protocol 2, which
// streams large transactions in progress rather than decoding them whole
// in the server's memory (or spilling them to the server's disk) first.
func pluginArgs(c Config) []string {
	return []string{"proto_version '2'", "streaming 'on'", fmt.Sprintf("publication_names '%s'", c.Publication)}
}

// reconnect replaces the lost connection, retrying with backoff until a
// new one streams, ctx ends, or an attempt fails for a reason a retry
// cannot fix (the slot was dropped or lost its WAL, say). The stream
// resumes at the confirmed position; what was received since is received
// again, and records already handed to Read are not handed out twice.
func (s *stream) reconnect(ctx context.Context, cause error) error {
	s.setConn(nil)
	s.restart()
	wait := reconnectMin
	for attempt := 1; ; attempt++ {
		s.health(fmt.Errorf("postgres: replication connection lost; reconnecting (attempt %d): %w", attempt, cause))
		s.logger.Warn("postgres: replication connection lost; reconnecting",
			"slot", s.cfg.Slot, "attempt", attempt, "wait", wait, "err", cause)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		if f := s.failure.Load(); f != nil {
			return *f
		}
		lsn := s.acks.confirmedLSN()
		conn, err := s.resume(ctx, lsn)
		if err == nil {
			s.health(nil)
			s.setConn(conn)
			s.nextStatus = time.Now().Add(s.cfg.StatusInterval)
			s.logger.Info("postgres: streaming again", "slot", s.cfg.Slot, "from", lsn.String(), "attempts", attempt)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !transient(err) {
			return err
		}
		cause = err
		wait = min(2*wait, reconnectMax)
	}
}

// resume checks that the slot still exists and has kept its WAL, then
// starts streaming from it.
func (s *stream) resume(ctx context.Context, lsn pglogrepl.LSN) (*pgconn.PgConn, error) {
	conn, err := pgx.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	_, err = checkSlot(ctx, conn, s.cfg.Slot, false)
	conn.Close(context.Background())
	if err != nil {
		return nil, err
	}
	return startReplication(ctx, s.cfg, lsn)
}

// restart forgets the state of the lost session. Transactions are
// received again from the confirmed position: the one cut off midway
// starts over, pgoutput describes each table again, and the ack tracker
// relearns which transactions await acks. Records up to the last one
// handed to Read are dropped on the way, as they were at Open for
// records acked in an earlier run.
func (s *stream) restart() {
	s.tx, s.batch = nil, nil
	s.discardSpills()
	clear(s.relations)
	if s.sent.after(s.from) {
		s.from = s.sent
	}
	s.acks.restart()
}

// setConn replaces the connection, closing the old one. Close may
// interrupt the stream concurrently, hence the lock.
func (s *stream) setConn(conn *pgconn.PgConn) {
	s.connMu.Lock()
	old := s.conn
	s.conn = conn
	s.connMu.Unlock()
	if old != nil {
		// The connection is broken; a polite Terminate would go nowhere.
		old.Conn().Close()
	}
}

// interrupt closes the connection's socket under a stream that is stuck
// writing to the server. Safe to call from any goroutine.
func (s *stream) interrupt() {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn != nil {
		s.conn.Conn().Close()
	}
}
