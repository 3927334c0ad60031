package state

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
)

// Each schema is a store of its own: its own lock, its own tables.
func TestPostgresSchemasAreSeparate(t *testing.T) {
	ctx := context.Background()
	dsn := testenv.NewDatabase(t, testenv.StartPostgres(t))
	a := opener(func() (Store, error) { return OpenPostgres(ctx, dsn, "") }).must(t)
	b := opener(func() (Store, error) { return OpenPostgres(ctx, dsn, "other") }).must(t)
	if err := a.SavePosition(ctx, "app", change.Position("a")); err != nil {
		t.Fatal(err)
	}
	if pos, err := b.Position(ctx, "app"); err != nil || pos != nil {
		t.Errorf("other schema sees position %q, %v", pos, err)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var schemas string
	err = conn.QueryRow(ctx, `SELECT string_agg(table_schema || '.' || table_name, ',' ORDER BY table_schema, table_name)
		FROM information_schema.tables WHERE table_name LIKE 'dvsync%'`).Scan(&schemas)
	if err != nil {
		t.Fatal(err)
	}
	want := "other.dvsync_dead_letters,other.dvsync_positions,public.dvsync_dead_letters,public.dvsync_positions"
	if schemas != want {
		t.Errorf("tables %s, want %s", schemas, want)
	}
}

func TestPostgresErrorsHideThePassword(t *testing.T) {
	ctx := context.Background()
	c := testenv.StartPostgres(t)
	dsn := testenv.NewDatabase(t, c)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Password == "" {
		t.Fatal("the test cluster's DSN has no password to hide")
	}
	wrong := strings.Replace(dsn, cfg.Password, "s3cret-wrong", 1)
	broken := strings.Replace(dsn, cfg.Password, "s3cret-wrong", 1) + "&sslmode=nonsense"
	for _, d := range []string{wrong, broken, "postgres://u:s3cret-wrong@127.0.0.1:1/db?connect_timeout=x",
		"host=127.0.0.1 password=s3cret-wrong port=x", "postgres://u:s3cret-wrong@127.0.0.1:x/db"} {
		s, err := OpenPostgres(ctx, d, "")
		if err == nil {
			s.Close()
			t.Fatalf("OpenPostgres succeeded")
		}
		if strings.Contains(err.Error(), "s3cret-wrong") || strings.Contains(err.Error(), cfg.Password) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
