package testenv

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestStartPostgresIsShared(t *testing.T) {
	a := StartPostgres(t)
	b := StartPostgres(t)
	if a != b {
		t.Fatalf("two clusters under Main: %s and %s", a, b)
	}
}

func TestStartPostgresPerTestWithoutMain(t *testing.T) {
	inMain.Store(false)
	defer inMain.Store(true)
	var dir string
	t.Run("own", func(t *testing.T) {
		c := StartPostgres(t)
		if c == sharedPostgres.cluster {
			t.Fatal("got the shared cluster without Main")
		}
		dir = c.Dir
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the test's own cluster was not stopped: %s: %v", dir, err)
	}
}

func TestNewDatabase(t *testing.T) {
	c := StartPostgres(t)
	ctx := context.Background()
	var name string
	t.Run("use", func(t *testing.T) {
		dsn := NewDatabase(t, c)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "t_testnewdatabase_use_") {
			t.Errorf("database name %q does not follow the test name", name)
		}
		// A slot and an open session must not stop the cleanup's drop.
		if _, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot('leftover', 'pgoutput')"); err != nil {
			t.Fatal(err)
		}
		if other := NewDatabase(t, c); other == dsn {
			t.Error("two NewDatabase calls returned the same DSN")
		}
	})
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s survived its test", name)
	}
}

func TestDatabaseName(t *testing.T) {
	for test, want := range map[string]string{
		"TestX":                    "t_testx_7",
		"TestA/sub case!":          "t_testa_sub_case__7",
		strings.Repeat("Long", 30): "t_" + strings.Repeat("long", 10)[:38] + "_7",
	} {
		if got := databaseName(test, 7); got != want {
			t.Errorf("databaseName(%q) = %q, want %q", test, got, want)
		}
	}
}
