package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateOnline checks the shipped example against a live emulator
// and database, then a config whose mappings are valid on paper but wrong
// against both: every problem names the file, line and field, and says
// what would be valid.
func TestValidateOnline(t *testing.T) {
	e := newE2E(t)
	e.setCLIEnv()
	out, errOut, err := runCLI(t, "validate", "--online", "-c", filepath.Join(examples, "dvsync.yaml"))
	if err != nil || !strings.Contains(out, "valid, checked online") {
		t.Fatalf("validate --online of the example: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}

	e.exec(`CREATE TABLE public.people (id int, mail text, account_no text)`)
	dir := filepath.Join(e.dir, "bad")
	cfg, err := os.ReadFile(filepath.Join(examples, "dvsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "dvsync.yaml"), string(cfg))
	writeFile(t, filepath.Join(dir, "mappings", "people.yaml"), `version: 1
source: {connection: app, table: public.people}
dataverse: {table: contact, entity_set: contact}
key: {alternate_key: [lastname]}
columns:
  - {source: id, target: lastname, type: integer}
  - {source: mial, target: emailadress1}
  - {source: account_no, target: parentcustomerid_account, type: string,
     lookup: {table: account, key: name, entity_set: accounts}}
  - {source: mail, target: firstname, choices: {values: {a: 1, b: 2}}}
  - {source: id, target: createdon, type: datetime}
deletes: soft
soft: {set: {statecod: 1}}
`)
	writeFile(t, filepath.Join(dir, "mappings", "orders.yaml"), `version: 1
source: {connection: app, table: public.custmers}
dataverse: {table: acount}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id, target: accountnumber, type: string}
`)
	_, errOut, err = runCLI(t, "validate", "--online", "-c", filepath.Join(dir, "dvsync.yaml"))
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("validate --online of bad mappings: err = %v, want exit status 1\n%s", err, errOut)
	}
	want := []string{
		`people.yaml:3: dataverse.entity_set: "contact" is not the entity set of contact: Dataverse names it "contacts"`,
		`people.yaml:4: key.alternate_key: contact has no alternate key of exactly [lastname] (its keys: emailaddress1_key [emailaddress1])`,
		`people.yaml:6: columns[0].type: type integer does not fit contact.lastname, a String column (declare type: string)`,
		`people.yaml:7: columns[1].target: contact has no attribute "emailadress1" (did you mean "emailaddress1"?)`,
		`people.yaml:7: columns[1].source: public.people has no column "mial" (did you mean "mail"?)`,
		`people.yaml:9: columns[2].lookup.key: account has no alternate key of name alone, so a child cannot bind to it (its keys: accountnumber_key [accountnumber])`,
		`people.yaml:10: columns[3].choices: contact.firstname is a String column, not a choice: remove choices (declare type: string)`,
		`people.yaml:11: columns[4].target: contact.createdon is read-only in Dataverse: map it with direction: from-dataverse, or drop it`,
		`people.yaml:13: soft.set.statecod: contact has no attribute "statecod" (did you mean "statecode"?)`,
		`people.yaml:2: source.table: public.people has no primary key and no replica identity`,
		`orders.yaml:3: dataverse.table: Dataverse has no table "acount" (did you mean "account"?)`,
		`orders.yaml:2: source.table: connection app has no table public.custmers (did you mean "public.customers"?)`,
	}
	for _, w := range want {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr lacks %q", w)
		}
	}
	if n := strings.Count(errOut, "\n"); n != len(want) {
		t.Errorf("%d problems, want %d", n, len(want))
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", errOut)
	}

	// With the table given a primary key and the mappings fixed, it passes.
	e.exec(`ALTER TABLE public.people ADD PRIMARY KEY (id)`)
	writeFile(t, filepath.Join(dir, "mappings", "people.yaml"), `version: 1
source: {connection: app, table: public.people}
dataverse: {table: contact, entity_set: contacts}
key: {alternate_key: [emailaddress1]}
columns:
  - {source: id, target: lastname, type: string}
  - {source: mail, target: emailaddress1}
  - {source: account_no, target: parentcustomerid_account, type: string,
     lookup: {table: account, key: accountnumber}}
  - {source: mail, target: statuscode, choices: {values: {a: 1, b: 2}}}
deletes: soft
soft: {set: {statecode: 1}}
`)
	writeFile(t, filepath.Join(dir, "mappings", "orders.yaml"), `version: 1
source: {connection: app, table: public.customers}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id, target: accountnumber, type: string}
`)
	out, errOut, err = runCLI(t, "validate", "--online", "-c", filepath.Join(dir, "dvsync.yaml"))
	if err != nil || !strings.Contains(out, "(2 mapped tables on 1 connections)") {
		t.Fatalf("validate --online of fixed mappings: %v\nstdout: %s\nstderr: %s", err, out, errOut)
	}
}

// TestValidateOnlineUnreachable reports a Dataverse and a database that
// cannot be reached as one problem each, naming no secret.
func TestValidateOnlineUnreachable(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dvsync.yaml"), testConfig)
	writeFile(t, filepath.Join(dir, "mappings", "m.yaml"), `version: 1
source: {connection: app, table: public.t}
dataverse: {table: account}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id, target: accountnumber}
`)
	_, errOut, err := runCLI(t, "validate", "--online", "--timeout", "10s", "-c", filepath.Join(dir, "dvsync.yaml"))
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("err = %v, want exit status 1\n%s", err, errOut)
	}
	if n := strings.Count(errOut, "\n"); n != 2 ||
		!strings.Contains(errOut, "dvsync.yaml: dataverse: reading the metadata of account") ||
		!strings.Contains(errOut, "dvsync.yaml: connections.app: cannot connect") {
		t.Errorf("stderr:\n%s", errOut)
	}
	for _, secret := range []string{"secret-token-value", "secret-password"} {
		if strings.Contains(errOut, secret) {
			t.Errorf("stderr reveals a secret:\n%s", errOut)
		}
	}
}

// A table without a primary key needs REPLICA IDENTITY FULL and source.key;
// validate --online says which is missing.
func TestValidateOnlineSourceKey(t *testing.T) {
	e := newE2E(t)
	e.setCLIEnv()
	e.exec(`CREATE TABLE public.events (code text NOT NULL, name text)`)
	e.exec(`ALTER TABLE public.events REPLICA IDENTITY FULL`)
	cfg, err := os.ReadFile(filepath.Join(examples, "dvsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(source string) string {
		t.Helper()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "dvsync.yaml"), string(cfg))
		writeFile(t, filepath.Join(dir, "mappings", "events.yaml"), `version: 1
source: `+source+`
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: code, target: accountnumber}
  - {source: name, target: name}
`)
		_, errOut, _ := runCLI(t, "validate", "--online", "-c", filepath.Join(dir, "dvsync.yaml"))
		return errOut
	}
	if out := check(`{connection: app, table: public.events}`); !strings.Contains(out, "events.yaml:2: source.key: public.events has REPLICA IDENTITY FULL and no primary key: name the columns") {
		t.Errorf("without source.key:\n%s", out)
	}
	if out := check(`{connection: app, table: public.events, key: [cod]}`); !strings.Contains(out, `source.key: public.events has no column "cod"`) {
		t.Errorf("with a wrong source.key:\n%s", out)
	}
	if out := check(`{connection: app, table: public.events, key: [code]}`); out != "" {
		t.Errorf("with source.key: %s", out)
	}
}
