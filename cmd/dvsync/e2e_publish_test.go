package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/internal/testenv"
)

// TestPublishThenApplyInAGroup runs the scale-out topology: one dvsync
// publishes PostgreSQL's changes to a topic as Debezium events, two
// appliers in one consumer group apply the topic to Dataverse, and
// Dataverse ends up equal to the table.
func TestPublishThenApplyInAGroup(t *testing.T) {
	e := newE2E(t)
	topic := "erp.public.customers"
	k := testenv.StartKafka(t, topic)
	brokers := `["` + strings.Join(k.Addrs, `", "`) + `"]`
	dir := e.dir

	publisher := filepath.Join(dir, "publisher", "dvsync.yaml")
	writeFile(t, publisher, `version: 1
http: {listen: "${DVSYNC_HTTP}"}
state: {path: `+filepath.Join(dir, "publisher.db")+`}
dataverse: {url: "${DATAVERSE_URL}", auth: {token: "${DATAVERSE_TOKEN}"}}
connections:
  app: {type: postgres, dsn: "${PG_DSN}", heartbeat_interval: 1s}
  bus: {type: kafka, brokers: `+brokers+`}
publish:
  - {from: app, to: bus, tables: [public.customers], topic_prefix: erp}
mappings: []
engine: {batch_wait: 5ms}
`)
	applier := filepath.Join(dir, "applier", "dvsync.yaml")
	writeFile(t, applier, `version: 1
http: {listen: "${DVSYNC_HTTP}"}
state: {path: "${APPLIER_STATE}"}
dataverse: {url: "${DATAVERSE_URL}", auth: {token: "${DATAVERSE_TOKEN}"}}
connections:
  bus: {type: kafka, brokers: `+brokers+`, group_id: appliers}
engine: {batch_wait: 5ms}
`)
	writeFile(t, filepath.Join(dir, "applier", "mappings", "customers.yaml"), `version: 1
source: {connection: bus, topic: `+topic+`, format: debezium}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id,           target: accountnumber,     type: string}
  - {source: name,         target: name}
  - {source: email,        target: emailaddress1}
  - {source: phone,        target: telephone1}
  - {source: credit_limit, target: creditlimit,       type: money}
  - {source: employees,    target: numberofemployees, type: integer}
`)
	start := func(config, state, log string) *daemonProc {
		t.Helper()
		env := append(append([]string{}, e.env...), "APPLIER_STATE="+filepath.Join(dir, state))
		p, err := spawnDaemonArgs(context.Background(), os.Args[0], []string{"run", "-c", config}, filepath.Join(dir, log), env)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.kill)
		return p
	}
	pub := start(publisher, "unused.db", "publisher.log")
	a1 := start(applier, "applier1.db", "applier1.log")
	a2 := start(applier, "applier2.db", "applier2.log")

	e.exec(`INSERT INTO customers SELECT g, 'c' || g, 'c' || g || '@example.com', NULL, g * 10.5, g FROM generate_series(1, 300) g`)
	e.exec(`UPDATE customers SET name = 'renamed ' || id, phone = '555' WHERE id % 3 = 0`)
	e.exec(`DELETE FROM customers WHERE id % 7 = 0`)
	e.waitInSync(60 * time.Second)

	for _, d := range []*daemonProc{a1, a2, pub} {
		if err := d.stop(20 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, log := range []string{"applier1.log", "applier2.log"} {
		if b, _ := os.ReadFile(filepath.Join(dir, log)); strings.Contains(string(b), "dead-lettered") {
			t.Errorf("%s: records were dead-lettered:\n%s", log, b)
		}
	}
}
