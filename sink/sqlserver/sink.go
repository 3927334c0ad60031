// Package sqlserver is the sink that writes change records to SQL Server
// tables through go-mssqldb.
//
// Records reach it already mapped: Table is the destination table,
// "schema.table" or a bare name in the login's default schema; Key holds
// the columns of the table's primary key (or another unique key), and
// After the column values under their destination names. Inserts,
// updates and snapshot reads become a MERGE by key of the columns the
// record carries; deletes become a DELETE by key. Both are idempotent, so
// a replayed batch leaves the table as the first delivery left it. Every
// parameter is CAST to its column's type, read once per table from the
// catalog.
//
// Every statement runs WITH CHANGE_TRACKING_CONTEXT carrying
// Config.Context, so that a change tracking reader, such as dvsync's own
// SQL Server source, can tell dvsync's writes apart and not echo them
// back.
package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dvsync/dvsync/change"
)

// Sink writes batches of records to SQL Server, one transaction per
// batch. It is safe for concurrent use: concurrent Writes use separate
// connections, up to Config.MaxConns.
type Sink struct {
	db      *sql.DB
	cat     *catalog
	context []byte
}

// New returns a Sink for cfg. It validates cfg but does not connect: the
// first Write does.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sqlserver sink: %w", err)
	}
	cfg = cfg.withDefaults()
	connector, err := mssql.NewConnector(cfg.DSN)
	if err != nil {
		// go-mssqldb's parse errors may quote the DSN.
		return nil, errors.New("sqlserver sink: dsn: not a valid go-mssqldb connection string")
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.MaxConns)
	db.SetMaxIdleConns(cfg.MaxConns)
	return &Sink{db: db, cat: &catalog{db: db, tables: map[string]*tableInfo{}}, context: []byte(cfg.Context)}, nil
}

// Write makes every record of batch durable in one transaction, or
// returns an error. When records are rejected for their data (a
// constraint, a value the column's type refuses, a missing column), the
// transaction is rolled back and the records are written again one per
// transaction; the rest are committed and a *change.BatchError names the
// rejected ones, each marked permanent. A destination table that does
// not exist fails the whole write as change.Fatal. Connection failures,
// deadlocks and lock timeouts come back retryable, with nothing of the
// batch committed (or all of it, when the commit's outcome is unknown).
//
// A record whose Meta asks for a conditional write
// (change.MetaExpectedVersion set to change.ExpectedRow or
// change.ExpectedAbsent) is written only if its row, read under an update
// lock in the same transaction, holds the record's Before values or is
// absent; otherwise it fails with a *change.ConflictError carrying the
// row as found. A batch with such records is written one record per
// transaction.
func (s *Sink) Write(ctx context.Context, batch []change.Record) error {
	if len(batch) == 0 {
		return nil
	}
	stmts := make([]statement, len(batch))
	tables := make([]*tableInfo, len(batch))
	failed := map[int]error{}
	for i := range batch {
		t, err := s.cat.table(ctx, batch[i].Table)
		if errors.Is(err, errNoTable) {
			return change.Fatal(fmt.Errorf("sqlserver sink: %w", err))
		}
		if err != nil {
			return classify(fmt.Errorf("sqlserver sink: read the columns of %s: %w", batch[i].Table, err))
		}
		st, err := plan(t, &batch[i], s.context)
		if errors.Is(err, errNoColumn) {
			// The table may have gained the column since it was read.
			if t, err = s.cat.reload(ctx, batch[i].Table); err != nil {
				return classify(fmt.Errorf("sqlserver sink: read the columns of %s: %w", batch[i].Table, err))
			}
			st, err = plan(t, &batch[i], s.context)
		}
		tables[i] = t
		if err != nil {
			failed[i] = change.Permanent(fmt.Errorf("sqlserver sink: %s: %w", batch[i].String(), err))
			continue
		}
		stmts[i] = st
	}
	if len(failed) == len(batch) {
		return &change.BatchError{Failed: failed}
	}
	if anyConditional(batch) {
		if err := s.writeChecked(ctx, batch, tables, stmts, failed); err != nil {
			return classify(err)
		}
		if len(failed) > 0 {
			return &change.BatchError{Failed: failed}
		}
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i, st := range stmts {
			if _, skip := failed[i]; skip {
				continue
			}
			if _, err := tx.ExecContext(ctx, st.sql, st.args...); err != nil {
				return fmt.Errorf("sqlserver sink: %s: %w", batch[i].String(), err)
			}
		}
		return nil
	})
	if err != nil && recordError(err) {
		err = s.writeEach(ctx, batch, stmts, failed)
	}
	if err != nil {
		return classify(err)
	}
	if len(failed) > 0 {
		return &change.BatchError{Failed: failed}
	}
	return nil
}

// writeEach writes the records not yet in failed one transaction each,
// adding those the server rejects for their data to failed. A failure
// that is not about the record stops it.
func (s *Sink) writeEach(ctx context.Context, batch []change.Record, stmts []statement, failed map[int]error) error {
	for i, st := range stmts {
		if _, skip := failed[i]; skip {
			continue
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, st.sql, st.args...)
			return err
		})
		switch {
		case err == nil:
		case recordError(err):
			failed[i] = change.Permanent(fmt.Errorf("sqlserver sink: %s: %w", batch[i].String(), err))
		default:
			return fmt.Errorf("sqlserver sink: %s: %w", batch[i].String(), err)
		}
	}
	return nil
}

// inTx runs fn in a transaction and commits it, or rolls it back when fn
// fails.
func (s *Sink) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlserver sink: begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the statement's error is the one to report
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlserver sink: commit: %w", err)
	}
	return nil
}

// Close closes the connections after the last Write has returned.
func (s *Sink) Close(context.Context) error { return s.db.Close() }
