// Package postgres is the sink that writes change records to PostgreSQL
// tables through pgx.
//
// Records reach it already mapped: Table is the destination table,
// "schema.table" or a bare name resolved by the search_path; Key holds
// the columns of a primary key or unique index of that table, and After
// the column values under their destination names. Inserts, updates and
// snapshot reads become INSERT … ON CONFLICT (key) DO UPDATE of the columns
// the record carries; deletes become DELETE by key, or, with
// Config.SoftDelete, an UPDATE setting a flag column. Both are idempotent,
// so a replayed batch leaves the table as the first delivery left it.
//
// Every write is made inside a replication-origin session, so that the
// commit records name dvsync's origin: a logical decoding client, such as
// dvsync's own PostgreSQL source with skip_origin, can tell dvsync's writes
// apart and not echo them back.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dvsync/dvsync/change"
)

// originBusyWait bounds how long a new connection waits for the
// replication origin to be released by the backend of a connection that
// was just closed: it lets go when that backend exits, which is soon but
// not at once.
const originBusyWait = 5 * time.Second

// Sink writes batches of records to PostgreSQL, one transaction per
// batch. It is safe for concurrent use, but its writes are serial: before
// PostgreSQL 16 a replication origin can be set up in one session at a
// time, so a Sink holds a single connection and concurrent Writes queue
// for it, in no particular order.
type Sink struct {
	pool  *pgxpool.Pool
	stmts *statements
}

// New returns a Sink for cfg. It validates cfg but does not connect: the
// first Write does, creating the replication origin if it is missing.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres sink: %w", err)
	}
	cfg = cfg.withDefaults()
	pc, err := parseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: dsn: %w", err)
	}
	pc.MinConns = 0
	pc.MaxConns = 1
	origin := cfg.Origin
	pc.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		return setupOrigin(ctx, conn, origin)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %w", err)
	}
	return &Sink{pool: pool, stmts: &statements{softDelete: cfg.SoftDelete}}, nil
}

// setupOrigin creates the replication origin if it is missing and binds it
// to conn's session for the session's life: every transaction conn commits
// is then marked with it. The session is the Sink's alone, so it is never
// reset; it ends with the connection, which releases the origin.
func setupOrigin(ctx context.Context, conn *pgx.Conn, origin string) error {
	_, err := conn.Exec(ctx, "SELECT pg_catalog.pg_replication_origin_create($1) WHERE pg_catalog.pg_replication_origin_oid($1) IS NULL", origin)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		err = nil // another dvsync created it in the meantime
	}
	if err != nil {
		return fmt.Errorf("create replication origin %q: %w", origin, err)
	}
	deadline := time.Now().Add(originBusyWait)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err = conn.Exec(ctx, "SELECT pg_catalog.pg_replication_origin_session_setup($1)", origin)
		if !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	if err != nil {
		return fmt.Errorf("set up replication origin %q: %w", origin, err)
	}
	return nil
}

// Write makes every record of batch durable in one transaction, or
// returns an error. A record whose Meta sets change.MetaExpectedVersion to
// change.ExpectedRow or change.ExpectedAbsent is written only if its row
// still matches (see those constants; values compare as package conflict
// compares them), checked under a row lock in the same transaction;
// otherwise it fails, in a *change.BatchError, with a
// *change.ConflictError carrying the row as found. When records are rejected for their data (a
// constraint, a value the column's type refuses, a missing column), the
// batch is written again one record at a time, each under a savepoint of
// one transaction; the rest are committed and a *change.BatchError names
// the rejected ones, each marked permanent. Connection failures,
// serialization failures and deadlocks come back retryable, with nothing
// of the batch committed, or all of it when the commit's outcome is
// unknown.
func (s *Sink) Write(ctx context.Context, batch []change.Record) error {
	if len(batch) == 0 {
		return nil
	}
	stmts := make([]statement, len(batch))
	failed := make(map[int]error)
	for i := range batch {
		st, err := s.stmts.plan(&batch[i])
		if err != nil {
			failed[i] = change.Permanent(fmt.Errorf("postgres sink: %s: %w", batch[i].String(), err))
			continue
		}
		stmts[i] = st
	}
	if len(failed) == len(batch) {
		return &change.BatchError{Failed: failed}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return classify(fmt.Errorf("postgres sink: connect: %w", err))
	}
	defer conn.Release()

	if anyConditional(batch) {
		err = writeChecked(ctx, conn.Conn(), batch, stmts, failed)
	} else {
		err = writeAll(ctx, conn.Conn(), batch, stmts, failed)
		if err != nil && recordError(err) {
			err = writeEach(ctx, conn.Conn(), batch, stmts, failed, nil)
		}
	}
	if err != nil {
		return classify(err)
	}
	if len(failed) > 0 {
		return &change.BatchError{Failed: failed}
	}
	return nil
}

// writeAll sends the statements of the records not in skip in one
// pipeline, one round trip once they are prepared. The server runs a
// pipeline up to its Sync as one implicit transaction: it commits them all
// or, at the first error, none.
func writeAll(ctx context.Context, conn *pgx.Conn, batch []change.Record, stmts []statement, skip map[int]error) error {
	b := &pgx.Batch{}
	for i, st := range stmts {
		if _, ok := skip[i]; !ok {
			b.Queue(st.sql, st.args...)
		}
	}
	br := conn.SendBatch(ctx, b)
	for i := range stmts {
		if _, ok := skip[i]; ok {
			continue
		}
		if _, err := br.Exec(); err != nil {
			_ = br.Close() // the first error is the one to report
			return fmt.Errorf("postgres sink: %s: %w", batch[i].String(), err)
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres sink: commit: %w", err)
	}
	return nil
}

// writeEach writes the records not yet in failed one at a time inside one
// transaction, each under a savepoint, and adds those the server rejects
// for their data to failed. When check is not nil it runs first for each
// record, inside the savepoint; a *change.ConflictError or permanent error
// from it fails the record unwritten. Any other error aborts the
// transaction.
func writeEach(ctx context.Context, conn *pgx.Conn, batch []change.Record, stmts []statement, failed map[int]error,
	check func(tx pgx.Tx, i int) error) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres sink: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // a no-op after Commit
	for i, st := range stmts {
		if _, ok := failed[i]; ok {
			continue
		}
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("postgres sink: savepoint: %w", err)
		}
		if check != nil {
			if err := check(sp, i); err != nil {
				if change.AsConflict(err) == nil && !change.IsPermanent(err) && !recordError(err) {
					return err
				}
				if recordError(err) {
					err = change.Permanent(err)
				}
				failed[i] = err
				if err := sp.Rollback(ctx); err != nil {
					return fmt.Errorf("postgres sink: rollback to savepoint: %w", err)
				}
				continue
			}
		}
		if _, err := sp.Exec(ctx, st.sql, st.args...); err != nil {
			if !recordError(err) {
				return fmt.Errorf("postgres sink: %s: %w", batch[i].String(), err)
			}
			failed[i] = change.Permanent(fmt.Errorf("postgres sink: %s: %w", batch[i].String(), err))
			if err := sp.Rollback(ctx); err != nil {
				return fmt.Errorf("postgres sink: rollback to savepoint: %w", err)
			}
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return fmt.Errorf("postgres sink: release savepoint: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres sink: commit: %w", err)
	}
	return nil
}

// Close closes the Sink's connection, which ends its replication-origin
// session. It waits for a Write in progress to finish; call it after the
// last Write has returned.
func (s *Sink) Close(context.Context) error {
	s.pool.Close()
	return nil
}

// anyConditional reports whether some record of batch asks for a
// conditional write.
func anyConditional(batch []change.Record) bool {
	for i := range batch {
		if conditional(&batch[i]) {
			return true
		}
	}
	return false
}
