package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err = cmd.Execute()
	return out.String(), errb.String(), err
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

const testConfig = `version: 1
dataverse:
  url: http://127.0.0.1:1
  auth:
    token: secret-token-value
connections:
  app:
    type: postgres
    dsn: postgres://u:secret-password@127.0.0.1:1/db
mappings: ["mappings/*.yaml"]
state:
  path: state.db
`

func TestValidateExamples(t *testing.T) {
	t.Setenv("PG_DSN", "postgres://u:p@127.0.0.1:1/db")
	t.Setenv("DATAVERSE_URL", "http://127.0.0.1:1")
	t.Setenv("DATAVERSE_TOKEN", "t")
	out, errOut, err := runCLI(t, "validate", "-c", filepath.Join(examples, "dvsync.yaml"))
	if err != nil {
		t.Fatalf("validate the shipped example: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "valid (1 mapped tables on 1 connections)") {
		t.Errorf("stdout = %q", out)
	}
}

func TestValidateReportsFileLineAndField(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dvsync.yaml"), testConfig)
	writeFile(t, filepath.Join(dir, "mappings", "customers.yaml"), `version: 1
source:
  connection: app
  table: public.customers
dataverse:
  table: account
key:
  alternate_key: [accountnumber]
columns:
  - {source: id, target: accountnumber, type: string}
  - {source: name, tagret: name}
`)
	_, errOut, err := runCLI(t, "validate", "-c", filepath.Join(dir, "dvsync.yaml"))
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("validate of a bad mapping: err = %v, want exit status 1", err)
	}
	if !strings.Contains(errOut, "customers.yaml:11") || !strings.Contains(errOut, "tagret") {
		t.Errorf("stderr does not name customers.yaml:11 and the field tagret:\n%s", errOut)
	}
	for _, secret := range []string{"secret-token-value", "secret-password"} {
		if strings.Contains(errOut, secret) {
			t.Errorf("stderr reveals a secret:\n%s", errOut)
		}
	}
}

func TestValidateUnknownConnection(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dvsync.yaml"), testConfig)
	writeFile(t, filepath.Join(dir, "mappings", "m.yaml"), `version: 1
source: {connection: warehouse, table: public.t}
dataverse: {table: account}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id, target: accountnumber}
`)
	_, errOut, err := runCLI(t, "validate", "-c", filepath.Join(dir, "dvsync.yaml"))
	if err == nil || !strings.Contains(errOut, `"warehouse"`) {
		t.Fatalf("err = %v, stderr:\n%s", err, errOut)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := runCLI(t, "version")
	if err != nil || !strings.HasPrefix(out, "dvsync ") {
		t.Fatalf("version: %q, %v", out, err)
	}
}
