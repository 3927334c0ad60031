package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTableWithoutPrimaryKey syncs a table that has no primary key, only
// REPLICA IDENTITY FULL and a unique index, through a mapping that names
// its key (source.key): the backfill pages by that key, and the daemon
// streams inserts, updates and deletes keyed by it, so Dataverse ends
// equal to PostgreSQL.
func TestTableWithoutPrimaryKey(t *testing.T) {
	e := newE2E(t)
	e.exec(`ALTER TABLE customers DROP CONSTRAINT customers_pkey`)
	e.exec(`ALTER TABLE customers REPLICA IDENTITY FULL`)
	e.exec(`CREATE UNIQUE INDEX customers_id ON customers (id)`)
	e.preload(600)

	example, err := os.ReadFile(filepath.Join(examples, "mappings", "customers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	keyed := strings.Replace(string(example), "  table: public.customers\n", "  table: public.customers\n  key: [id]\n", 1)
	if keyed == string(example) {
		t.Fatal("the example mapping no longer names public.customers as expected")
	}
	mappingPath := filepath.Join(e.dir, "customers.yaml")
	if err := os.WriteFile(mappingPath, []byte(keyed), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(e.dir, "dvsync.yaml")
	if err := os.WriteFile(cfg, []byte(`version: 1
log: {level: info, format: text}
http: {listen: "${DVSYNC_HTTP:-127.0.0.1:0}"}
state: {path: "${DVSYNC_STATE}"}
dataverse: {url: "${DATAVERSE_URL}", auth: {token: "${DATAVERSE_TOKEN}"}}
connections: {app: {type: postgres, dsn: "${PG_DSN}"}}
mappings: ["`+mappingPath+`"]
`), 0o600); err != nil {
		t.Fatal(err)
	}

	_, done := e.startBackfill(cfg, "--page-size", "100")
	e.waitBackfill(done, 120*time.Second)
	e.waitInSync(60 * time.Second)

	d := e.startDaemon2(cfg)
	e.exec(`INSERT INTO customers VALUES (1, 'one', 'one@example.com', NULL, 1.50, 1), (2, 'two', NULL, NULL, NULL, NULL)`)
	e.exec(`UPDATE customers SET name = 'renamed', employees = 7 WHERE id = 100001`)
	e.exec(`UPDATE customers SET phone = '555' WHERE id = 1`)
	e.exec(`DELETE FROM customers WHERE id IN (2, 100002)`)
	e.waitInSync(60 * time.Second)
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}
