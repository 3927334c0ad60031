package config

import (
	"strings"
	"testing"
	"time"
)

func TestKafkaAndSQLServerConnections(t *testing.T) {
	data := minimal + `  events:
    type: kafka
    brokers: [k1:9093, k2:9093]
    group_id: apply
    tls: {ca_file: /etc/ca.pem}
    sasl: {mechanism: scram-sha-512, username: u, password: "${KAFKA_PASSWORD}"}
  erp:
    type: sqlserver
    dsn: sqlserver://u:p@db:1433?database=erp
    mode: cdc
    poll_interval: 50ms
`
	c, err := Parse([]byte(data), "dvsync.yaml", envOf("KAFKA_PASSWORD", "hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Connections["events"]
	if k.GroupID != "apply" || k.ClientID != "dvsync" || k.StartOffset != "earliest" || k.Compression != "snappy" ||
		!k.TLS.On() || k.SASL.Password.Reveal() != "hunter2" || len(k.Brokers) != 2 {
		t.Errorf("kafka connection = %+v", k)
	}
	s := c.Connections["erp"]
	if s.Mode != "cdc" || s.PollInterval != 50*time.Millisecond || s.MaxPollInterval != 5*time.Second || s.Context != "dvsync" {
		t.Errorf("sqlserver connection = %+v", s)
	}
	if (&TLS{}).On() {
		t.Error("empty TLS is on")
	}
}

func TestConnectionProblems(t *testing.T) {
	data := minimal + `  events:
    type: kafka
    brokers: [nohostport]
    compression: brotli
    dsn: x
    tls: {cert_file: c.pem}
    sasl: {mechanism: oauthbearer, username: u}
  lazy:
    type: kafka
    brokers: [k:9092]
    sasl: {mechanism: plain, username: u}
  erp:
    type: sqlserver
    mode: triggers
    poll_interval: 2s
    max_poll_interval: 1s
    slot: s
`
	_, err := Parse([]byte(data), "dvsync.yaml", envOf())
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	want := []string{
		`connections.erp.dsn: required: the connection string, usually ${SQLSERVER_DSN}`,
		`connections.erp.mode: "triggers" is not one of: change_tracking, cdc`,
		`connections.erp.max_poll_interval: must be at least poll_interval (2s), got 1s`,
		`connections.erp.slot: only for connections of type postgres, not sqlserver`,
		`connections.events.brokers[0]: "nohostport" is not host:port`,
		`connections.events.compression: "brotli" is not one of: none, gzip, snappy, lz4, zstd`,
		`connections.events.tls: cert_file and key_file go together: give both or neither`,
		`connections.events.sasl.mechanism: "oauthbearer" is not one of: plain, scram-sha-256, scram-sha-512`,
		`connections.events.dsn: only for connections of type postgres or sqlserver, not kafka`,
		`connections.lazy.sasl.password: required with mechanism plain, usually ${KAFKA_PASSWORD}`,
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Error("a secret leaked into the errors")
	}
}

func TestChangesProblems(t *testing.T) {
	data := minimal + `dataverse:
  url: https://contoso.crm.dynamics.com
  auth: {token: tok}
  changes:
    webhook: {listen: ":8443", path: hook, tls_cert_file: c.pem}
    poll: {min_interval: 1m, max_interval: 30s, page_size: 0}
    user_id: me
`
	// minimal already has a dataverse section; the test's replaces it.
	data = strings.Replace(data, "dataverse:\n  url: https://contoso.crm.dynamics.com\n  auth:\n    token: tok\n", "", 1)
	_, err := Parse([]byte(data), "dvsync.yaml", envOf())
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, w := range []string{
		`dataverse.changes.webhook.path: "hook" must start with /`,
		`dataverse.changes.webhook: tls_cert_file and tls_key_file go together: give both or neither`,
		`dataverse.changes.webhook.auth: required: webhook_key, headers or query`,
		`dataverse.changes.poll.max_interval: must be at least min_interval (1m0s), got 30s`,
		`dataverse.changes.poll.page_size: must be between 1 and 5000, got 0`,
		`dataverse.changes.user_id: "me" is not a GUID`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	off := strings.Replace(minimal, "    token: tok\n", "    token: tok\n  changes: {poll: {enabled: false}}\n", 1)
	if _, err := Parse([]byte(off), "dvsync.yaml", envOf()); err == nil || !strings.Contains(err.Error(), "no Dataverse change would be captured") {
		t.Errorf("poll off without a webhook: %v", err)
	}
}

func TestEventHubChanges(t *testing.T) {
	base := strings.Replace(minimal, "    token: tok\n", "    token: tok\n  changes:\n    event_hub: {connection: %s, topic: dataverse}\n", 1)
	ok := strings.Replace(base, "%s", "hub", 1) + "  hub:\n    type: kafka\n    brokers: [ns.servicebus.windows.net:9093]\n"
	if c, err := Parse([]byte(ok), "dvsync.yaml", envOf()); err != nil || c.Dataverse.Changes.EventHub.Topic != "dataverse" {
		t.Fatalf("event hub config: %v", err)
	}
	_, err := Parse([]byte(strings.Replace(base, "%s", "app", 1)), "dvsync.yaml", envOf())
	if err == nil || !strings.Contains(err.Error(), `dataverse.changes.event_hub.connection: "app" is not a connection of type kafka`) {
		t.Errorf("event hub on a postgres connection: %v", err)
	}
}

func TestPublishProblems(t *testing.T) {
	data := minimal + `  bus: {type: kafka, brokers: ["k:9092"]}
publish:
  - {from: app, to: bus, tables: [public.customers], topic_prefix: erp}
  - {from: bus, to: app, tables: [customers], format: avro}
  - {from: app, to: nowhere}
`
	_, err := Parse([]byte(data), "dvsync.yaml", envOf())
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, w := range []string{
		`publish[1].from: "bus" is a kafka connection; publish reads postgres or sqlserver`,
		`publish[1].to: "app" is a postgres connection, not kafka`,
		`publish[1].tables[0]: "customers" is not schema-qualified; write it as schema.table`,
		`publish[1].format: "avro" is not one of: debezium, json`,
		`publish[2].from: "app" is published twice; list all its tables in one entry`,
		`publish[2].to: "nowhere" is not under connections:`,
		`publish[2].tables: required: the schema-qualified tables to publish`,
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "publish[0]") {
		t.Errorf("a valid entry was refused:\n%v", err)
	}
	p := Publish{From: "app"}
	if p.Topic("public.customers") != "app.public.customers" || !p.TombstonesOn() {
		t.Errorf("defaults: %s %v", p.Topic("public.customers"), p.TombstonesOn())
	}
}
