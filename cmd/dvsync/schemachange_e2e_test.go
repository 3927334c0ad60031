package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/odataclient"
)

const contactsMapping = `version: 1
source: {connection: app, table: public.people}
dataverse: {table: contact, entity_set: contacts}
key: {alternate_key: [emailaddress1]}
columns:
  - {source: email, target: emailaddress1}
  - {source: name,  target: fullname}
`

// TestDroppedColumnPausesOnlyItsTable drops a column a running mapping
// reads. The table's later changes are held, not written without the
// column and not lost, /readyz names the table and the column, and another
// table on the same connection keeps flowing.
func TestDroppedColumnPausesOnlyItsTable(t *testing.T) {
	e := newE2E(t)
	e.exec(`CREATE TABLE public.people (email text PRIMARY KEY, name text)`)
	cfg := e.writeConfig("telephone1")
	writeFile(t, filepath.Join(filepath.Dir(cfg), "mappings", "people.yaml"), contactsMapping)
	d := e.startDaemonWith(cfg)

	e.exec(`INSERT INTO customers VALUES (1, 'before', NULL, '555-0100', 1, 1)`)
	waitUntil(t, 20*time.Second, func() bool {
		phone, err := e.accountField("1", "telephone1")
		return err == nil && phone == "555-0100"
	})

	e.exec(`ALTER TABLE customers DROP COLUMN phone`)
	e.exec(`INSERT INTO customers VALUES (2, 'after', NULL, 2, 2)`)
	e.exec(`INSERT INTO people VALUES ('ada@example.com', 'Ada')`)

	readyz := func() (int, string) {
		resp, err := http.Get("http://" + d.httpAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitUntil(t, 20*time.Second, func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "public.customers") && strings.Contains(body, "phone")
	})
	// The other table flows while customers is held.
	waitUntil(t, 20*time.Second, func() bool {
		page, err := e.dv.List(t.Context(), "contacts", odataclient.Query{Select: []string{"fullname"}, Filter: "emailaddress1 eq 'ada@example.com'"})
		return err == nil && len(page.Rows) == 1 && strings.Contains(string(page.Rows[0]), `"Ada"`)
	})
	if _, err := e.accountField("2", "name"); err == nil {
		t.Fatal("a change of the paused table reached Dataverse without its dropped column")
	}
	if st := scrape(t, d.httpAddr); st[`dvsync_engine_paused_records{pipeline="app"}`] < 1 {
		t.Errorf("no held record counted: %v", st[`dvsync_engine_paused_records{pipeline="app"}`])
	}
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}
