package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/odataclient"
)

// The customers mapping of deploy/examples, with the phone column's
// target left open: telephone1 holds at most 50 characters, description
// (a memo) 2000.
const customersMapping = `version: 1
source: {connection: app, table: public.customers}
dataverse: {table: account, entity_set: accounts}
direction: to-dataverse
key: {alternate_key: [accountnumber]}
columns:
  - {source: id,           target: accountnumber,     type: string}
  - {source: name,         target: name}
  - {source: email,        target: emailaddress1}
  - {source: phone,        target: %s}
  - {source: credit_limit, target: creditlimit,       type: money}
  - {source: employees,    target: numberofemployees, type: integer}
deletes: delete
`

// writeConfig writes a copy of the example daemon config and a customers
// mapping sending phone to phoneTarget into the test's folder, and returns
// the config's path. Calling it again rewrites the mapping in place.
func (e *e2e) writeConfig(phoneTarget string) string {
	e.t.Helper()
	dir := filepath.Join(e.dir, "conf")
	cfg, err := os.ReadFile(filepath.Join(examples, "dvsync.yaml"))
	if err != nil {
		e.t.Fatal(err)
	}
	writeFile(e.t, filepath.Join(dir, "dvsync.yaml"), string(cfg))
	writeFile(e.t, filepath.Join(dir, "mappings", "customers.yaml"), fmt.Sprintf(customersMapping, phoneTarget))
	return filepath.Join(dir, "dvsync.yaml")
}

// startDaemonWith starts 'dvsync run -c config flags...' as a child
// process.
func (e *e2e) startDaemonWith(config string, flags ...string) *daemonProc {
	e.t.Helper()
	args := append([]string{"run", "-c", config}, flags...)
	p, err := spawnDaemonArgs(context.Background(), os.Args[0], args, filepath.Join(e.dir, "dvsync.log"), e.env)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(p.kill)
	return p
}

// setCLIEnv gives this process the daemon's environment, so that commands
// run in-process expand the config's variables alike.
func (e *e2e) setCLIEnv() {
	for _, kv := range e.env {
		k, v, _ := strings.Cut(kv, "=")
		if k != runAsDvsync {
			e.t.Setenv(k, v)
		}
	}
}

// accountField returns one attribute of the account with the given
// number, or "" with an error when there is none.
func (e *e2e) accountField(number, attr string) (string, error) {
	page, err := e.dv.List(context.Background(), "accounts", odataclient.Query{
		Select: []string{attr}, Filter: fmt.Sprintf("accountnumber eq '%s'", number),
	})
	if err != nil {
		return "", err
	}
	if len(page.Rows) != 1 {
		return "", fmt.Errorf("%d accounts numbered %s", len(page.Rows), number)
	}
	var row map[string]any
	if err := json.Unmarshal(page.Rows[0], &row); err != nil {
		return "", err
	}
	s, _ := row[attr].(string)
	return s, nil
}

// scrape reads /metrics and returns each sample by its name and labels as
// written, e.g. `dvsync_engine_lag_seconds{pipeline="app"}`.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: status %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// sample returns the value of the metric whose name is name and whose
// labels include every one of labels (`key="value"`), summed over the
// samples that match.
func sample(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for k, v := range m {
		if !strings.HasPrefix(k, name+"{") && k != name {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(k, l)
		}
		if all {
			sum += v
		}
	}
	return sum
}

// TestPoisonedRecordIsDeadLetteredAndRetried follows an operator through
// a record Dataverse refuses: it lands in dead letters with Dataverse's
// error while the rows after it still arrive and the metrics say so;
// retrying under the same mapping fails again and keeps it; after the
// mapping is fixed, 'dvsync deadletters retry' delivers it.
func TestPoisonedRecordIsDeadLetteredAndRetried(t *testing.T) {
	e := newE2E(t)
	cfg := e.writeConfig("telephone1")
	d := e.startDaemonWith(cfg)

	before := scrape(t, d.httpAddr)
	long := strings.Repeat("9", 60) // telephone1 holds 50
	e.exec(`INSERT INTO customers VALUES (1, 'a', NULL, '1', 1, 1), (2, 'b', NULL, '2', 2, 2)`)
	e.exec(`INSERT INTO customers VALUES (3, 'poison', NULL, $1, 3, 3)`, long)
	e.exec(`INSERT INTO customers VALUES (4, 'd', NULL, '4', 4, 4), (5, 'e', NULL, '5', 5, 5)`)
	e.exec(`UPDATE customers SET name = 'b2' WHERE id = 2`)

	// The rows after the poisoned one arrive, the poisoned one does not.
	waitUntil(t, 30*time.Second, func() bool {
		got, _, err := e.dataverseRows()
		return err == nil && len(got) == 4 && strings.HasPrefix(got["5"], "e|") && strings.HasPrefix(got["2"], "b2|")
	})
	if _, err := e.accountField("3", "name"); err == nil {
		t.Fatal("the poisoned row reached Dataverse")
	}

	// The metrics show it, per table and operation.
	var after map[string]float64
	table := `table="public.customers"`
	waitUntil(t, 10*time.Second, func() bool {
		after = scrape(t, d.httpAddr)
		return sample(after, "dvsync_engine_records_dead_lettered_total", table, `stage="write"`, `op="insert"`) == 1
	})
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"dvsync_engine_records_read_total", []string{table, `op="insert"`}, 5},
		{"dvsync_engine_records_read_total", []string{table, `op="update"`}, 1},
		{"dvsync_engine_records_written_total", []string{table}, 4},
		{"dvsync_engine_records_failed_total", []string{table, `op="insert"`}, 1},
		{"dvsync_engine_batch_size_records_count", nil, 1},
		{"dvsync_engine_write_duration_seconds_count", nil, 1},
	} {
		was, now := sample(before, c.name, c.labels...), sample(after, c.name, c.labels...)
		if now-was < c.min {
			t.Errorf("%s%v went from %v to %v, want it up by at least %v", c.name, c.labels, was, now, c.min)
		}
	}
	if _, ok := after[`dvsync_engine_lag_seconds{pipeline="app"}`]; !ok {
		t.Error("no lag gauge")
	}
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	// The operator looks.
	e.setCLIEnv()
	out, _, err := runCLI(t, "deadletters", "list", "-c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, "public.customers c id=3") ||
		!strings.Contains(out, "exceeded the maximum allowed length of '50'") {
		t.Fatalf("list:\n%s", out)
	}
	id := strings.Fields(strings.Split(out, "\n")[1])[0]
	out, _, err = runCLI(t, "deadletters", "show", "-c", cfg, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Stage:    write", "Source record 1 of 1: c public.customers key id=3",
		"phone = " + long, "Mapped record (as written): c account key accountnumber=3", "telephone1 = " + long} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}

	// Retrying under the same mapping fails again and keeps the letter.
	out, _, err = runCLI(t, "deadletters", "retry", "-c", cfg, "--all")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "0 delivered, 1 failed") {
		t.Fatalf("retry under the old mapping: %v\n%s", err, out)
	}

	// The operator fixes the mapping and retries.
	e.writeConfig("description")
	out, _, err = runCLI(t, "deadletters", "retry", "-c", cfg, id)
	if err != nil || !strings.Contains(out, "1 delivered, 0 failed") {
		t.Fatalf("retry after the fix: %v\n%s", err, out)
	}
	if got, err := e.accountField("3", "description"); err != nil || got != long {
		t.Errorf("account 3 description = %q, %v; want the long phone", got, err)
	}
	if got, err := e.accountField("3", "name"); err != nil || got != "poison" {
		t.Errorf("account 3 name = %q, %v", got, err)
	}
	out, _, err = runCLI(t, "deadletters", "list", "-c", cfg)
	if err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("list after retry: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "deadletters", "retry", "-c", cfg, id); err == nil ||
		!strings.Contains(err.Error(), "no dead letter "+id) {
		t.Errorf("retrying a delivered letter: %v", err)
	}
}

// TestDeadLettersDrop discards a letter without delivering it. Its daemon
// runs with --log-level debug, over the config's info, and so logs the
// dead letter's table and key.
func TestDeadLettersDrop(t *testing.T) {
	e := newE2E(t)
	cfg := e.writeConfig("telephone1")
	e.setCLIEnv()
	if _, _, err := runCLI(t, "run", "-c", cfg, "--log-level", "loud"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Errorf("run --log-level loud: err = %v", err)
	}
	d := e.startDaemonWith(cfg, "--log-level", "debug")
	e.exec(`INSERT INTO customers VALUES (1, 'poison', NULL, $1, 1, 1), (2, 'b', NULL, '2', 2, 2)`, strings.Repeat("9", 51))
	waitUntil(t, 30*time.Second, func() bool {
		return sample(scrape(t, d.httpAddr), "dvsync_engine_records_dead_lettered_total") == 1
	})
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if log := tail(filepath.Join(e.dir, "dvsync.log"), 1000); !strings.Contains(log, `level=DEBUG msg="record dead-lettered"`) ||
		!strings.Contains(log, `key="accountnumber=1"`) {
		t.Errorf("no debug line for the dead letter; log:\n%s", log)
	}
	if _, _, err := runCLI(t, "deadletters", "drop", "-c", cfg); err == nil {
		t.Error("drop with neither IDs nor --all succeeded")
	}
	out, _, err := runCLI(t, "deadletters", "drop", "-c", cfg, "--pipeline", "app", "--all")
	if err != nil || !strings.Contains(out, "1 dropped") {
		t.Fatalf("drop: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "deadletters", "list", "-c", cfg)
	if err != nil || strings.Count(out, "\n") != 1 {
		t.Errorf("list after drop: %v\n%s", err, out)
	}
}
