// Package benchenv sets up what the benchmark programs in bench/ measure
// against: a throwaway PostgreSQL cluster with the benchmark's table, the
// Dataverse emulator in a child process, dvsync's pipeline wired as
// 'dvsync run' and 'dvsync backfill' wire it, and the measures (CPU time,
// peak memory, latency percentiles) and the check that the target ended
// equal to the source.
//
// It is for programs, not tests: it never imports package testing, and
// every helper returns its error instead of failing a test.
package benchenv

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/internal/pgcluster"
)

// Table is the benchmark's source table: one row per Dataverse account.
// Its columns cover the value kinds a typical mapping carries: a bigint
// key, text, an integer and a numeric.
const Table = "public.customers"

const createTable = `CREATE TABLE public.customers (
	id bigint PRIMARY KEY, name text NOT NULL, employees int, credit numeric(12,2))`

// insertRows is the one statement every scenario inserts rows with, so
// that the values of row i are the same whichever way it was written.
const insertRows = `INSERT INTO public.customers
	SELECT i, 'Customer ' || i, (i % 5000)::int, (i % 100000) + 0.25
	  FROM generate_series($1::bigint, $1::bigint + $2 - 1) i`

// Postgres is a running throwaway cluster and a connection to its
// "postgres" database, where the benchmark table lives. It is not safe for
// concurrent use (the connection is not).
type Postgres struct {
	Cluster *pgcluster.Cluster
	// Conn is a plain connection for setting up and inserting.
	Conn *pgx.Conn
}

// StartPostgres starts a cluster with logical replication on and creates
// Table in it. Stop removes it again.
func StartPostgres(ctx context.Context) (*Postgres, error) {
	c, err := pgcluster.Start(ctx, pgcluster.Options{})
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		_ = c.Stop(context.Background())
		return nil, fmt.Errorf("benchenv: connect: %w", err)
	}
	pg := &Postgres{Cluster: c, Conn: conn}
	if _, err := conn.Exec(ctx, createTable); err != nil {
		pg.Stop()
		return nil, fmt.Errorf("benchenv: create table: %w", err)
	}
	return pg, nil
}

// DSN is the connection string of the database holding Table.
func (p *Postgres) DSN() string { return p.Cluster.DSN("postgres") }

// Insert commits n rows with ids first … first+n-1 in one transaction.
func (p *Postgres) Insert(ctx context.Context, first int64, n int) error {
	if _, err := p.Conn.Exec(ctx, insertRows, first, n); err != nil {
		return fmt.Errorf("benchenv: insert %d rows from %d: %w", n, first, err)
	}
	return nil
}

// Truncate empties Table, so that the next scenario starts from nothing.
func (p *Postgres) Truncate(ctx context.Context) error {
	if _, err := p.Conn.Exec(ctx, "TRUNCATE "+Table); err != nil {
		return fmt.Errorf("benchenv: truncate: %w", err)
	}
	return nil
}

// Exec runs one statement of set-up, such as creating a slot.
func (p *Postgres) Exec(ctx context.Context, sql string, args ...any) error {
	if _, err := p.Conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("benchenv: %s: %w", sql, err)
	}
	return nil
}

// Stop closes the connection and removes the cluster.
func (p *Postgres) Stop() {
	_ = p.Conn.Close(context.Background())
	_ = p.Cluster.Stop(context.Background())
}
