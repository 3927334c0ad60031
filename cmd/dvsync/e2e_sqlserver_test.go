package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
)

// sqlserverExample is the SQL Server example that docs/sqlserver.md
// walks through.
const sqlserverExample = examples + "/sqlserver"

// sqlserverE2E is a fake SQL Server database, the emulator, and a dvsync
// config reading the first into the second with the example's mapping.
type sqlserverE2E struct {
	t      *testing.T
	erp    *fakeERP
	dv     *e2e // only its Dataverse client is set
	dir    string
	config string
	env    []string
}

func newSQLServerE2E(t *testing.T) *sqlserverE2E {
	t.Helper()
	mappings, err := filepath.Abs(filepath.Join(sqlserverExample, "mappings", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return newSQLServerE2EWith(t, mappings, "")
}

// newSQLServerE2EWith is newSQLServerE2E with the given mapping files and
// dataverse.changes section.
func newSQLServerE2EWith(t *testing.T, mappings, changes string) *sqlserverE2E {
	t.Helper()
	erp := startFakeERP(t)
	schema, err := os.ReadFile(filepath.Join(examples, "schema.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	em := testenv.StartEmulator(t, string(schema))
	dv := personClient(t, em)
	dir := t.TempDir()
	config := filepath.Join(dir, "dvsync.yaml")
	// The example's connection, polling faster; debug logs show what
	// the backfill saved.
	writeFile(t, config, `version: 1
log: {level: debug, format: text}
http: {listen: "${DVSYNC_HTTP:-127.0.0.1:0}"}
state: {path: "`+filepath.Join(dir, "state.db")+`"}
dataverse: {url: "${DATAVERSE_URL}", auth: {token: "${DATAVERSE_TOKEN}"}`+changes+`}
connections:
  erp:
    type: sqlserver
    dsn: ${MSSQL_DSN}
    mode: change_tracking
    poll_interval: 5ms
    max_poll_interval: 50ms
mappings: ["`+mappings+`"]
engine: {batch_wait: 5ms}
`)
	return &sqlserverE2E{t: t, erp: erp, dv: &e2e{t: t, dv: dv}, dir: dir, config: config, env: []string{
		runAsDvsync + "=1", "MSSQL_DSN=" + erp.dsn(), "DATAVERSE_URL=" + em.URL, "DATAVERSE_TOKEN=" + em.Token,
	}}
}

func (e *sqlserverE2E) run() *daemonProc {
	e.t.Helper()
	p, err := spawnDaemonArgs(context.Background(), os.Args[0], []string{"run", "-c", e.config}, filepath.Join(e.dir, "dvsync.log"), e.env)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(p.kill)
	return p
}

// backfill starts 'dvsync backfill' logging to backfill.log.
func (e *sqlserverE2E) backfill(args ...string) (*exec.Cmd, <-chan error) {
	e.t.Helper()
	return (&e2e{t: e.t, dir: e.dir, env: e.env}).startBackfill(e.config, args...)
}

// waitDataverse polls until Dataverse holds exactly want, each row once.
func (e *sqlserverE2E) waitDataverse(timeout time.Duration, want map[string]row) {
	e.t.Helper()
	var diff []string
	if !poll(timeout, func() bool {
		got, n, err := e.dv.dataverseRows()
		if err != nil {
			diff = []string{err.Error()}
			return false
		}
		diff = diffRows(want, got)
		if n != len(got) {
			diff = append(diff, fmt.Sprintf("%d accounts for %d distinct account numbers", n, len(got)))
		}
		return len(diff) == 0
	}) {
		e.t.Fatalf("Dataverse does not hold the expected %d rows after %s; first differences:\n%s\ndvsync log ends with:\n%s\nbackfill log ends with:\n%s",
			len(want), timeout, strings.Join(diff, "\n"), tail(filepath.Join(e.dir, "dvsync.log"), 30), tail(filepath.Join(e.dir, "backfill.log"), 30))
	}
}

// TestSQLServerRunStreamsChangeTracking runs the daemon on a change
// tracked table: inserts, updates and deletes committed after it started
// reach Dataverse, rows it found already there do not (that is the
// backfill's job), and a change made under dvsync's own change tracking
// context is not echoed.
func TestSQLServerRunStreamsChangeTracking(t *testing.T) {
	e := newSQLServerE2E(t)
	e.erp.upsert(nil, customer(1, "Before", nil, nil, nil))
	d := e.run()

	e.erp.upsert(nil, customer(10, "Contoso", "info@contoso.com", "1500.50", int64(120)),
		customer(11, "Fabrikam", nil, "99.99", nil))
	e.erp.upsert(nil, customer(12, "Northwind", nil, nil, int64(7)))
	e.waitDataverse(30*time.Second, map[string]row{
		"10": "Contoso|info@contoso.com|null|1500.50|120",
		"11": "Fabrikam|null|null|99.99|null",
		"12": "Northwind|null|null|null|7",
	})

	e.erp.upsert(nil, customer(10, "Contoso Ltd", "info@contoso.com", "2000.00", int64(121)))
	e.erp.delete(11)
	// dvsync's SQL Server sink writes under this context; the source
	// must skip such a change rather than send it back.
	e.erp.upsert([]byte("dvsync"), customer(12, "Northwind (from Dataverse)", nil, nil, int64(7)))
	e.erp.upsert(nil, customer(13, "Tailspin", nil, nil, nil))
	e.waitDataverse(30*time.Second, map[string]row{
		"10": "Contoso Ltd|info@contoso.com|null|2000.00|121",
		"12": "Northwind|null|null|null|7",
		"13": "Tailspin|null|null|null|null",
	})
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(e.erp.pageLog()); n != 0 {
		t.Errorf("streaming read the table whole %d times; it should only read changes", n)
	}
}

// TestSQLServerBackfillThenRunWithoutGap backfills a table while it
// changes under the backfill: a row already read is updated, another
// deleted, and a row inserted behind the read's cursor. The backfill
// cannot see these; 'dvsync run' afterwards streams them from the
// version the backfill recorded before reading, without reading the
// table again, and Dataverse ends equal to the table.
func TestSQLServerBackfillThenRunWithoutGap(t *testing.T) {
	e := newSQLServerE2E(t)
	for id := range int64(40) {
		e.erp.upsert(nil, customer(100+id, fmt.Sprintf("c%d", id), nil, fmt.Sprintf("%d.25", id), id))
	}
	e.erp.onPage(func(f *fakeERP, answered int) {
		if answered == 3 {
			f.upsert(nil, customer(100, "c0 changed", "c0@example.com", nil, nil))
			f.delete(101)
			f.upsert(nil, customer(50, "behind the cursor", nil, nil, nil))
		}
	})
	_, done := e.backfill("--page-size", "5")
	(&e2e{t: t, dir: e.dir}).waitBackfill(done, 60*time.Second)
	log := tail(filepath.Join(e.dir, "backfill.log"), 5)
	if !strings.Contains(log, "backfilled 40 rows of connection erp") {
		t.Errorf("the backfill's summary is missing; log ends with:\n%s", log)
	}
	got, _, err := e.dv.dataverseRows()
	if err != nil {
		t.Fatal(err)
	}
	if got["100"] != "c0|null|null|0.25|0" || got["101"] == "" || got["50"] != "" {
		t.Fatalf("the backfill saw changes made behind its cursor: 100=%q 101=%q 50=%q", got["100"], got["101"], got["50"])
	}

	pages := len(e.erp.pageLog())
	d := e.run()
	e.waitDataverse(30*time.Second, e.erp.want())
	// And it keeps streaming.
	e.erp.upsert(nil, customer(200, "after", nil, nil, nil))
	e.waitDataverse(30*time.Second, e.erp.want())
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n := len(e.erp.pageLog()); n != pages {
		t.Errorf("'dvsync run' read the table again (%d page queries) instead of streaming from the backfill's position", n-pages)
	}
}

// savedRows matches the debug line of a durable backfill position.
var savedRows = regexp.MustCompile(`backfill progress saved".* table=dbo.Customers rows=(\d+)`)

// TestSQLServerBackfillResumesAfterKill kills a backfill with SIGKILL
// once part of its progress is durable and runs it again: the second run
// reads on after the last saved key rather than from the first row,
// Dataverse ends equal to the table, and a third run has nothing to read
// and leaves streaming where it was.
func TestSQLServerBackfillResumesAfterKill(t *testing.T) {
	e := newSQLServerE2E(t)
	const rows = 200
	for id := range int64(rows) {
		e.erp.upsert(nil, customer(1000+id, fmt.Sprintf("c%d", id), nil, nil, id))
	}
	// The first run stalls on its 11th page, so that it is killed part
	// way, after 100 rows.
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })
	e.erp.onPage(func(_ *fakeERP, answered int) {
		if answered == 10 {
			<-stall
		}
	})
	cmd, done := e.backfill("--page-size", "10")
	if !poll(60*time.Second, func() bool {
		m := savedRows.FindAllStringSubmatch(tail(filepath.Join(e.dir, "backfill.log"), 50), -1)
		return len(m) > 0 && m[len(m)-1][1] == "100"
	}) {
		t.Fatalf("the backfill did not save the position of its 100th row; log:\n%s", tail(filepath.Join(e.dir, "backfill.log"), 30))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("the backfill finished before it was killed")
	}

	e.erp.onPage(nil)
	first := len(e.erp.pageLog())
	_, done = e.backfill("--page-size", "10")
	(&e2e{t: t, dir: e.dir}).waitBackfill(done, 60*time.Second)
	e.waitDataverse(30*time.Second, e.erp.want())
	if resumedAt := e.erp.pageLog()[first]; resumedAt != 1099 {
		t.Errorf("the second backfill read after key %d, want 1099 (the 100th row)", resumedAt)
	}

	// Streaming moves on; a finished backfill run again reads nothing
	// and does not move streaming back.
	d := e.run()
	e.erp.upsert(nil, customer(1000, "changed", nil, nil, nil))
	e.waitDataverse(30*time.Second, e.erp.want())
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	pages := len(e.erp.pageLog())
	_, done = e.backfill()
	(&e2e{t: t, dir: e.dir}).waitBackfill(done, 60*time.Second)
	if n := len(e.erp.pageLog()); n != pages {
		t.Errorf("a finished backfill read %d pages", n-pages)
	}
	// Had the backfill moved streaming back to the version it recorded,
	// that version would now be older than the minimum valid one.
	e.erp.cleanup()
	e.erp.upsert(nil, customer(1001, "changed too", nil, nil, nil))
	d = e.run()
	e.waitDataverse(30*time.Second, e.erp.want())
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if log := tail(filepath.Join(e.dir, "dvsync.log"), 400); strings.Contains(log, "reading the table again") {
		t.Errorf("streaming fell back to reading the table:\n%s", log)
	}
}

// TestSQLServerRereadsTableAfterChangeTrackingCleanup stops the daemon,
// changes the table, and lets change tracking's cleanup remove those
// changes: the saved version is now older than the minimum valid one.
// The restarted daemon says so and reads the table whole again rather
// than missing the changes, then streams on.
func TestSQLServerRereadsTableAfterChangeTrackingCleanup(t *testing.T) {
	e := newSQLServerE2E(t)
	d := e.run()
	e.erp.upsert(nil, customer(1, "one", nil, nil, nil), customer(2, "two", nil, nil, nil))
	e.waitDataverse(30*time.Second, e.erp.want())
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	e.erp.upsert(nil, customer(1, "one, changed while dvsync was stopped", nil, nil, nil))
	e.erp.upsert(nil, customer(3, "three, inserted while dvsync was stopped", nil, nil, nil))
	e.erp.cleanup()
	d = e.run()
	e.waitDataverse(30*time.Second, e.erp.want())
	e.erp.upsert(nil, customer(4, "four", nil, nil, nil))
	e.waitDataverse(30*time.Second, e.erp.want())
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	log := tail(filepath.Join(e.dir, "dvsync.log"), 400)
	if !strings.Contains(log, "change tracking no longer holds the changes since the saved version; reading the table again") ||
		!strings.Contains(log, "min_valid_version=3") {
		t.Errorf("the re-read is not in the log:\n%s", log)
	}
	if pages := e.erp.pageLog(); len(pages) == 0 || pages[0] != -1 {
		t.Errorf("page queries %v: the table was not read again from its first row", pages)
	}
}

// TestSQLServerDocumentedExampleValidates checks that the complete
// example of docs/sqlserver.md is the one in deploy/examples/sqlserver,
// which 'dvsync validate' accepts and the tests above run.
func TestSQLServerDocumentedExampleValidates(t *testing.T) {
	doc, err := os.ReadFile("../../docs/sqlserver.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	i := strings.Index(section, "## A complete example")
	if i < 0 {
		t.Fatal("docs/sqlserver.md has no complete example")
	}
	section = section[i:]
	if j := strings.Index(section[1:], "\n## "); j >= 0 {
		section = section[:j+1]
	}
	blocks := yamlBlocks(section)
	for _, f := range []string{"dvsync.yaml", "mappings/customers.yaml"} {
		b, err := os.ReadFile(filepath.Join(sqlserverExample, f))
		if err != nil {
			t.Fatal(err)
		}
		if want := withoutComments(string(b)); !slices.Contains(blocks, want) {
			t.Errorf("docs/sqlserver.md does not show %s as deploy/examples/sqlserver has it (without comments):\n%s", f, want)
		}
	}

	t.Setenv("MSSQL_DSN", "sqlserver://dvsync:pw@127.0.0.1:1?database=erp")
	t.Setenv("DATAVERSE_URL", "https://contoso.crm.dynamics.com")
	t.Setenv("DATAVERSE_TOKEN", "token")
	out, errOut, err := runCLI(t, "validate", "-c", filepath.Join(sqlserverExample, "dvsync.yaml"))
	if err != nil || !strings.Contains(out, "valid") {
		t.Fatalf("dvsync validate: %v\n%s%s", err, out, errOut)
	}
}

// yamlBlocks returns the ```yaml blocks of a Markdown text.
func yamlBlocks(md string) []string {
	var out []string
	for {
		i := strings.Index(md, "```yaml\n")
		if i < 0 {
			return out
		}
		md = md[i+len("```yaml\n"):]
		j := strings.Index(md, "```")
		if j < 0 {
			return out
		}
		out = append(out, md[:j])
		md = md[j:]
	}
}

// withoutComments drops a YAML file's whole-line comments and the blank
// lines they leave, and trailing comments.
func withoutComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 && !strings.Contains(line[:i], `"`) {
			line = strings.TrimRight(line[:i], " ")
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// TestSQLServerFromDataverseWritesUnderContext maps account back to
// dbo.Customers: creates, updates and deletes made in Dataverse reach the
// table through the SQL Server sink, every write made under dvsync's
// change tracking context, which the source skips.
func TestSQLServerFromDataverseWritesUnderContext(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "customers.yaml"), `version: 1
source: {connection: erp, table: dbo.Customers}
dataverse: {table: account, entity_set: accounts}
direction: from-dataverse
key: {alternate_key: [accountnumber]}
columns:
  - {source: CustomerID,  target: accountnumber,     type: string}
  - {source: Name,        target: name}
  - {source: Email,       target: emailaddress1}
  - {source: CreditLimit, target: creditlimit,       type: money}
  - {source: Employees,   target: numberofemployees, type: integer}
deletes: delete
`)
	// The test edits Dataverse with dvsync's own token; another user id
	// for dvsync makes those edits someone else's.
	e := newSQLServerE2EWith(t, filepath.Join(dir, "*.yaml"),
		`, changes: {user_id: 3f2504e0-4f89-41d3-9a0c-0305e82c33ff, poll: {min_interval: 50ms, max_interval: 200ms}}`)
	e.erp.upsert(nil, customer(7, "Existing", nil, nil, nil))
	d := e.run()

	ctx := context.Background()
	upsert := func(number, body string) {
		t.Helper()
		key := odataclient.Key{Alternate: []odataclient.KeyPart{{Name: "accountnumber", Value: number}}}
		if _, err := e.dv.dv.Upsert(ctx, "accounts", key, []byte(body), odataclient.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitTable := func(want map[string]row) {
		t.Helper()
		var got map[string]row
		if !poll(30*time.Second, func() bool {
			got = e.erp.want()
			return fmt.Sprint(got) == fmt.Sprint(want)
		}) {
			t.Fatalf("dbo.Customers = %v, want %v; log ends with:\n%s", got, want, tail(filepath.Join(e.dir, "dvsync.log"), 30))
		}
	}
	upsert("20", `{"name":"Adventure Works","emailaddress1":"aw@example.com","creditlimit":1500.5,"numberofemployees":12}`)
	upsert("21", `{"name":"Litware"}`)
	waitTable(map[string]row{
		"7":  "Existing|null|null|null|null",
		"20": "Adventure Works|aw@example.com|null|1500.50|12",
		"21": "Litware|null|null|null|null",
	})
	upsert("20", `{"numberofemployees":13}`)
	key := odataclient.Key{Alternate: []odataclient.KeyPart{{Name: "accountnumber", Value: "21"}}}
	if err := e.dv.dv.Delete(ctx, "accounts", key, odataclient.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTable(map[string]row{
		"7":  "Existing|null|null|null|null",
		"20": "Adventure Works|aw@example.com|null|1500.50|13",
	})
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	writes := e.erp.contexts()
	if len(writes) < 4 {
		t.Errorf("%d writes reached the table, want at least 4", len(writes))
	}
	for _, c := range writes {
		if c != "dvsync" {
			t.Errorf("a write was made under the change tracking context %q, not dvsync", c)
		}
	}
}

// TestSQLServerBackfillDryRunAndWhere: a dry run reads and maps every row
// and writes none; --where, which SQL Server backfills do not support, is
// refused before anything is read.
func TestSQLServerBackfillDryRunAndWhere(t *testing.T) {
	e := newSQLServerE2E(t)
	for id := range int64(10) {
		e.erp.upsert(nil, customer(id, fmt.Sprintf("c%d", id), nil, nil, nil))
	}
	_, done := e.backfill("--dry-run", "--page-size", "4")
	(&e2e{t: t, dir: e.dir}).waitBackfill(done, 60*time.Second)
	if log := tail(filepath.Join(e.dir, "backfill.log"), 5); !strings.Contains(log, "dry run: read and mapped 10 rows of connection erp") {
		t.Errorf("dry run summary missing; log:\n%s", log)
	}
	if got, _, err := e.dv.dataverseRows(); err != nil || len(got) != 0 {
		t.Errorf("a dry run wrote %d accounts (%v)", len(got), err)
	}

	pages := len(e.erp.pageLog())
	_, done = e.backfill("--where", "CustomerID > 5")
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a SQL Server backfill with --where succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the backfill with --where did not exit")
	}
	if log := tail(filepath.Join(e.dir, "backfill.log"), 5); !strings.Contains(log, "connection erp: --where: SQL Server backfills read whole tables") {
		t.Errorf("the refusal does not say why; log:\n%s", log)
	}
	if n := len(e.erp.pageLog()); n != pages {
		t.Errorf("the refused backfill read %d pages", n-pages)
	}
}
