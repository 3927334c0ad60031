package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
)

// relatedSchema is the emulator's side of three related tables: accounts,
// orders that look their account up, and order lines, keyed by order
// number and line number, that look their order up.
const relatedSchema = `
version: 1
tables:
  - logical_name: account
    entity_set: accounts
    primary_id: accountid
    primary_name: name
    attributes:
      - {name: name, type: string, max_length: 160}
      - {name: accountnumber, type: string, max_length: 20}
      - {name: customertypecode, type: picklist, options: [1, 2, 3]}
      - {name: creditlimit, type: money}
    keys:
      - {name: accountnumber_key, attributes: [accountnumber]}
  - logical_name: cr1_order
    entity_set: cr1_orders
    primary_id: cr1_orderid
    primary_name: cr1_number
    attributes:
      - {name: cr1_number, type: string, max_length: 20}
      - {name: cr1_customer, type: lookup, targets: [account]}
      - {name: cr1_status, type: picklist, options: [100000000, 100000001, 100000002]}
      - {name: cr1_total, type: money}
    keys:
      - {name: cr1_number_key, attributes: [cr1_number]}
  - logical_name: cr1_orderline
    entity_set: cr1_orderlines
    primary_id: cr1_orderlineid
    attributes:
      - {name: cr1_ordernumber, type: string, max_length: 20}
      - {name: cr1_lineno, type: integer}
      - {name: cr1_order, type: lookup, targets: [cr1_order]}
      - {name: cr1_product, type: string, max_length: 100}
      - {name: cr1_amount, type: money}
    keys:
      - {name: cr1_line_key, attributes: [cr1_ordernumber, cr1_lineno]}
`

// relatedMappings are the mapping files, by name: a choice and money on
// customers, which are soft-deleted; a lookup, a choice, money and a filter
// on orders; a composite key, a lookup and an expression on order lines.
var relatedMappings = map[string]string{
	"customers.yaml": `
version: 1
source: {connection: app, table: public.customers}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id, target: accountnumber, type: string}
  - {source: name, target: name}
  - source: tier
    target: customertypecode
    choices: {values: {gold: 1, silver: 2, bronze: 3}}
  - {source: credit, target: creditlimit, type: money}
deletes: soft
soft:
  set: {statecode: 1, statuscode: 2}
`,
	"orders.yaml": `
version: 1
source: {connection: app, table: public.orders}
dataverse: {table: cr1_order, entity_set: cr1_orders}
key: {alternate_key: [cr1_number]}
filter: 'is_test == false'
columns:
  - {source: id, target: cr1_number, type: string}
  - source: customer_id
    target: cr1_customer
    type: string
    lookup: {table: account, key: accountnumber}
  - source: status
    target: cr1_status
    choices: {values: {open: 100000000, shipped: 100000001, cancelled: 100000002}}
  - {source: total, target: cr1_total, type: money}
`,
	"order_lines.yaml": `
version: 1
source: {connection: app, table: public.order_lines}
dataverse: {table: cr1_orderline, entity_set: cr1_orderlines}
key: {alternate_key: [cr1_ordernumber, cr1_lineno]}
columns:
  - {source: order_id, target: cr1_ordernumber, type: string}
  - {source: line_no, target: cr1_lineno, type: integer}
  - source: order_id
    target: cr1_order
    type: string
    lookup: {table: cr1_order, key: cr1_number}
  - {source: product, target: cr1_product}
  - {expr: 'qty * unit_price', target: cr1_amount, type: money}
`,
}

// TestEndToEndRelatedTables writes children before their parents in one
// transaction — order lines, then orders, then customers — and expects
// every row, every lookup, choice, money amount and computed column in
// Dataverse: the children's writes wait, parked, until their parents
// exist. Then it moves an order to another customer, filters an order out
// and soft-deletes a customer.
func TestEndToEndRelatedTables(t *testing.T) {
	e := newRelatedE2E(t)
	d := e.startDaemon()

	// Which of a transaction's rows reaches Dataverse first is a race
	// between workers; holding back the accounts write makes the orders
	// that refer to those accounts arrive first, every time.
	e.slowDown("accounts", time.Second)
	e.exec(`BEGIN;
	INSERT INTO order_lines VALUES (10, 1, 'widget', 2, 10.25), (10, 2, 'gadget', 1, 99.99),
	                               (11, 1, 'widget', 4, 10.25);
	INSERT INTO orders VALUES (10, 1, 'open', 120.49, false), (11, 2, 'shipped', 41.00, false),
	                          (12, 1, 'open', 5.00, true);
	INSERT INTO customers VALUES (1, 'Contoso', 'gold', 250000.50), (2, 'Fabrikam', 'bronze', NULL);
	COMMIT`)
	e.waitFor(60*time.Second, relatedState{
		accounts: map[string]string{
			"1": "Contoso|1|250000.5|0",
			"2": "Fabrikam|3|null|0",
		},
		orders: map[string]string{
			"10": "customer=1|100000000|120.49",
			"11": "customer=2|100000001|41",
		},
		lines: map[string]string{
			"10/1": "order=10|widget|20.5",
			"10/2": "order=10|gadget|99.99",
			"11/1": "order=11|widget|41",
		},
	})

	// Order 11 moves to customer 1, order 10 becomes a test order (out of
	// the filter: deleted in Dataverse), and customer 2 goes (soft).
	e.exec(`BEGIN;
	UPDATE orders SET customer_id = 1, status = 'cancelled' WHERE id = 11;
	DELETE FROM order_lines WHERE order_id = 10;
	UPDATE orders SET is_test = true WHERE id = 10;
	DELETE FROM customers WHERE id = 2;
	COMMIT`)
	e.waitFor(60*time.Second, relatedState{
		accounts: map[string]string{
			"1": "Contoso|1|250000.5|0",
			"2": "Fabrikam|3|null|1",
		},
		orders: map[string]string{
			"11": "customer=1|100000002|41",
		},
		lines: map[string]string{
			"11/1": "order=11|widget|41",
		},
	})

	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	log, err := os.ReadFile(filepath.Join(e.dir, "dvsync.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "writes deferred") {
		t.Errorf("no write was deferred: the test did not write a child before its parent; log:\n%s", log)
	}
	if strings.Contains(string(log), "dead-lettered") {
		t.Errorf("records were dead-lettered; log:\n%s", log)
	}
}

// relatedE2E is e2e for the related tables, with its own config folder.
type relatedE2E struct {
	*e2e
	config string
	em     *testenv.Emulator
}

// slowDown makes the emulator hold the next request whose URL contains
// match for latency before answering it.
func (e *relatedE2E) slowDown(match string, latency time.Duration) {
	e.t.Helper()
	body := fmt.Sprintf(`{"latency_ms": %d, "count": 1, "match": %q}`, latency.Milliseconds(), match)
	req, err := http.NewRequest(http.MethodPut, e.em.URL+"/_emulator/faults", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.em.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		e.t.Fatalf("PUT /_emulator/faults: %s", resp.Status)
	}
}

func newRelatedE2E(t *testing.T) *relatedE2E {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.NewDatabase(t, testenv.StartPostgres(t))
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	// The foreign keys are checked at commit, so one transaction may
	// insert children before their parents, as applications do.
	if _, err := db.Exec(ctx, `
	CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL, tier text, credit numeric(12,2));
	CREATE TABLE public.orders (
		id bigint PRIMARY KEY,
		customer_id bigint NOT NULL REFERENCES customers DEFERRABLE INITIALLY DEFERRED,
		status text NOT NULL, total numeric(12,2), is_test boolean NOT NULL);
	CREATE TABLE public.order_lines (
		order_id bigint REFERENCES orders DEFERRABLE INITIALLY DEFERRED,
		line_no int, product text, qty int, unit_price numeric(12,2),
		PRIMARY KEY (order_id, line_no));`); err != nil {
		t.Fatal(err)
	}
	em := testenv.StartEmulator(t, relatedSchema)
	dv := personClient(t, em)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "mappings"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range relatedMappings {
		if err := os.WriteFile(filepath.Join(dir, "mappings", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := filepath.Join(dir, "dvsync.yaml")
	if err := os.WriteFile(config, []byte(`version: 1
log:
  level: info
  format: text
http:
  listen: ${DVSYNC_HTTP}
state:
  path: ${DVSYNC_STATE}
dataverse:
  url: ${DATAVERSE_URL}
  auth:
    token: ${DATAVERSE_TOKEN}
connections:
  app:
    type: postgres
    dsn: ${PG_DSN}
mappings:
  - mappings/*.yaml
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return &relatedE2E{config: config, em: em, e2e: &e2e{t: t, db: db, dv: dv, dir: dir, env: []string{
		runAsDvsync + "=1",
		"PG_DSN=" + dsn,
		"DATAVERSE_URL=" + em.URL,
		"DATAVERSE_TOKEN=" + em.Token,
		"DVSYNC_STATE=" + filepath.Join(dir, "state.db"),
	}}}
}

func (e *relatedE2E) startDaemon() *daemonProc {
	e.t.Helper()
	p, err := spawnDaemon(context.Background(), os.Args[0], e.config, filepath.Join(e.dir, "dvsync.log"), e.env)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(p.kill)
	return p
}

// relatedState is what Dataverse should hold, each row rendered as text
// by its source key; lookups are rendered as the source key of the row
// they point at.
type relatedState struct {
	accounts, orders, lines map[string]string
}

// waitFor polls until Dataverse holds exactly want, and fails with the
// differences otherwise.
func (e *relatedE2E) waitFor(timeout time.Duration, want relatedState) {
	e.t.Helper()
	var diff []string
	ok := poll(timeout, func() bool {
		got, err := e.dataverseState()
		if err != nil {
			diff = []string{err.Error()}
			return false
		}
		diff = nil
		for _, table := range []struct {
			name      string
			want, got map[string]string
		}{{"account", want.accounts, got.accounts}, {"order", want.orders, got.orders}, {"line", want.lines, got.lines}} {
			for _, d := range diffRows(table.want, table.got) {
				diff = append(diff, table.name+" "+d)
			}
		}
		return len(diff) == 0
	})
	if !ok {
		e.t.Fatalf("Dataverse does not hold the expected rows after %s; differences:\n%s\ndvsync log ends with:\n%s",
			timeout, strings.Join(diff, "\n"), tail(filepath.Join(e.dir, "dvsync.log"), 40))
	}
}

// dataverseState reads the three tables and renders them as relatedState
// does, resolving each lookup's id to the source key of its target.
func (e *relatedE2E) dataverseState() (relatedState, error) {
	accounts, err := e.readAll("accounts", "accountid", "accountnumber", "name", "customertypecode", "creditlimit", "statecode")
	if err != nil {
		return relatedState{}, err
	}
	orders, err := e.readAll("cr1_orders", "cr1_orderid", "cr1_number", "_cr1_customer_value", "cr1_status", "cr1_total")
	if err != nil {
		return relatedState{}, err
	}
	lines, err := e.readAll("cr1_orderlines", "cr1_orderlineid", "cr1_ordernumber", "cr1_lineno", "_cr1_order_value", "cr1_product", "cr1_amount")
	if err != nil {
		return relatedState{}, err
	}
	accountNumber := map[string]string{}
	for _, a := range accounts {
		accountNumber[text(a["accountid"])] = text(a["accountnumber"])
	}
	orderNumber := map[string]string{}
	for _, o := range orders {
		orderNumber[text(o["cr1_orderid"])] = text(o["cr1_number"])
	}
	var s relatedState
	s.accounts = map[string]string{}
	for _, a := range accounts {
		s.accounts[text(a["accountnumber"])] = strings.Join([]string{
			text(a["name"]), text(a["customertypecode"]), text(a["creditlimit"]), text(a["statecode"])}, "|")
	}
	s.orders = map[string]string{}
	for _, o := range orders {
		s.orders[text(o["cr1_number"])] = strings.Join([]string{
			"customer=" + lookupKey(accountNumber, o["_cr1_customer_value"]), text(o["cr1_status"]), text(o["cr1_total"])}, "|")
	}
	s.lines = map[string]string{}
	for _, l := range lines {
		s.lines[text(l["cr1_ordernumber"])+"/"+text(l["cr1_lineno"])] = strings.Join([]string{
			"order=" + lookupKey(orderNumber, l["_cr1_order_value"]), text(l["cr1_product"]), text(l["cr1_amount"])}, "|")
	}
	return s, nil
}

// readAll returns every row of an entity set with the given attributes,
// following @odata.nextLink; a duplicate primary id is an error.
func (e *relatedE2E) readAll(set, idAttr string, attrs ...string) ([]map[string]any, error) {
	ctx := context.Background()
	page, err := e.dv.List(ctx, set, odataclient.Query{Select: append([]string{idAttr}, attrs...), MaxPageSize: 500})
	var out []map[string]any
	seen := map[string]bool{}
	for {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", set, err)
		}
		for _, raw := range page.Rows {
			var r map[string]any
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, fmt.Errorf("%s: %w", set, err)
			}
			id := text(r[idAttr])
			if seen[id] {
				return nil, fmt.Errorf("%s: row %s listed twice", set, id)
			}
			seen[id] = true
			out = append(out, r)
		}
		if page.NextLink == "" {
			return out, nil
		}
		page, err = e.dv.NextPage(ctx, page.NextLink)
	}
}

// text renders a JSON value the way relatedState spells values.
func text(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// lookupKey renders a lookup's id as the source key of its target, or
// says that it points nowhere known.
func lookupKey(keys map[string]string, id any) string {
	if id == nil {
		return "null"
	}
	if k, ok := keys[text(id)]; ok {
		return k
	}
	return "unknown " + text(id)
}
