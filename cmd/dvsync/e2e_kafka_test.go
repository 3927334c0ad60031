package main

import (
	"bufio"
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
	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
)

// productsTable is cr1_product, keyed by cr1_sku, for the Kafka tests
// beside cr1_supplier.
const productsTable = `  - logical_name: cr1_product
    entity_set: cr1_products
    primary_id: cr1_productid
    primary_name: cr1_name
    attributes:
      - {name: cr1_sku, type: string, max_length: 20}
      - {name: cr1_name, type: string, max_length: 100}
    keys:
      - {name: cr1_sku_key, attributes: [cr1_sku]}
`

// topicSuppliersMapping applies a JSON topic of suppliers, keyed by the
// code field, to cr1_supplier.
const topicSuppliersMapping = `version: 1
source: {connection: bus, topic: %s, format: json, key_fields: [code]}
dataverse: {table: cr1_supplier, entity_set: cr1_suppliers}
key: {alternate_key: [cr1_code]}
columns:
  - {source: code,   target: cr1_code}
  - {source: name,   target: cr1_name}
  - {source: rating, target: cr1_rating, type: integer}
`

// kafkaE2E is a Kafka cluster, an emulator and a folder of dvsync
// configs reading the cluster.
type kafkaE2E struct {
	t   *testing.T
	k   *testenv.Kafka
	em  *testenv.Emulator
	dv  *odataclient.Client
	dir string
	w   *kafka.Writer
}

func newKafkaE2E(t *testing.T, k *testenv.Kafka, hubs string) *kafkaE2E {
	t.Helper()
	em := testenv.StartEmulator(t, suppliersSchema("", productsTable+hubs))
	dv := personClient(t, em)
	// Murmur2 places a key as Debezium and dvsync's own sink do, so one
	// key's messages share a partition and an order.
	w := &kafka.Writer{Addr: kafka.TCP(k.Addrs...), Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond}
	t.Cleanup(func() { w.Close() })
	return &kafkaE2E{t: t, k: k, em: em, dv: dv, dir: t.TempDir(), w: w}
}

// config writes the named dvsync config with the kafka connection "bus"
// (extra lines indented under it), the changes section, more
// connections, and the given mapping files, and returns its path.
func (e *kafkaE2E) config(name, bus, changes, conns string, mappings map[string]string) string {
	e.t.Helper()
	dir := filepath.Join(e.dir, name)
	for file, m := range mappings {
		writeFile(e.t, filepath.Join(dir, "mappings", file), m)
	}
	path := filepath.Join(dir, "dvsync.yaml")
	writeFile(e.t, path, daemonConfig(dir, e.em.URL, changes, `  bus:
    type: kafka
    brokers: [`+strings.Join(e.k.Addrs, ", ")+`]
    group_id: apply
`+bus+`
`+conns))
	return path
}

func (e *kafkaE2E) start(config string, env ...string) *daemonProc {
	e.t.Helper()
	return startDaemon(e.t, config, env)
}

// produce publishes messages with acks=all.
func (e *kafkaE2E) produce(topic string, msgs ...kafka.Message) {
	e.t.Helper()
	for i := range msgs {
		msgs[i].Topic = topic
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.w.WriteMessages(ctx, msgs...); err != nil {
		e.t.Fatal(err)
	}
}

// jsonMsg is a message keyed by key with value v (a tombstone when nil).
func jsonMsg(key string, v any) kafka.Message {
	m := kafka.Message{Key: []byte(key)}
	if v != nil {
		m.Value = must(json.Marshal(v))
	}
	return m
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// rows returns the entity set's rows as key attribute -> the other
// attributes joined by "|", "null" for missing values.
func (e *kafkaE2E) rows(set, key string, attrs ...string) (map[string]string, error) {
	ctx := context.Background()
	page, err := e.dv.List(ctx, set, odataclient.Query{Select: append([]string{key}, attrs...), MaxPageSize: 500})
	out := map[string]string{}
	for {
		if err != nil {
			return nil, err
		}
		for _, raw := range page.Rows {
			var r map[string]any
			if err := json.Unmarshal(raw, &r); err != nil {
				return nil, err
			}
			var vals []string
			for _, a := range attrs {
				if v, ok := r[a]; ok && v != nil {
					vals = append(vals, fmt.Sprint(v))
				} else {
					vals = append(vals, "null")
				}
			}
			out[fmt.Sprint(r[key])] = strings.Join(vals, "|")
		}
		if page.NextLink == "" {
			return out, nil
		}
		page, err = e.dv.NextPage(ctx, page.NextLink)
	}
}

// waitRows polls until the entity set holds exactly want.
func (e *kafkaE2E) waitRows(timeout time.Duration, set, key string, attrs []string, want map[string]string, logs ...string) {
	e.t.Helper()
	var (
		got map[string]string
		err error
	)
	if !poll(timeout, func() bool {
		got, err = e.rows(set, key, attrs...)
		return err == nil && fmt.Sprint(got) == fmt.Sprint(want)
	}) {
		var tails []string
		for _, l := range logs {
			tails = append(tails, l+":\n"+tail(l, 40))
		}
		e.t.Fatalf("%s = %v (err %v), want %v\n%s", set, summarize(got), err, summarize(want), strings.Join(tails, "\n"))
	}
}

// summarize shortens a large row set for a failure message.
func summarize(m map[string]string) string {
	if len(m) <= 20 {
		return fmt.Sprint(m)
	}
	return fmt.Sprintf("%d rows", len(m))
}

func logOf(config string) string { return filepath.Join(filepath.Dir(config), "dvsync.log") }

var supplierAttrs = []string{"cr1_name", "cr1_rating"}

// TestKafkaTopicsToDataverse applies a JSON topic and a Debezium topic —
// inserts, updates, deletes and tombstones — to the emulator.
func TestKafkaTopicsToDataverse(t *testing.T) {
	k := testenv.StartKafka(t, "suppliers", "app.public.products")
	e := newKafkaE2E(t, k, "")
	cfg := e.config("apply", "", "    user_id: "+reverseAppUser, "", map[string]string{
		"suppliers.yaml": fmt.Sprintf(topicSuppliersMapping, "suppliers"),
		"products.yaml": `version: 1
source: {connection: bus, topic: app.public.products, format: debezium}
dataverse: {table: cr1_product, entity_set: cr1_products}
key: {alternate_key: [cr1_sku]}
columns:
  - {source: sku,  target: cr1_sku}
  - {source: name, target: cr1_name}
`,
	})
	d := e.start(cfg)

	e.produce("suppliers",
		jsonMsg(`"S1"`, map[string]any{"code": "S1", "name": "Acme", "rating": 3}),
		jsonMsg(`"S2"`, map[string]any{"code": "S2", "name": "Globex", "rating": 5}),
		jsonMsg(`"S3"`, map[string]any{"code": "S3", "name": "Initech"}),
		jsonMsg(`"S1"`, map[string]any{"code": "S1", "name": "Acme", "rating": 4}),
		jsonMsg(`"S2"`, nil), // a tombstone deletes S2
	)
	dbz := func(key, op string, before, after any) kafka.Message {
		return jsonMsg(`{"sku":"`+key+`"}`, map[string]any{"op": op, "before": before, "after": after,
			"source": map[string]any{"connector": "postgresql", "table": "products"}, "ts_ms": 1})
	}
	wrapped := jsonMsg(`{"schema":null,"payload":{"sku":"P3"}}`, map[string]any{"schema": nil, "payload": map[string]any{
		"op": "r", "after": map[string]any{"sku": "P3", "name": "Bolt"}, "source": map[string]any{"table": "products"}}})
	e.produce("app.public.products",
		dbz("P1", "c", nil, map[string]any{"sku": "P1", "name": "Nut"}),
		dbz("P2", "c", nil, map[string]any{"sku": "P2", "name": "Gear"}),
		dbz("P1", "u", map[string]any{"sku": "P1", "name": "Nut"}, map[string]any{"sku": "P1", "name": "Hex nut"}),
		dbz("P2", "d", map[string]any{"sku": "P2", "name": "Gear"}, nil),
		jsonMsg(`{"sku":"P2"}`, nil), // Debezium's tombstone after the delete
		wrapped,
		dbz("P4", "c", nil, map[string]any{"sku": "P4", "name": "Spring"}),
		jsonMsg(`{"sku":"P4"}`, nil), // a tombstone alone deletes too
	)
	e.waitRows(20*time.Second, "cr1_suppliers", "cr1_code", supplierAttrs,
		map[string]string{"S1": "Acme|4", "S3": "Initech|null"}, logOf(cfg))
	e.waitRows(20*time.Second, "cr1_products", "cr1_sku", []string{"cr1_name"},
		map[string]string{"P1": "Hex nut", "P3": "Bolt"}, logOf(cfg))
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if log, _ := os.ReadFile(logOf(cfg)); strings.Contains(string(log), "dead-letter") {
		t.Errorf("records were dead-lettered; log:\n%s", log)
	}
}

// supplierMsgs are n suppliers' messages, S<from> to S<from+n-1>, rated
// rating.
func supplierMsgs(from, n, rating int) ([]kafka.Message, map[string]string) {
	msgs := make([]kafka.Message, n)
	want := map[string]string{}
	for i := range n {
		code := fmt.Sprintf("S%03d", from+i)
		msgs[i] = jsonMsg(`"`+code+`"`, map[string]any{"code": code, "name": "Supplier " + code, "rating": rating})
		want[code] = fmt.Sprintf("Supplier %s|%d", code, rating)
	}
	return msgs, want
}

// TestKafkaResumesAfterRestart stops dvsync, publishes while it is down,
// and checks that the restarted daemon applies exactly what it had not:
// the group's committed offsets carry over.
func TestKafkaResumesAfterRestart(t *testing.T) {
	k := testenv.StartKafka(t, "suppliers")
	e := newKafkaE2E(t, k, "")
	cfg := e.config("apply", "", "    user_id: "+reverseAppUser, "",
		map[string]string{"suppliers.yaml": fmt.Sprintf(topicSuppliersMapping, "suppliers")})
	d := e.start(cfg)
	first, want := supplierMsgs(1, 60, 1)
	e.produce("suppliers", first...)
	e.waitRows(20*time.Second, "cr1_suppliers", "cr1_code", supplierAttrs, want, logOf(cfg))
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}

	// While dvsync is down: new suppliers, and new ratings for old ones.
	second, more := supplierMsgs(61, 60, 2)
	updates, changed := supplierMsgs(1, 30, 3)
	e.produce("suppliers", append(second, updates...)...)
	for k, v := range more {
		want[k] = v
	}
	for k, v := range changed {
		want[k] = v
	}
	// Rewrite the first rows behind dvsync's back: were the first
	// messages read again, they would undo this.
	for i := 31; i <= 60; i++ {
		code := fmt.Sprintf("S%03d", i)
		key := odataclient.Key{Alternate: []odataclient.KeyPart{{Name: "cr1_code", Value: code}}}
		if _, err := e.dv.Update(context.Background(), "cr1_suppliers", key, []byte(`{"cr1_rating":9}`), odataclient.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		want[code] = "Supplier " + code + "|9"
	}
	d = e.start(cfg)
	e.waitRows(20*time.Second, "cr1_suppliers", "cr1_code", supplierAttrs, want, logOf(cfg))
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// groupAssignments returns how many partitions each member of the group
// holds, by client host and member id.
func groupAssignments(k *testenv.Kafka, group string) ([]int, error) {
	c := &kafka.Client{Addr: kafka.TCP(k.Addrs...), Timeout: 5 * time.Second}
	resp, err := c.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return nil, err
	}
	var held []int
	for _, g := range resp.Groups {
		if g.Error != nil {
			return nil, g.Error
		}
		for _, m := range g.Members {
			n := 0
			for _, t := range m.MemberAssignments.Topics {
				n += len(t.Partitions)
			}
			held = append(held, n)
		}
	}
	return held, nil
}

// TestKafkaGroupSurvivesKill runs two dvsync processes in one consumer
// group, checks that they share the partitions, kills one with SIGKILL
// while messages flow, and checks that the other takes its partitions over
// and Dataverse ends up holding exactly what was published.
func TestKafkaGroupSurvivesKill(t *testing.T) {
	k := testenv.StartKafka(t, "suppliers")
	e := newKafkaE2E(t, k, "")
	m := map[string]string{"suppliers.yaml": fmt.Sprintf(topicSuppliersMapping, "suppliers")}
	cfgA := e.config("a", "", "    user_id: "+reverseAppUser, "", m)
	cfgB := e.config("b", "", "    user_id: "+reverseAppUser, "", m)
	a := e.start(cfgA)
	b := e.start(cfgB)
	var held []int
	if !poll(20*time.Second, func() bool {
		var err error
		held, err = groupAssignments(k, "apply")
		return err == nil && len(held) == 2 && held[0] > 0 && held[1] > 0 && held[0]+held[1] == 3
	}) {
		t.Fatalf("group members hold %v partitions, want two members sharing 3\n%s\n%s", held, tail(logOf(cfgA), 20), tail(logOf(cfgB), 20))
	}

	msgs, want := supplierMsgs(1, 150, 1)
	e.produce("suppliers", msgs...)
	// Kill a once it has applied some of them, so that it dies holding
	// partitions with work done and, most likely, work in flight.
	if !poll(20*time.Second, func() bool {
		got, err := e.rows("cr1_suppliers", "cr1_code", supplierAttrs...)
		return err == nil && len(got) >= 20
	}) {
		t.Fatalf("nothing applied\n%s", tail(logOf(cfgA), 20))
	}
	a.kill()
	// Updates of every supplier after the kill: the survivor must apply
	// a's partitions' share too, in order after the inserts.
	updates, changed := supplierMsgs(1, 150, 2)
	e.produce("suppliers", updates...)
	for k, v := range changed {
		want[k] = v
	}
	e.waitRows(35*time.Second, "cr1_suppliers", "cr1_code", supplierAttrs, want, logOf(cfgA), logOf(cfgB))
	if held, err := groupAssignments(k, "apply"); err != nil || len(held) != 1 || held[0] != 3 {
		t.Errorf("after the kill the group holds %v (err %v), want one member with all 3 partitions", held, err)
	}
	if err := b.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestKafkaPoisonMessageDeadLettered publishes a message that is not JSON
// between two good ones of the same key: it is dead-lettered, in the
// store and on the dead-letter topic, and the partition goes on.
func TestKafkaPoisonMessageDeadLettered(t *testing.T) {
	k := testenv.StartKafka(t, "suppliers", "dvsync.deadletters")
	e := newKafkaE2E(t, k, "")
	cfg := e.config("apply", "    dead_letter_topic: dvsync.deadletters", "    user_id: "+reverseAppUser, "",
		map[string]string{"suppliers.yaml": fmt.Sprintf(topicSuppliersMapping, "suppliers")})
	d := e.start(cfg)
	e.produce("suppliers",
		jsonMsg(`"S1"`, map[string]any{"code": "S1", "name": "Acme", "rating": 1}),
		kafka.Message{Key: []byte(`"S1"`), Value: []byte(`{"code": "S1", "name": `)},
		jsonMsg(`"S1"`, map[string]any{"code": "S1", "name": "Acme", "rating": 2}),
	)
	e.waitRows(20*time.Second, "cr1_suppliers", "cr1_code", supplierAttrs, map[string]string{"S1": "Acme|2"}, logOf(cfg))

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Addrs, Topic: "dvsync.deadletters", GroupID: "check",
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	msg, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("no dead letter on the topic: %v\n%s", err, tail(logOf(cfg), 30))
	}
	var letter struct {
		Pipeline, Stage, Table, Reason string
		Record                         struct{ Meta map[string]string }
	}
	if err := json.Unmarshal(msg.Value, &letter); err != nil {
		t.Fatalf("%v: %s", err, msg.Value)
	}
	if letter.Pipeline != "bus" || letter.Table != "suppliers" || !strings.Contains(letter.Record.Meta["decode_error"], "suppliers/") ||
		letter.Reason != letter.Record.Meta["decode_error"] {
		t.Errorf("dead letter on the topic: %s", msg.Value)
	}

	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DVSYNC_HTTP", "127.0.0.1:0")
	out, _, err := runCLI(t, "deadletters", "list", "-c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "suppliers c partition=") {
		t.Errorf("deadletters list:\n%s", out)
	}
}

// TestKafkaDataverseChangesPublished publishes Dataverse's changes, found
// by change-tracking polls, to a topic, and reads them back as Debezium
// change events: upserts, then a delete followed by its tombstone.
func TestKafkaDataverseChangesPublished(t *testing.T) {
	k := testenv.StartKafka(t, "dataverse.suppliers")
	e := newKafkaE2E(t, k, "")
	cfg := e.config("publish", "    compression: zstd",
		"    poll: {min_interval: 50ms, max_interval: 200ms}\n    user_id: "+reverseAppUser, "",
		map[string]string{"suppliers.yaml": `version: 1
source: {connection: bus, topic: dataverse.suppliers}
dataverse: {table: cr1_supplier, entity_set: cr1_suppliers}
direction: from-dataverse
key: {alternate_key: [cr1_code]}
columns:
  - {source: code,   target: cr1_code}
  - {source: name,   target: cr1_name}
  - {source: rating, target: cr1_rating, type: integer}
`})
	d := e.start(cfg)
	re := &reverseE2E{t: t, dv: e.dv}
	re.upsert("S1", `{"cr1_name":"Acme","cr1_rating":3}`)
	re.upsert("S2", `{"cr1_name":"Globex"}`)

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Addrs, Topic: "dataverse.suppliers", GroupID: "check",
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	type event struct {
		Op     string
		Before map[string]any
		After  map[string]any
		Source struct{ Table string }
		TsMs   int64 `json:"ts_ms"`
	}
	next := func() (kafka.Message, *event) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		m, err := r.FetchMessage(ctx)
		if err != nil {
			_ = d.stop(20 * time.Second)
			t.Setenv("DVSYNC_HTTP", "127.0.0.1:0")
			out, _, _ := runCLI(t, "deadletters", "show", "1", "-p", "from-dataverse/bus", "-c", cfg)
			t.Fatalf("reading the topic: %v\n%s\ndead letters:\n%s", err, tail(logOf(cfg), 30), out)
		}
		if m.Value == nil {
			return m, nil
		}
		var ev event
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			t.Fatalf("not a Debezium event: %v: %s", err, m.Value)
		}
		if ev.TsMs == 0 || ev.Source.Table == "" {
			t.Errorf("event without ts_ms or source.table: %s", m.Value)
		}
		if msgHeader(m, "dvsync-origin") == "" {
			t.Errorf("event without dvsync's origin header: %s", m.Value)
		}
		return m, &ev
	}
	got := map[string]string{}
	for len(got) < 2 {
		m, ev := next()
		if ev == nil || ev.Op == "d" {
			t.Fatalf("unexpected %s: %s", m.Key, m.Value)
		}
		got[string(m.Key)] = ev.Op + " " + fmt.Sprint(ev.After["name"], "|", ev.After["rating"])
	}
	want := map[string]string{`{"code":"S1"}`: "c Acme|3", `{"code":"S2"}`: "c Globex|<nil>"}
	for k, v := range want {
		if g := got[k]; g != v && g != "u"+v[1:] && g != "r"+v[1:] {
			t.Errorf("event of %s: %q, want %q", k, g, v)
		}
	}

	re.delete("S2")
	m, ev := next()
	if string(m.Key) != `{"code":"S2"}` || ev == nil || ev.Op != "d" || ev.After != nil {
		t.Fatalf("want the delete of S2, got %s: %s", m.Key, m.Value)
	}
	if m, ev = next(); string(m.Key) != `{"code":"S2"}` || ev != nil {
		t.Fatalf("want the tombstone of S2, got %s: %s", m.Key, m.Value)
	}
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func msgHeader(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestKafkaEventHubToPostgres reads Dataverse's own event messages — the
// RemoteExecutionContext JSON the emulator's EventHub service endpoint
// publishes — from a topic and writes them to a PostgreSQL table.
func TestKafkaEventHubToPostgres(t *testing.T) {
	ctx := context.Background()
	k := testenv.StartKafka(t, "dataverse-suppliers")
	e := newKafkaE2E(t, k, `eventhubs:
  - name: dvsync-hub
    brokers: [`+strings.Join(k.Addrs, ", ")+`]
    topic: dataverse-suppliers
    steps:
      - {message: Create, table: cr1_supplier, images: [{type: post}]}
      - {message: Update, table: cr1_supplier, images: [{type: both}]}
      - {message: Delete, table: cr1_supplier, images: [{type: pre}]}`)
	dsn := testenv.NewDatabase(t, testenv.StartPostgres(t))
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	if _, err := db.Exec(ctx, `CREATE TABLE public.suppliers (code text PRIMARY KEY, name text, rating int)`); err != nil {
		t.Fatal(err)
	}
	cfg := e.config("hub", "",
		"    event_hub: {connection: bus, topic: dataverse-suppliers}\n    user_id: "+reverseAppUser,
		"  app:\n    type: postgres\n    dsn: "+dsn+"\n    heartbeat_interval: 1s",
		map[string]string{"suppliers.yaml": fmt.Sprintf(suppliersMapping, "from-dataverse")})
	d := e.start(cfg)
	re := &reverseE2E{t: t, db: db, dv: e.dv, em: e.em, config: cfg, dir: filepath.Dir(cfg)}
	re.exercise()
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestKafkaWrongPassword starts dvsync against brokers that refuse its
// SASL password: it exits at once saying so, without the password.
func TestKafkaWrongPassword(t *testing.T) {
	k := testenv.StartKafkaSASL(t, "dvsync", "right-password", "suppliers")
	e := newKafkaE2E(t, k, "")
	const wrong = "wrong-password-5d1c"
	cfg := e.config("apply", "    sasl: {mechanism: scram-sha-256, username: dvsync, password: "+wrong+"}",
		"    user_id: "+reverseAppUser, "",
		map[string]string{"suppliers.yaml": fmt.Sprintf(topicSuppliersMapping, "suppliers")})
	p, err := spawnDaemonArgs(context.Background(), os.Args[0], []string{"run", "-c", cfg}, logOf(cfg), []string{runAsDvsync + "=1"})
	if err == nil {
		p.kill()
		t.Fatal("dvsync started with a wrong SASL password")
	}
	log, _ := os.ReadFile(logOf(cfg))
	if !strings.Contains(string(log), "rejected SASL SCRAM-SHA-256 authentication as user \"dvsync\"") {
		t.Errorf("the error does not say the login was refused:\n%s", log)
	}
	if strings.Contains(string(log), wrong) {
		t.Errorf("the log holds the password:\n%s", log)
	}
}

// recordsRead sums the daemon's dvsync_engine_records_read_total of one
// pipeline.
func recordsRead(t *testing.T, d *daemonProc, pipeline string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + d.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "dvsync_engine_records_read_total{") || !strings.Contains(line, `pipeline="`+pipeline+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestKafkaBothDirectionsSkipOwnMessages syncs one topic both ways: a
// Dataverse change is published to the topic, and the pipeline reading
// the topic skips that message, dvsync's own, instead of applying it back.
func TestKafkaBothDirectionsSkipOwnMessages(t *testing.T) {
	k := testenv.StartKafka(t, "suppliers")
	e := newKafkaE2E(t, k, "")
	cfg := e.config("both", "",
		"    poll: {min_interval: 50ms, max_interval: 200ms}\n    user_id: "+reverseAppUser, "",
		map[string]string{"suppliers.yaml": strings.Replace(fmt.Sprintf(topicSuppliersMapping, "suppliers"),
			"dataverse:", "direction: both\ndataverse:", 1)})
	d := e.start(cfg)
	re := &reverseE2E{t: t, dv: e.dv}
	re.upsert("S2", `{"cr1_name":"Globex","cr1_rating":5}`)

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Addrs, Topic: "suppliers", GroupID: "check",
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("the Dataverse change was not published: %v\n%s", err, tail(logOf(cfg), 30))
	}
	if string(m.Key) != `{"code":"S2"}` || msgHeader(m, "dvsync-origin") != "dvsync" {
		t.Fatalf("published %s: %s with headers %v", m.Key, m.Value, m.Headers)
	}

	// A change from elsewhere, behind dvsync's own message in the same
	// partition: once it is applied, dvsync's message has been read.
	e.produce("suppliers", jsonMsg(`{"code":"S2"}`, map[string]any{"code": "S2", "name": "Outside", "rating": 7}))
	e.waitRows(20*time.Second, "cr1_suppliers", "cr1_code", supplierAttrs, map[string]string{"S2": "Outside|7"}, logOf(cfg))
	if n := recordsRead(t, d, "bus"); n != 1 {
		t.Errorf("the pipeline reading the topic read %v records, want 1: dvsync's own message was not skipped", n)
	}
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}
