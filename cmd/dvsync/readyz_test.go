package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestReadyzFollowsTheSourceConnection takes the replication slot away
// from a running daemon: its walsender is terminated and the test holds
// the slot, so the daemon cannot reconnect until the test lets go. /readyz
// must be 503 with the reason meanwhile, and 200 again afterwards, with
// the changes made meanwhile delivered.
func TestReadyzFollowsTheSourceConnection(t *testing.T) {
	e := newE2E(t)
	d := e.startDaemon()
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + d.httpAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	ctx := context.Background()
	var dsn string
	for _, kv := range e.env {
		if v, ok := strings.CutPrefix(kv, "PG_DSN="); ok {
			dsn = v
		}
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["replication"] = "database"
	thief, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { thief.Close(context.Background()) })
	// The daemon reconnects within a fraction of a second: terminate its
	// walsender and take the slot until the test wins the race.
	waitUntil(t, 30*time.Second, func() bool {
		e.exec(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots
		         WHERE slot_name = 'dvsync' AND active_pid IS NOT NULL AND active_pid <> $1`, thief.PID())
		err := pglogrepl.StartReplication(ctx, thief, "dvsync", 0, pglogrepl.StartReplicationOptions{
			PluginArgs: []string{"proto_version '1'", "publication_names 'dvsync'"},
		})
		return err == nil
	})

	var body string
	waitUntil(t, 30*time.Second, func() bool {
		var code int
		code, body = readyz()
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, `pipeline "app": source not connected`) {
		t.Errorf("/readyz body %q does not name the pipeline", body)
	}
	if m := scrape(t, d.httpAddr); m[`dvsync_engine_ready{pipeline="app"}`] != 0 {
		t.Error("ready gauge is not 0 while the source is down")
	}
	e.exec(`INSERT INTO customers VALUES (1, 'while down', NULL, NULL, 1, 1)`)

	thief.Close(ctx)
	waitUntil(t, 30*time.Second, func() bool {
		code, _ := readyz()
		return code == http.StatusOK
	})
	e.waitInSync(30 * time.Second)
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}
