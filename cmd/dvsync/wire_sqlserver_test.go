package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/dvsync/dvsync/source/sqlserver"
)

// TestSQLServerConfigFromConnection checks what the source and the
// backfill of a SQL Server connection are given: the tables and keys of
// its mappings, and the connection's mode, poll intervals and context.
func TestSQLServerConfigFromConnection(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mappings", "lines.yaml"), `version: 1
source: {connection: erp, table: Sales.Order Lines, key: [order_id, line]}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: order_id, target: accountnumber, type: string}
`)
	writeFile(t, filepath.Join(dir, "dvsync.yaml"), `version: 1
dataverse: {url: "https://contoso.crm.dynamics.com", auth: {token: "t"}}
connections:
  erp:
    type: sqlserver
    dsn: "sqlserver://dvsync:secret@db:1433?database=erp"
    mode: cdc
    poll_interval: 50ms
    max_poll_interval: 2s
    context: erp-sync
mappings: [mappings/*.yaml]
`)
	cfg, set, err := loadAll(filepath.Join(dir, "dvsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := sqlserverConfig(set, "erp", cfg.Connections["erp"])
	want := sqlserver.Config{
		DSN:             "sqlserver://dvsync:secret@db:1433?database=erp",
		Mode:            sqlserver.ModeCDC,
		Tables:          []string{"Sales.Order Lines"},
		Keys:            map[string][]string{"Sales.Order Lines": {"order_id", "line"}},
		Context:         "erp-sync",
		PollInterval:    50 * time.Millisecond,
		MaxPollInterval: 2 * time.Second,
	}
	if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", want) {
		t.Errorf("config\n got %#v\nwant %#v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("the config is refused: %v", err)
	}
}
