package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// TestTruncateDeletesWhenAsked truncates a table whose mapping says
// truncate: delete, in one transaction with an insert before and after:
// Dataverse ends with only the row inserted after the TRUNCATE.
func TestTruncateDeletesWhenAsked(t *testing.T) {
	e := newE2E(t)
	cfg := e.writeConfig("telephone1")
	writeFile(t, filepath.Join(filepath.Dir(cfg), "mappings", "customers.yaml"), fmt.Sprintf(customersMapping, "telephone1")+"truncate: delete\n")
	d := e.startDaemonWith(cfg)
	e.exec(`INSERT INTO customers SELECT g, 'c' || g, NULL, NULL, g, g FROM generate_series(1, 50) g`)
	e.waitInSync(30 * time.Second)
	e.exec(`BEGIN;
	INSERT INTO customers VALUES (51, 'doomed', NULL, NULL, 1, 1);
	TRUNCATE customers;
	INSERT INTO customers VALUES (99, 'survivor', NULL, NULL, 1, 1);
	COMMIT`)
	e.waitInSync(30 * time.Second)
	if got := e.postgresRows(); len(got) != 1 {
		t.Fatalf("the table holds %v", got)
	}
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}
