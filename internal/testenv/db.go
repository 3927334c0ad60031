package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// DB is a fresh database of the shared test cluster, with a connection of
// its own for setting up tables and reading them back, independent of the
// adapter under test.
type DB struct {
	DSN  string
	Conn *pgx.Conn
}

// NewDB creates a database (see NewDatabase) and connects to it; both are
// gone after the test.
func NewDB(t testing.TB) *DB {
	t.Helper()
	dsn := NewDatabase(t, StartPostgres(t))
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return &DB{DSN: dsn, Conn: conn}
}

// Exec runs SQL statements, each in its own transaction, and fails the
// test on the first error.
func (d *DB) Exec(t testing.TB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := d.Conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}
