package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/internal/yamlfile"
)

const docPath = "../docs/config.md"

// docEnv stands in for the environment of the documented examples.
func docEnv(name string) (string, bool) {
	if strings.HasSuffix(name, "_URL") {
		return "https://contoso.crm.dynamics.com", true
	}
	return "value-of-" + name, true
}

// Every example in the reference must be accepted: whole files as they
// are, fragments laid over a minimal valid file.
func TestDocExamplesParse(t *testing.T) {
	page, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := yamlfile.MarkdownBlocks(string(page))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) < 5 {
		t.Fatalf("found only %d yaml blocks in %s", len(blocks), docPath)
	}
	for _, b := range blocks {
		name := docPath + " (block at line " + strconv.Itoa(b.Line) + ")"
		if strings.HasPrefix(b.Text, "version:") {
			if _, err := Parse([]byte(b.Text), docPath, docEnv); err != nil {
				t.Errorf("complete example does not parse:\n%v", yamlfile.InPage(err, docPath, b))
			}
			continue
		}
		c := &Config{}
		c.setDefaults()
		if _, ps := yamlfile.Decode([]byte(minimal), "minimal", docEnv, c); len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		if _, ps := yamlfile.Decode([]byte(b.Text), docPath, docEnv, c); len(ps) > 0 {
			t.Errorf("fragment does not decode:\n%v", yamlfile.InPage(ps.Err(), docPath, b))
			continue
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: fragment is not valid:\n%v", name, err)
		}
	}
}

// Every field the structs accept is in the reference table, and every
// field in the table exists.
func TestDocCoversEveryField(t *testing.T) {
	page, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	fields := yamlfile.FieldPaths(reflect.TypeFor[Config]())
	if len(fields) < 20 {
		t.Fatalf("found only %d fields", len(fields))
	}
	documented := yamlfile.FieldTable(string(page))
	for _, f := range fields {
		if !slices.Contains(documented, f) {
			t.Errorf("field %s is not in the reference tables of %s", f, docPath)
		}
	}
	for _, d := range documented {
		if !slices.Contains(fields, d) && !slices.ContainsFunc(fields, func(f string) bool { return strings.HasPrefix(f, d+".") }) {
			t.Errorf("%s documents %s, which the config does not have", docPath, d)
		}
	}
}

// The demo's files in deploy/examples must load as the demo runs them.
func TestDeployExamples(t *testing.T) {
	t.Setenv("DATAVERSE_URL", "http://127.0.0.1:5580")
	t.Setenv("DATAVERSE_TOKEN", "demo-token")
	t.Setenv("PG_DSN", "postgres://dvsync:pw@127.0.0.1:5432/app")
	for _, name := range []string{"DVSYNC_STATE", "DVSYNC_HTTP"} {
		t.Setenv(name, "") // restores the variable after the test
		os.Unsetenv(name)
	}
	path := filepath.Join("..", "deploy", "examples", "dvsync.yaml")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Path != "./dvsync-state.db" || c.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("defaults from ${...:-...}: state %q, http %q", c.State.Path, c.HTTP.Listen)
	}
	if c.Dataverse.URL != "http://127.0.0.1:5580" || c.Dataverse.Auth.Token.Reveal() != "demo-token" {
		t.Errorf("dataverse = %+v", c.Dataverse)
	}
	if conn := c.Connections["app"]; conn.Type != "postgres" || conn.DSN.Reveal() != "postgres://dvsync:pw@127.0.0.1:5432/app" {
		t.Errorf("connection app = %+v", conn)
	}
	files, err := c.MappingFiles()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join("..", "deploy", "examples", "mappings", "customers.yaml")}
	if !slices.Equal(files, want) {
		t.Errorf("MappingFiles = %q, want %q", files, want)
	}

	t.Setenv("DVSYNC_STATE", "/tmp/demo/state.db")
	t.Setenv("DVSYNC_HTTP", "127.0.0.1:45678")
	if c, err = Load(path); err != nil {
		t.Fatal(err)
	}
	if c.State.Path != "/tmp/demo/state.db" || c.HTTP.Listen != "127.0.0.1:45678" {
		t.Errorf("overrides: state %q, http %q", c.State.Path, c.HTTP.Listen)
	}
}
