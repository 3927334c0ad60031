package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/mapping"
)

const scaleOutExample = "../../deploy/examples/kafka-scale-out"

// TestKafkaScaleOutExample checks that dvsync validate accepts the
// applier's config, and that the publisher writes the topic the applier
// reads in the encoding the applier's mapping expects.
func TestKafkaScaleOutExample(t *testing.T) {
	for k, v := range map[string]string{
		"KAFKA_BROKERS": "127.0.0.1:1", "KAFKA_PASSWORD": "pw",
		"DATAVERSE_URL": "https://contoso.crm.dynamics.com", "DATAVERSE_TENANT": "contoso.onmicrosoft.com",
		"DATAVERSE_CLIENT_ID": "00000000-0000-0000-0000-000000000001", "DATAVERSE_CLIENT_SECRET": "secret",
	} {
		t.Setenv(k, v)
	}
	t.Setenv("PG_DSN", "postgres://dvsync:pw@127.0.0.1:1/app")
	t.Setenv("DATAVERSE_TOKEN", "token")
	publisherYAML := filepath.Join(scaleOutExample, "publisher.yaml")
	if out, errOut, err := runCLI(t, "validate", "-c", publisherYAML); err != nil || !strings.Contains(out, "valid") {
		t.Fatalf("dvsync validate %s: %v\n%s%s", publisherYAML, err, out, errOut)
	}
	pcfg, _, err := loadAll(publisherYAML)
	if err != nil {
		t.Fatal(err)
	}
	applier := filepath.Join(scaleOutExample, "applier.yaml")
	out, errOut, err := runCLI(t, "validate", "-c", applier)
	if err != nil || !strings.Contains(out, "valid") {
		t.Fatalf("dvsync validate %s: %v\n%s%s", applier, err, out, errOut)
	}
	cfg, set, err := loadAll(applier)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range set.Mappings() {
		if pub := pcfg.Publish[0]; m.Source.Topic != pub.Topic("public.customers") || m.Source.Format != mapping.FormatDebezium {
			t.Errorf("%s reads %s as %s; publisher.yaml writes %s as debezium", m.File, m.Source.Topic, m.Source.Format, pub.Topic("public.customers"))
		}
	}
	if c := cfg.Connections["events"]; c.GroupID == "" || c.DeadLetterTopic == "" {
		t.Errorf("the applier's connection has no group or no dead-letter topic: %+v", c)
	}

	raw, err := os.ReadFile(filepath.Join(scaleOutExample, "publisher.json"))
	if err != nil {
		t.Fatal(err)
	}
	var publisher struct{ Config map[string]string }
	if err := json.Unmarshal(raw, &publisher); err != nil {
		t.Fatalf("publisher.json: %v", err)
	}
	pc := publisher.Config
	topics := map[string]bool{}
	for _, table := range strings.Split(pc["table.include.list"], ",") {
		topics[pc["topic.prefix"]+"."+strings.TrimSpace(table)] = true
	}
	for _, m := range set.Mappings() {
		if !topics[m.Source.Topic] || m.Source.Format != mapping.FormatDebezium {
			t.Errorf("%s reads topic %s as %s; the publisher writes %v as debezium", m.File, m.Source.Topic, m.Source.Format, topics)
		}
	}
	for k, want := range map[string]string{
		// Exact decimals that a schemaless event can carry.
		"decimal.handling.mode": "string",
		// Keys and values as plain JSON, which dvsync decodes without
		// a schema registry.
		"key.converter":                  "org.apache.kafka.connect.json.JsonConverter",
		"value.converter":                "org.apache.kafka.connect.json.JsonConverter",
		"key.converter.schemas.enable":   "false",
		"value.converter.schemas.enable": "false",
	} {
		if pc[k] != want {
			t.Errorf("publisher.json: %s = %q, want %q", k, pc[k], want)
		}
	}
}
