package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
)

// TestReloadOnSIGHUP changes a running daemon's mapping: an invalid
// mapping file is refused and the old mapping keeps working; a valid one
// applies to the changes committed after it, with no restart.
func TestReloadOnSIGHUP(t *testing.T) {
	e := newE2E(t)
	cfg := e.writeConfig("telephone1")
	d := e.startDaemonWith(cfg)
	mappingFile := filepath.Join(filepath.Dir(cfg), "mappings", "customers.yaml")
	logPath := filepath.Join(e.dir, "dvsync.log")
	hup := func(wantLog string, n int) {
		t.Helper()
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 20*time.Second, func() bool {
			b, _ := os.ReadFile(logPath)
			return strings.Count(string(b), wantLog) == n
		})
	}
	field := func(id, attr string) string {
		t.Helper()
		var got string
		waitUntil(t, 20*time.Second, func() bool {
			var err error
			got, err = e.accountField(id, attr)
			return err == nil
		})
		return got
	}

	e.exec(`INSERT INTO customers VALUES (1, 'a', NULL, 'phone 1', 1, 1)`)
	if got := field("1", "telephone1"); got != "phone 1" {
		t.Fatalf("account 1 telephone1 = %q", got)
	}

	// An invalid mapping: refused, with the file and line, and the old
	// mapping goes on.
	writeFile(t, mappingFile, strings.Replace(fmt.Sprintf(customersMapping, "description"), "direction: to-dataverse", "direction: sideways", 1))
	hup("mapping reload refused", 1)
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "customers.yaml:") {
		t.Errorf("the refusal does not name the file; log:\n%s", b)
	}
	e.exec(`INSERT INTO customers VALUES (2, 'b', NULL, 'phone 2', 2, 2)`)
	if got := field("2", "telephone1"); got != "phone 2" {
		t.Errorf("after a refused reload, account 2 telephone1 = %q, want the old mapping's", got)
	}

	// A valid one applies from the next change on.
	e.writeConfig("description")
	hup("mappings reloaded", 1)
	e.exec(`INSERT INTO customers VALUES (3, 'c', NULL, 'phone 3', 3, 3)`)
	if got := field("3", "description"); got != "phone 3" {
		t.Errorf("after the reload, account 3 description = %q", got)
	}
	if got, _ := e.accountField("3", "telephone1"); got != "" {
		t.Errorf("after the reload, account 3 telephone1 = %q, want it unmapped", got)
	}
	m := scrape(t, d.httpAddr)
	if m[`dvsync_mapping_reloads_total{result="applied"}`] != 1 || m[`dvsync_mapping_reloads_total{result="refused"}`] != 1 {
		t.Errorf("reload counters: %v applied, %v refused", m[`dvsync_mapping_reloads_total{result="applied"}`], m[`dvsync_mapping_reloads_total{result="refused"}`])
	}

	// A mapping that needs a restart is refused too.
	writeFile(t, filepath.Join(filepath.Dir(mappingFile), "orders.yaml"), `version: 1
source: {connection: app, table: public.orders}
dataverse: {table: contact, entity_set: contacts}
direction: to-dataverse
key: {alternate_key: [emailaddress1]}
columns:
  - {source: email, target: emailaddress1}
`)
	hup("mapping reload refused", 2)
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "table public.orders is new") {
		t.Errorf("the refusal does not say why; log:\n%s", b)
	}
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// A reload that changes source.key is refused: the running source keeps
// the key it started with.
func TestReloadRefusesAChangedSourceKey(t *testing.T) {
	compile := func(key string) *mapping.Set {
		t.Helper()
		m, err := mapping.Parse([]byte(`version: 1
source: {connection: app, table: public.t, key: [`+key+`]}
dataverse: {table: account}
key: {alternate_key: [accountnumber]}
columns:
  - {source: a, target: accountnumber, type: string}
`), "m.yaml")
		if err != nil {
			t.Fatal(err)
		}
		s, err := mapping.Compile([]*mapping.Mapping{m})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	r := &reloader{current: compile("a"), pipelines: map[string]*engine.Pipeline{"app": nil}}
	if err := r.applicable(compile("a")); err != nil {
		t.Fatalf("same key refused: %v", err)
	}
	err := r.applicable(compile("a, b"))
	if err == nil || !strings.Contains(err.Error(), "source.key changed") {
		t.Fatalf("changed key: %v, want a refusal", err)
	}
}
