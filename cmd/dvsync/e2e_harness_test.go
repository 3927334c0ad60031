package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
)

// reverseAppUser is the application user dvsync authenticates as in the
// emulator; the tests edit Dataverse as another user, as people do.
const reverseAppUser = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"

// suppliersSchema is the emulator schema of the end-to-end tests:
// dvsync's application user, and cr1_supplier keyed by cr1_code with
// change tracking on. extraAttrs are more attribute lines of
// cr1_supplier; rest follows the table (more tables, webhooks, event
// hubs).
func suppliersSchema(extraAttrs, rest string) string {
	return `version: 1
applications:
  - {client_id: dvsync-app, client_secret: app-secret, user_id: ` + reverseAppUser + `}
tables:
  - logical_name: cr1_supplier
    entity_set: cr1_suppliers
    primary_id: cr1_supplierid
    primary_name: cr1_name
    change_tracking: true
    attributes:
      - {name: cr1_code, type: string, max_length: 20}
      - {name: cr1_name, type: string, max_length: 100}
      - {name: cr1_rating, type: integer}
` + extraAttrs + `    keys:
      - {name: cr1_code_key, attributes: [cr1_code]}
` + rest + "\n"
}

// suppliersDatabase creates a database of its own in the test cluster
// with public.suppliers of the given columns, and returns its DSN and a
// connection closed when the test ends.
func suppliersDatabase(t *testing.T, columns string) (string, *pgx.Conn) {
	t.Helper()
	dsn := testenv.NewDatabase(t, testenv.StartPostgres(t))
	db, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	if _, err := db.Exec(context.Background(), "CREATE TABLE public.suppliers ("+columns+")"); err != nil {
		t.Fatal(err)
	}
	return dsn, db
}

// personClient is a client of the emulator acting as a person, with the
// static token, not as dvsync's application user.
func personClient(t *testing.T, em *testenv.Emulator) *odataclient.Client {
	t.Helper()
	dv, err := odataclient.New(odataclient.Options{BaseURL: em.URL, Tokens: odataclient.StaticToken(em.Token)})
	if err != nil {
		t.Fatal(err)
	}
	return dv
}

// supplierHooks registers a webhook posting cr1_supplier's creates,
// updates and deletes to url, with the key dvsync's configs expect.
func supplierHooks(url string) string {
	return `webhooks:
  - name: dvsync
    url: ` + url + `
    auth: {type: webhookkey, value: hook-key}
    steps:
      - {message: Create, table: cr1_supplier, images: [{type: post}]}
      - {message: Update, table: cr1_supplier, images: [{type: both}]}
      - {message: Delete, table: cr1_supplier, images: [{type: pre}]}`
}

// daemonConfig is a dvsync config of the end-to-end tests: HTTP on
// $DVSYNC_HTTP, the state store in dir, Dataverse at dataverseURL as
// the emulator's dvsync-app, then changes (lines under
// dataverse.changes) and connections (lines under connections:), and
// a 5 ms batch wait.
func daemonConfig(dir, dataverseURL, changes, connections string) string {
	return `version: 1
http: {listen: "${DVSYNC_HTTP}"}
state: {path: ` + filepath.Join(dir, "state.db") + `}
dataverse:
  url: ` + dataverseURL + `
  auth:
    client_id: dvsync-app
    client_secret: app-secret
    token_url: ` + dataverseURL + `/tenant/oauth2/v2.0/token
  changes:
` + changes + `
connections:
` + connections + `
engine: {batch_wait: 5ms}
`
}

// startDaemon starts 'dvsync run -c config' as this test binary, logging
// next to the config, and kills it when the test ends if it still runs.
func startDaemon(t *testing.T, config string, env []string) *daemonProc {
	t.Helper()
	logPath := filepath.Join(filepath.Dir(config), "dvsync.log")
	p, err := spawnDaemonArgs(context.Background(), os.Args[0], []string{"run", "-c", config}, logPath, append(env, runAsDvsync+"=1"))
	if err != nil {
		t.Fatalf("%v; log:\n%s", err, tail(logPath, 60))
	}
	t.Cleanup(p.kill)
	return p
}
