package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/internal/freeport"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
)

const suppliersMapping = `version: 1
source: {connection: app, table: public.suppliers}
dataverse: {table: cr1_supplier, entity_set: cr1_suppliers}
direction: %s
key: {alternate_key: [cr1_code]}
columns:
  - {source: code,   target: cr1_code}
  - {source: name,   target: cr1_name}
  - {source: rating, target: cr1_rating, type: integer}
`

// reverseE2E is a PostgreSQL table, an emulator and a dvsync config that
// writes the emulator's changes to the table.
type reverseE2E struct {
	t      *testing.T
	db     *pgx.Conn
	dv     *odataclient.Client // the emulator as a person, not as dvsync
	em     *testenv.Emulator
	config string
	env    []string
	dir    string
}

// newReverseE2E starts the emulator (posting webhooks to hookURL when it
// is not empty) and writes a config with the given changes section and
// mapping direction.
func newReverseE2E(t *testing.T, direction, hookURL, changes string) *reverseE2E {
	t.Helper()
	dsn, db := suppliersDatabase(t, `code text PRIMARY KEY, name text, rating int`)
	hooks := ""
	if hookURL != "" {
		hooks = supplierHooks(hookURL)
	}
	em := testenv.StartEmulator(t, suppliersSchema("", hooks))
	dv := personClient(t, em)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mappings", "suppliers.yaml"), fmt.Sprintf(suppliersMapping, direction))
	config := filepath.Join(dir, "dvsync.yaml")
	writeFile(t, config, daemonConfig(dir, "${DATAVERSE_URL}", changes, `  app:
    type: postgres
    dsn: ${PG_DSN}
    heartbeat_interval: 1s`))
	return &reverseE2E{t: t, db: db, dv: dv, em: em, config: config, dir: dir, env: []string{
		"PG_DSN=" + dsn, "DATAVERSE_URL=" + em.URL,
	}}
}

func (e *reverseE2E) start() *daemonProc {
	e.t.Helper()
	return startDaemon(e.t, e.config, e.env)
}

// suppliers returns the table's rows as "code=name|rating".
func (e *reverseE2E) suppliers() map[string]string {
	e.t.Helper()
	rows, err := e.db.Query(context.Background(), `SELECT code, coalesce(name, 'null'), coalesce(rating::text, 'null') FROM suppliers`)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]string{}
	for rows.Next() {
		var code, name, rating string
		if err := rows.Scan(&code, &name, &rating); err != nil {
			e.t.Fatal(err)
		}
		out[code] = name + "|" + rating
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *reverseE2E) waitTable(timeout time.Duration, want map[string]string) {
	e.t.Helper()
	var got map[string]string
	if !poll(timeout, func() bool {
		got = e.suppliers()
		return fmt.Sprint(got) == fmt.Sprint(want)
	}) {
		log, _ := os.ReadFile(filepath.Join(e.dir, "dvsync.log"))
		e.t.Fatalf("table = %v, want %v; log:\n%s", got, want, log)
	}
}

func (e *reverseE2E) upsert(code, body string) {
	e.t.Helper()
	key := odataclient.Key{Alternate: []odataclient.KeyPart{{Name: "cr1_code", Value: code}}}
	if _, err := e.dv.Upsert(context.Background(), "cr1_suppliers", key, []byte(body), odataclient.WriteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *reverseE2E) delete(code string) {
	e.t.Helper()
	key := odataclient.Key{Alternate: []odataclient.KeyPart{{Name: "cr1_code", Value: code}}}
	if err := e.dv.Delete(context.Background(), "cr1_suppliers", key, odataclient.WriteOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// exercise creates, updates and deletes suppliers in Dataverse and waits
// for the table to follow.
func (e *reverseE2E) exercise() {
	e.upsert("S1", `{"cr1_name":"Acme","cr1_rating":3}`)
	e.upsert("S2", `{"cr1_name":"Globex","cr1_rating":5}`)
	e.waitTable(30*time.Second, map[string]string{"S1": "Acme|3", "S2": "Globex|5"})
	e.upsert("S1", `{"cr1_rating":4}`)
	e.delete("S2")
	e.upsert("S3", `{"cr1_name":"Initech"}`)
	e.waitTable(30*time.Second, map[string]string{"S1": "Acme|4", "S3": "Initech|null"})
}

// TestEndToEndFromDataversePolling delivers Dataverse creates, updates and
// deletes to a PostgreSQL table through change-tracking polling alone, and
// again after a restart.
func TestEndToEndFromDataversePolling(t *testing.T) {
	e := newReverseE2E(t, "from-dataverse", "", "    poll: {min_interval: 100ms, max_interval: 500ms}")
	d := e.start()
	e.exercise()
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Changes made while dvsync is down arrive after it restarts.
	e.upsert("S4", `{"cr1_name":"Umbrella","cr1_rating":1}`)
	e.delete("S3")
	d = e.start()
	e.waitTable(30*time.Second, map[string]string{"S1": "Acme|4", "S4": "Umbrella|1"})
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestEndToEndFromDataverseWebhooks delivers the same changes through the
// webhook receiver, with polling off, so nothing but the posts can carry
// them.
func TestEndToEndFromDataverseWebhooks(t *testing.T) {
	addr := freeLoopbackAddr(t)
	e := newReverseE2E(t, "from-dataverse", "http://"+addr+"/dataverse/webhook",
		"    webhook: {listen: \""+addr+"\", auth: {webhook_key: hook-key}}\n    poll: {enabled: false}")
	d := e.start()
	e.exercise()
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(e.dir, "dvsync.log"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "dead-lettered") {
		t.Errorf("records were dead-lettered; log:\n%s", log)
	}
}

// freeLoopbackAddr returns a loopback address whose port was free a moment
// ago (freeport.Loopback): the emulator's schema names the receiver before dvsync
// starts it.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
