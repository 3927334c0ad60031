package pgcluster

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestClusterLifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, c) })
	if strings.Contains(c.String(), c.Password) {
		t.Errorf("String() reveals the password: %s", c)
	}

	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for setting, want := range map[string]string{"wal_level": "logical", "fsync": "off", "max_replication_slots": "20"} {
		var got string
		if err := conn.QueryRow(ctx, "SELECT current_setting($1)", setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}

	// Password authentication is enforced: a wrong password is refused.
	wrong := &Cluster{Host: c.Host, Port: c.Port, User: c.User, Password: "not-the-password"}
	_, err = pgconn.Connect(ctx, wrong.DSN("postgres"))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Errorf("connect with a wrong password: got %v, want SQLSTATE 28P01", err)
	}

	// A database, a replication connection to it, and a slot in it that
	// DropDatabase has to clear away.
	if err := c.CreateDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateDatabase(ctx, "app"); err == nil {
		t.Error("CreateDatabase of an existing database succeeded")
	}
	repl, err := pgconn.Connect(ctx, c.DSN("app")+"&replication=database")
	if err != nil {
		t.Fatal(err)
	}
	defer repl.Close(ctx)
	if _, err := repl.Exec(ctx, "CREATE_REPLICATION_SLOT s1 LOGICAL pgoutput NOEXPORT_SNAPSHOT").ReadAll(); err != nil {
		t.Fatal(err)
	}
	// Streaming makes the slot active: DropDatabase has to end its walsender.
	if err := pglogrepl.StartReplication(ctx, repl, "s1", 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names 'none'"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.DropDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'app'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("database still there (count %d, err %v)", n, err)
	}
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&n); err != nil || n != 0 {
		t.Fatalf("slots still there (count %d, err %v)", n, err)
	}
	conn.Close(ctx)

	pid := c.proc.cmd.Process.Pid
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("Dir %s not removed: %v", c.Dir, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("postmaster %d still exists after Stop: %v", pid, err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	parent := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: parent, Settings: map[string]string{"wal_level": "bogus"}})
	if err == nil {
		stop(t, c)
		t.Fatal("Start succeeded with wal_level=bogus")
	}
	if !strings.Contains(err.Error(), `invalid value for parameter "wal_level"`) {
		t.Errorf("error lacks the server log's reason: %v", err)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 0 {
		t.Errorf("failed Start left %d entries in %s", len(entries), parent)
	}
}

func TestStartOnGivenPort(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Dir: t.TempDir(), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(t, c) })
	if c.Port != port {
		t.Fatalf("Port = %d, want %d", c.Port, port)
	}
	conn, err := pgconn.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	// A second cluster on the same port fails, naming the cause.
	_, err = Start(ctx, Options{Dir: t.TempDir(), Port: port})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("second cluster on port %d: %v", port, err)
	}
}

func stop(t *testing.T, c *Cluster) {
	if err := c.Stop(context.Background()); err != nil {
		t.Error(err)
	}
}
