package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
)

// The end-to-end tests run the real 'dvsync run' as a child process: the
// test binary re-executes itself as dvsync when this variable is set, so a
// SIGKILL hits a real daemon, not a goroutine.
const runAsDvsync = "DVSYNC_TEST_RUN_AS_DVSYNC"

func TestMain(m *testing.M) {
	if os.Getenv(runAsDvsync) == "1" {
		main()
		return
	}
	testenv.Main(m)
}

const examples = "../../deploy/examples"

// e2e is one PostgreSQL database, one emulator and a dvsync state folder
// that successive daemons share.
type e2e struct {
	t   *testing.T
	db  *pgx.Conn
	dv  *odataclient.Client
	env []string
	dir string
}

func newE2E(t *testing.T) *e2e {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.NewDatabase(t, testenv.StartPostgres(t))
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	if _, err := db.Exec(ctx, `CREATE TABLE public.customers (
		id bigint PRIMARY KEY, name text NOT NULL, email text, phone text,
		credit_limit numeric(12,2), employees int)`); err != nil {
		t.Fatal(err)
	}
	schema, err := os.ReadFile(filepath.Join(examples, "schema.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	em := testenv.StartEmulator(t, string(schema))
	dv := personClient(t, em)
	dir := t.TempDir()
	return &e2e{t: t, db: db, dv: dv, dir: dir, env: []string{
		runAsDvsync + "=1",
		"PG_DSN=" + dsn,
		"DATAVERSE_URL=" + em.URL,
		"DATAVERSE_TOKEN=" + em.Token,
		"DVSYNC_STATE=" + filepath.Join(dir, "state.db"),
	}}
}

func (e *e2e) startDaemon() *daemonProc {
	e.t.Helper()
	p, err := spawnDaemon(context.Background(), os.Args[0], filepath.Join(examples, "dvsync.yaml"), filepath.Join(e.dir, "dvsync.log"), e.env)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(p.kill)
	return p
}

func (e *e2e) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatal(err)
	}
}

// row is a customer as it should look in Dataverse, rendered to text so
// PostgreSQL's and Dataverse's type systems compare on equal terms.
type row = string

func (e *e2e) postgresRows() map[string]row {
	e.t.Helper()
	rows, err := e.db.Query(context.Background(),
		`SELECT id::text, name, coalesce(email, 'null'), coalesce(phone, 'null'),
		        coalesce(credit_limit::text, 'null'), coalesce(employees::text, 'null')
		   FROM customers`)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]row{}
	for rows.Next() {
		var id, name, email, phone, credit, employees string
		if err := rows.Scan(&id, &name, &email, &phone, &credit, &employees); err != nil {
			e.t.Fatal(err)
		}
		out[id] = strings.Join([]string{name, email, phone, credit, employees}, "|")
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// dataverseRows reads every account, following @odata.nextLink. It
// returns an error, not a failure, so callers can poll.
func (e *e2e) dataverseRows() (map[string]row, int, error) {
	ctx := context.Background()
	page, err := e.dv.List(ctx, "accounts", odataclient.Query{
		Select:      []string{"accountnumber", "name", "emailaddress1", "telephone1", "creditlimit", "numberofemployees"},
		MaxPageSize: 500,
	})
	out := map[string]row{}
	n := 0
	for {
		if err != nil {
			return nil, 0, err
		}
		for _, raw := range page.Rows {
			var a account
			if err := json.Unmarshal(raw, &a); err != nil {
				return nil, 0, err
			}
			out[a.AccountNumber] = strings.Join([]string{a.Name, strOrNull(a.Email), strOrNull(a.Phone), numOrNull(a.CreditLimit), intOrNull(a.Employees)}, "|")
			n++
		}
		if page.NextLink == "" {
			return out, n, nil
		}
		page, err = e.dv.NextPage(ctx, page.NextLink)
	}
}

// waitInSync polls until Dataverse holds exactly PostgreSQL's rows, each
// once, and fails with the first differences otherwise.
func (e *e2e) waitInSync(timeout time.Duration) {
	e.t.Helper()
	want := e.postgresRows()
	var diff []string
	ok := poll(timeout, func() bool {
		got, n, err := e.dataverseRows()
		if err != nil {
			diff = []string{err.Error()}
			return false
		}
		diff = diffRows(want, got)
		if n != len(got) {
			diff = append(diff, fmt.Sprintf("%d accounts for %d distinct account numbers", n, len(got)))
		}
		return len(diff) == 0
	})
	if !ok {
		e.t.Fatalf("Dataverse is not in sync with PostgreSQL after %s (%d rows expected); first differences:\n%s\ndvsync log ends with:\n%s",
			timeout, len(want), strings.Join(diff, "\n"), tail(filepath.Join(e.dir, "dvsync.log"), 40))
	}
}

func diffRows(want, got map[string]row) []string {
	var diff []string
	for id, w := range want {
		if g, ok := got[id]; !ok {
			diff = append(diff, fmt.Sprintf("missing %s: want %s", id, w))
		} else if g != w {
			diff = append(diff, fmt.Sprintf("differs %s: want %s, got %s", id, w, g))
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			diff = append(diff, fmt.Sprintf("extra %s: %s", id, g))
		}
	}
	sort.Strings(diff)
	if len(diff) > 10 {
		diff = append(diff[:10], fmt.Sprintf("... and %d more", len(diff)-10))
	}
	return diff
}

func TestEndToEndInsertUpdateDelete(t *testing.T) {
	e := newE2E(t)
	d := e.startDaemon()

	e.exec(`INSERT INTO customers VALUES (1, 'Contoso', 'info@contoso.example', '+1 555 0100', 250000.00, 120),
	                                     (2, 'Fabrikam', NULL, NULL, 10.50, NULL)`)
	e.waitInSync(20 * time.Second)

	// The update leaves email alone; it must survive in Dataverse.
	e.exec(`UPDATE customers SET name = 'Contoso Ltd', credit_limit = 1.25 WHERE id = 1`)
	e.waitInSync(20 * time.Second)
	if got, _, _ := e.dataverseRows(); !strings.Contains(got["1"], "info@contoso.example") {
		t.Fatalf("update lost the untouched email: %q", got["1"])
	}

	e.exec(`DELETE FROM customers WHERE id = 2`)
	e.waitInSync(20 * time.Second)

	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestEndToEndSurvivesKill commits a stream of transactions while the
// daemon is killed with SIGKILL twice, each time after Dataverse has taken
// part of the stream, and restarted from its saved state; the final
// Dataverse state must equal PostgreSQL's, every row exactly once.
func TestEndToEndSurvivesKill(t *testing.T) {
	e := newE2E(t)
	d := e.startDaemon()

	const txns = 3000
	var committed atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		writerDone <- e.workload(txns, &committed)
	}()

	for _, rows := range []int{600, 1800} {
		waitUntil(t, 60*time.Second, func() bool { return e.accountCount() >= rows })
		d.kill() // SIGKILL: no drain, no final ack
		d = e.startDaemon()
	}
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	e.waitInSync(60 * time.Second)
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(e.dir, "dvsync.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "resumed=true") {
		t.Errorf("no restart resumed from a saved position; log:\n%s", log)
	}
}

// accountCount is the number of accounts, or -1 when it cannot be read.
func (e *e2e) accountCount() int {
	page, err := e.dv.List(context.Background(), "accounts", odataclient.Query{Select: []string{"accountid"}, Top: 1, Count: true})
	if err != nil {
		return -1
	}
	return page.Count
}

// workload commits n transactions of inserts, updates and deletes, some
// touching several rows, some touching one row several times.
func (e *e2e) workload(n int, committed *atomic.Int64) error {
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, e.db.Config())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for i := range n {
		id := 1000 + i
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		stmts := []string{fmt.Sprintf(`INSERT INTO customers VALUES (%d, 'c%d', 'c%d@example.com', NULL, %d.%02d, %d)`, id, i, i, i, i%100, i)}
		if i%3 == 0 && i > 0 {
			stmts = append(stmts, fmt.Sprintf(`UPDATE customers SET name = name || '+', employees = coalesce(employees, 0) + 1 WHERE id = %d`, id-1))
		}
		if i%7 == 0 && i > 1 {
			stmts = append(stmts, fmt.Sprintf(`DELETE FROM customers WHERE id = %d`, id-2))
		}
		if i%11 == 0 {
			// The same row twice in one transaction: the engine folds it.
			stmts = append(stmts, fmt.Sprintf(`UPDATE customers SET phone = '555-%d' WHERE id = %d`, i, id),
				fmt.Sprintf(`UPDATE customers SET phone = '556-%d' WHERE id = %d`, i, id))
		}
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				_ = tx.Rollback(ctx)
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
		committed.Add(1)
	}
	return nil
}

func waitUntil(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	if !poll(timeout, cond) {
		t.Fatalf("condition not met within %s", timeout)
	}
}

// poll checks cond every 20ms until it holds or timeout passes.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			return cond()
		case <-tick.C:
		}
	}
	return true
}
