package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	mssql "github.com/microsoft/go-mssqldb"
)

// column is one result column as the driver describes it.
type column struct {
	Name string
	// Type is the driver's DatabaseTypeName: INT, DECIMAL, NVARCHAR,
	// DATETIMEOFFSET, UNIQUEIDENTIFIER and so on.
	Type string
}

// queryer runs one statement and hands its rows, in order, to fn. Values
// are what go-mssqldb returns: int64, float64, bool, string, []byte
// (also for decimal, money and uniqueidentifier), time.Time, or nil for
// NULL. fn may keep neither slice. Everything the source says to SQL
// Server goes through this interface, so the SQL and the bookkeeping
// around it can be tested with recorded result sets.
type queryer interface {
	query(ctx context.Context, text string, args []any, fn func(cols []column, vals []any) error) error
}

// database is a queryer that can also run a group of statements in one
// snapshot transaction, so that they read one consistent state.
type database interface {
	queryer
	snapshot(ctx context.Context, fn func(q queryer) error) error
	close() error
}

// sqlDatabase is the database over database/sql and go-mssqldb.
type sqlDatabase struct{ db *sql.DB }

func openDatabase(dsn string) (*sqlDatabase, error) {
	connector, err := mssql.NewConnector(dsn)
	if err != nil {
		// go-mssqldb's parse errors may quote parts of the DSN.
		return nil, errors.New("sqlserver: dsn is not a valid go-mssqldb connection string")
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	return &sqlDatabase{db: db}, nil
}

func (d *sqlDatabase) query(ctx context.Context, text string, args []any, fn func([]column, []any) error) error {
	return runQuery(ctx, d.db, text, args, fn)
}

func (d *sqlDatabase) snapshot(ctx context.Context, fn func(queryer) error) error {
	tx, err := d.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSnapshot})
	if err != nil {
		return fmt.Errorf("begin snapshot transaction: %w", err)
	}
	if err := fn(txQueryer{tx}); err != nil {
		_ = tx.Rollback() // the error that made us roll back is the one to report
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit snapshot transaction: %w", err)
	}
	return nil
}

func (d *sqlDatabase) close() error { return d.db.Close() }

type txQueryer struct{ tx *sql.Tx }

func (q txQueryer) query(ctx context.Context, text string, args []any, fn func([]column, []any) error) error {
	return runQuery(ctx, q.tx, text, args, fn)
}

type rawQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func runQuery(ctx context.Context, q rawQueryer, text string, args []any, fn func([]column, []any) error) error {
	rows, err := q.QueryContext(ctx, text, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	cols := make([]column, len(types))
	for i, t := range types {
		cols[i] = column{Name: t.Name(), Type: t.DatabaseTypeName()}
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := fn(cols, vals); err != nil {
			return err
		}
	}
	return rows.Err()
}
