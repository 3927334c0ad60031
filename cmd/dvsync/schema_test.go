package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	jsv "github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite config.schema.json from the config structs")

// TestConfigSchemaIsCurrent regenerates the schema from package config's
// structs and comments and compares it with the committed one.
func TestConfigSchemaIsCurrent(t *testing.T) {
	// The comment reader names packages by their folder under the module.
	t.Chdir("../..")
	got, err := configSchema("config")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("cmd/dvsync/config.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(got, configSchemaJSON) {
		t.Fatal("config.schema.json is out of date with package config: run go test ./cmd/dvsync -run TestConfigSchemaIsCurrent -update")
	}
	out, _, err := runCLI(t, "config", "schema")
	if err != nil || out != string(configSchemaJSON) {
		t.Errorf("dvsync config schema: %v", err)
	}
}

// TestConfigSchemaValidates checks the schema against config files: the
// example passes, and typical mistakes fail where an editor should flag
// them.
func TestConfigSchemaValidates(t *testing.T) {
	doc, err := jsv.UnmarshalJSON(bytes.NewReader(configSchemaJSON))
	if err != nil {
		t.Fatal(err)
	}
	c := jsv.NewCompiler()
	if err := c.AddResource(configSchemaID, doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile(configSchemaID)
	if err != nil {
		t.Fatal(err)
	}
	validate := func(y string) error {
		t.Helper()
		var v any
		if err := yaml.Unmarshal([]byte(y), &v); err != nil {
			t.Fatal(err)
		}
		// Through JSON, so that numbers and maps have the types the
		// validator expects.
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsv.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return schema.Validate(inst)
	}

	example, err := os.ReadFile(filepath.Join(examples, "dvsync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(string(example)); err != nil {
		t.Errorf("the example config fails the schema: %v", err)
	}
	if err := validate("version: 1\nengine: {batch_wait: 20ms, shutdown_timeout: 1m30s, workers: 4}\n"); err != nil {
		t.Errorf("durations: %v", err)
	}
	for name, bad := range map[string]string{
		"unknown field":      "version: 1\nlog: {levl: debug}\n",
		"misspelt top level": "version: 1\nconnection: {}\n",
		"wrong type":         "version: 1\nengine: {workers: many}\n",
		"bad duration":       "version: 1\nengine: {batch_wait: soon}\n",
		"no version":         "log: {level: info}\n",
		"connection field":   "version: 1\nconnections: {app: {type: postgres, slots: x}}\n",
	} {
		if err := validate(bad); err == nil {
			t.Errorf("%s: the schema accepts\n%s", name, bad)
		}
	}
	if !strings.Contains(string(configSchemaJSON), "Default: 8") {
		t.Error("the schema lacks the field descriptions")
	}
}
