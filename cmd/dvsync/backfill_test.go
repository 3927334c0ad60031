package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// backfillConfig writes a daemon config like the example one, with the
// example mappings and the given engine section, and returns its path.
func (e *e2e) backfillConfig(engine string) string {
	e.t.Helper()
	mappings, err := filepath.Abs(filepath.Join(examples, "mappings", "*.yaml"))
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, "dvsync.yaml")
	cfg := `version: 1
log: {level: info, format: text}
http: {listen: "${DVSYNC_HTTP:-127.0.0.1:0}"}
state: {path: "${DVSYNC_STATE}"}
dataverse: {url: "${DATAVERSE_URL}", auth: {token: "${DATAVERSE_TOKEN}"}}
connections: {app: {type: postgres, dsn: "${PG_DSN}"}}
mappings: ["` + mappings + `"]
engine: ` + engine + "\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// startBackfill starts 'dvsync backfill -c config args...' as a child
// process logging to backfill.log; wait for it on the returned channel.
func (e *e2e) startBackfill(config string, args ...string) (*exec.Cmd, <-chan error) {
	e.t.Helper()
	logf, err := os.OpenFile(filepath.Join(e.dir, "backfill.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], append([]string{"backfill", "-c", config, "--progress", "off"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), e.env...)
	if err := cmd.Start(); err != nil {
		logf.Close()
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- cmd.Wait()
		logf.Close()
		close(exited)
	}()
	e.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return cmd, done
}

// waitBackfill waits for a backfill child to exit 0.
func (e *e2e) waitBackfill(done <-chan error, timeout time.Duration) {
	e.t.Helper()
	select {
	case err := <-done:
		if err != nil {
			e.t.Fatalf("dvsync backfill: %v; its log ends with:\n%s", err, tail(filepath.Join(e.dir, "backfill.log"), 30))
		}
	case <-time.After(timeout):
		e.t.Fatalf("dvsync backfill did not finish within %s; its log ends with:\n%s", timeout, tail(filepath.Join(e.dir, "backfill.log"), 30))
	}
}

func (e *e2e) preload(n int) {
	e.t.Helper()
	e.exec(`INSERT INTO customers
		SELECT 100000 + g, 'pre' || g, 'pre' || g || '@example.com', NULL, g * 0.25, g % 500
		  FROM generate_series(1, $1) g`, n)
}

// TestBackfillWithConcurrentWritesThenRun backfills a table while rows are
// inserted, updated and deleted, both new rows and rows of the snapshot,
// then starts 'dvsync run' with the writes still going: Dataverse ends
// equal to PostgreSQL, each row once, so nothing committed between the
// snapshot and the stream was lost.
func TestBackfillWithConcurrentWritesThenRun(t *testing.T) {
	e := newE2E(t)
	const preloaded = 5000
	e.preload(preloaded)
	cfg := e.backfillConfig("{workers: 4, batch_size: 100}")

	var committed, churned atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan error, 2)
	go func() { writerDone <- e.workload(1500, &committed) }()
	go func() { writerDone <- e.churnPreloaded(preloaded, stop, &churned) }()

	_, done := e.startBackfill(cfg, "--page-size", "250")
	e.waitBackfill(done, 120*time.Second)
	during := churned.Load()
	d := e.startDaemon2(cfg)
	waitUntil(t, 60*time.Second, func() bool { return churned.Load() > during+200 })
	close(stop)
	for range 2 {
		if err := <-writerDone; err != nil {
			t.Fatal(err)
		}
	}
	e.waitInSync(90 * time.Second)
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if during == 0 {
		t.Error("no row of the snapshot changed while the backfill ran")
	}
	if log := tail(filepath.Join(e.dir, "backfill.log"), 200); !strings.Contains(log, "created replication slot") {
		t.Errorf("the backfill did not create the slot; log:\n%s", log)
	}
}

// TestBackfillResumesAfterKill kills a backfill with SIGKILL part-way
// and runs it again: it resumes after the last durable key rather than
// from the start, and Dataverse ends equal to PostgreSQL.
func TestBackfillResumesAfterKill(t *testing.T) {
	e := newE2E(t)
	const rows = 20000
	e.preload(rows)
	cfg := e.backfillConfig("{workers: 2, batch_size: 50}")

	// Each write held back 20ms: 4500 rows take several ack intervals
	// (200ms), so some progress is durable before the kill however fast
	// the emulator is; 4500 is below 5000, where $count stops counting.
	e.setFaults(t, `{"latency_ms": 20, "match": "accounts"}`)
	cmd, done := e.startBackfill(cfg, "--page-size", "100")
	waitUntil(t, 120*time.Second, func() bool { return e.accountCount() >= 4500 })
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	e.setFaults(t, `{}`)
	if err := <-done; err == nil {
		t.Fatal("the backfill finished before it was killed; the test needs it slower")
	}
	if n := e.accountCount(); n >= rows {
		t.Fatalf("the backfill wrote all %d rows before it was killed", n)
	}

	_, done = e.startBackfill(cfg, "--page-size", "100")
	e.waitBackfill(done, 180*time.Second)
	e.waitInSync(30 * time.Second)
	log := tail(filepath.Join(e.dir, "backfill.log"), 400)
	if !resumedAfterRows.MatchString(log) {
		t.Errorf("the second backfill did not resume after saved rows; log:\n%s", log)
	}

	// A finished backfill has nothing left to read.
	_, done = e.startBackfill(cfg)
	e.waitBackfill(done, 60*time.Second)
	log = tail(filepath.Join(e.dir, "backfill.log"), 8)
	if !strings.Contains(log, "backfilled 20000 rows") || !strings.Contains(log, "to_read=0") {
		t.Errorf("a third backfill did more than confirm it was done:\n%s", log)
	}

	// --restart reads everything again.
	_, done = e.startBackfill(cfg, "--restart")
	e.waitBackfill(done, 120*time.Second)
	if log := tail(filepath.Join(e.dir, "backfill.log"), 12); !strings.Contains(log, "rows_left=20000 rows_done=0") {
		t.Errorf("a restarted backfill did not read the table again:\n%s", log)
	}
	e.waitInSync(30 * time.Second)
}

func TestBackfillRejectsUnknownMapping(t *testing.T) {
	t.Setenv("PG_DSN", "postgres://localhost/app")
	t.Setenv("DATAVERSE_URL", "https://example.crm.dynamics.com")
	t.Setenv("DATAVERSE_TOKEN", "x")
	_, _, err := loadBackfill(filepath.Join(examples, "dvsync.yaml"), []string{"customers", "nosuch"})
	if err == nil || !strings.Contains(err.Error(), "--mapping nosuch: no such mapping (mappings: customers)") {
		t.Fatalf("loadBackfill = %v, want an error naming the unknown mapping and the known ones", err)
	}
}

// resumedAfterRows matches the log line of a backfill that went on with
// a table after rows an earlier run had made durable.
var resumedAfterRows = regexp.MustCompile(`backfill reading table".*rows_done=[1-9][0-9]* resumed=true`)

func TestBackfillDryRunWritesNothing(t *testing.T) {
	e := newE2E(t)
	e.preload(300)
	cfg := e.backfillConfig("{}")
	_, done := e.startBackfill(cfg, "--dry-run", "--where", "id % 2 = 0")
	e.waitBackfill(done, 60*time.Second)
	log := tail(filepath.Join(e.dir, "backfill.log"), 5)
	if !strings.Contains(log, "dry run: read and mapped 150 rows") {
		t.Errorf("dry run summary missing; log:\n%s", log)
	}
	if n := e.accountCount(); n != 0 {
		t.Errorf("a dry run wrote %d accounts", n)
	}
	var slots int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM pg_replication_slots`).Scan(&slots); err != nil {
		t.Fatal(err)
	}
	if slots != 0 {
		t.Errorf("a dry run created %d replication slots", slots)
	}
}

// churnPreloaded updates, deletes and re-inserts rows of the preloaded
// range, which the backfill's snapshot holds, until stop is closed.
func (e *e2e) churnPreloaded(n int, stop <-chan struct{}, steps *atomic.Int64) error {
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, e.db.Config())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		id := 100001 + (i*7919)%n
		sql := fmt.Sprintf(`UPDATE customers SET name = name || '*', phone = '%d' WHERE id = %d`, i, id)
		switch i % 10 {
		case 0:
			sql = fmt.Sprintf(`DELETE FROM customers WHERE id = %d`, id)
		case 5:
			sql = fmt.Sprintf(`INSERT INTO customers VALUES (%d, 'back%d', NULL, NULL, 1.00, 1)
				ON CONFLICT (id) DO UPDATE SET name = 'again%d'`, 100001+((i-5)*7919)%n, i, i)
		}
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		steps.Add(1)
	}
}

// startDaemon2 starts 'dvsync run' with the given config.
func (e *e2e) startDaemon2(config string) *daemonProc {
	e.t.Helper()
	p, err := spawnDaemon(context.Background(), os.Args[0], config, filepath.Join(e.dir, "dvsync.log"), e.env)
	if err != nil {
		e.t.Fatal(errors.Join(err, errors.New(tail(filepath.Join(e.dir, "backfill.log"), 20))))
	}
	e.t.Cleanup(p.kill)
	return p
}
