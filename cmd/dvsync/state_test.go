package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDaemonKeepsStateInPostgres runs the daemon with state.postgres: its
// position and a dead letter land in tables of the source database, a
// second process cannot open the same state while the daemon holds it,
// and after a SIGKILL the next daemon resumes from the saved position and
// the operator still finds the dead letter.
func TestDaemonKeepsStateInPostgres(t *testing.T) {
	e := newE2E(t)
	cfg := e.writeConfig("telephone1")
	conf, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const fileState = "state:\n  path: ${DVSYNC_STATE:-./dvsync-state.db}\n"
	if !strings.Contains(string(conf), fileState) {
		t.Fatalf("the example config's state section changed:\n%s", conf)
	}
	writeFile(t, cfg, strings.Replace(string(conf), fileState,
		"state:\n  postgres: {dsn: \"${STATE_DSN}\", schema: dvsync_state}\n", 1))
	for _, kv := range e.env {
		if dsn, ok := strings.CutPrefix(kv, "PG_DSN="); ok {
			e.env = append(e.env, "STATE_DSN="+dsn)
		}
	}
	e.setCLIEnv()

	d := e.startDaemonWith(cfg)
	long := strings.Repeat("9", 60) // telephone1 holds 50
	e.exec(`INSERT INTO customers VALUES (1, 'a', NULL, '1', 1, 1), (2, 'b', NULL, '2', 2, 2)`)
	e.exec(`INSERT INTO customers VALUES (3, 'poison', NULL, $1, 3, 3)`, long)
	e.exec(`INSERT INTO customers VALUES (4, 'd', NULL, '4', 4, 4)`)
	waitUntil(t, 30*time.Second, func() bool {
		got, _, err := e.dataverseRows()
		return err == nil && len(got) == 3 && got["4"] != ""
	})
	// The position is saved once the rows are acknowledged; the dead
	// letter before the rows after it are.
	waitUntil(t, 30*time.Second, func() bool {
		return e.count(`SELECT count(*) FROM dvsync_state.dvsync_positions WHERE pipeline = 'app'::bytea AND length(position) > 0`) == 1
	})
	if n := e.count(`SELECT count(*) FROM dvsync_state.dvsync_dead_letters WHERE pipeline = 'app'::bytea`); n != 1 {
		t.Fatalf("%d dead letters in PostgreSQL, want 1", n)
	}

	// The daemon holds the state: the CLI cannot open it alongside.
	if _, _, err := runCLI(t, "deadletters", "list", "-c", cfg); err == nil ||
		!strings.Contains(err.Error(), "in use by another dvsync process") {
		t.Errorf("deadletters list while the daemon runs: %v", err)
	}

	d.kill() // SIGKILL: the lock goes with the session
	e.exec(`INSERT INTO customers VALUES (5, 'e', NULL, '5', 5, 5)`)
	d = e.startDaemonWith(cfg)
	waitUntil(t, 30*time.Second, func() bool {
		_, err := e.accountField("5", "name")
		return err == nil
	})
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(e.dir, "dvsync.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "resumed=true") {
		t.Errorf("the restarted daemon did not resume from the saved position; log:\n%s", log)
	}

	out, _, err := runCLI(t, "deadletters", "list", "-c", cfg)
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, "public.customers c id=3") {
		t.Errorf("deadletters list after the restart: %v\n%s", err, out)
	}
	// No state file was written anywhere we can see.
	for _, p := range []string{filepath.Join(e.dir, "state.db"), "dvsync-state.db"} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (%v): the file store was used", p, err)
		}
	}
}

// count runs a query returning one count.
func (e *e2e) count(sql string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}
