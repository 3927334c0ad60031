package emulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/internal/testenv"
)

// readEvents reads n messages from topic through a consumer group.
func readEvents(t *testing.T, k *testenv.Kafka, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.Addrs, Topic: topic, GroupID: "reader",
		StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for len(msgs) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(msgs), n, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func msgHeader(m kafka.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// comparable drops the members that differ between two deliveries of one
// write to two endpoints: the operation id (one per run) and the step.
func comparableContext(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var ctx map[string]any
	if err := json.Unmarshal(body, &ctx); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	delete(ctx, "OperationId")
	delete(ctx, "OwningExtension")
	return ctx
}

func TestEventHubPublishesWebhookContexts(t *testing.T) {
	k := testenv.StartKafka(t, "dataverse-contacts")
	rc, url := startReceiver(t, nil)
	steps := `
      - {message: Create, table: contact, images: [{type: post}]}
      - {message: Update, table: contact, images: [{type: both}]}
      - {message: Delete, table: contact, images: [{type: pre}]}`
	a, srv := startHooks(t, `
  - name: audit
    url: `+url+`/hook
    auth: {type: webhookkey, value: right-key}
    steps:`+steps+`
eventhubs:
  - name: contacts-hub
    brokers: [`+strings.Join(k.Addrs, ", ")+`]
    topic: dataverse-contacts
    message_format: json
    steps:`+steps)
	bearer := appBearer(t, a)
	r := a.do("POST", "contacts", map[string]any{"firstname": "Nancy", "lastname": "Anderson", "creditlimit": 10000},
		"Authorization", bearer).must(t, http.StatusNoContent)
	id := r.header.Get("OData-EntityId")
	id = id[strings.LastIndex(id, "(")+1 : len(id)-1]
	a.do("PATCH", "contacts("+id+")", map[string]any{"jobtitle": "Buyer"}, "Authorization", bearer).must(t, http.StatusNoContent)
	a.do("DELETE", "contacts("+id+")", nil, "Authorization", bearer).must(t, http.StatusNoContent)
	other := a.create("contacts", map[string]any{"lastname": "Other"})

	msgs := readEvents(t, k, "dataverse-contacts", 4)
	waitFor(t, "four webhook calls", func() bool { return len(rc.calls()) >= 4 })
	drain(t, srv)
	if f := srv.WebhookFailures(); len(f) != 0 {
		t.Fatalf("failures: %+v", f)
	}

	hooked := map[string]map[string]any{}
	for _, c := range rc.calls() {
		hooked[c.ctx["PrimaryEntityId"].(string)+" "+c.ctx["MessageName"].(string)] = comparableContext(t, c.body)
	}
	var order []string
	for _, m := range msgs {
		ctx := comparableContext(t, m.Value)
		msg, entity := ctx["MessageName"].(string), ctx["PrimaryEntityId"].(string)
		if string(m.Key) != entity {
			t.Errorf("%s: message key %q, want the primary entity id %s", msg, m.Key, entity)
		}
		for name, want := range map[string]string{
			"Content-Type": "application/json",
			"http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName": "contact",
			"http://schemas.microsoft.com/xrm/2011/Claims/RequestName":       msg,
			"http://schemas.microsoft.com/xrm/2011/Claims/Organization":      "contoso",
			"http://schemas.microsoft.com/xrm/2011/Claims/User":              appUserID,
		} {
			if entity == other {
				want = strings.Replace(want, appUserID, ctx["UserId"].(string), 1)
			}
			if got := msgHeader(m, name); got != want {
				t.Errorf("%s: header %s = %q, want %q", msg, name, got, want)
			}
		}
		want, ok := hooked[entity+" "+msg]
		if !ok {
			t.Errorf("published %s of %s, which no webhook received", msg, entity)
			continue
		}
		if got, _ := json.Marshal(ctx); string(got) != string(must(json.Marshal(want))) {
			t.Errorf("%s: published context differs from the webhook's:\n got %s\nwant %s", msg, got, must(json.Marshal(want)))
		}
		if entity == id {
			order = append(order, msg)
		}
	}
	// One row's events share a key, hence a partition, hence an order.
	if fmt.Sprint(order) != "[Create Update Delete]" {
		t.Errorf("events of %s in the order %v", id, order)
	}
	var raw map[string]any
	_ = json.Unmarshal(msgs[0].Value, &raw)
	if ext, _ := raw["OwningExtension"].(map[string]any); ext["LogicalName"] != "sdkmessageprocessingstep" || ext["Id"] == "" {
		t.Errorf("OwningExtension %v", raw["OwningExtension"])
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestEventHubUnreachableRecordsFailure(t *testing.T) {
	k := testenv.StartKafka(t, "events")
	a, srv := startHooks(t, `
  - {name: audit, url: http://127.0.0.1:1/hook, auth: {type: webhookkey, value: k}, steps: [{message: Update, table: account}]}
eventhubs:
  - {name: hub, brokers: ["`+k.Addrs[0]+`"], topic: events, steps: [{message: Create, table: contact}]}
`)
	k.Cluster.Close()
	a.create("contacts", map[string]any{"lastname": "Lost"})
	drain(t, srv)
	f := srv.WebhookFailures()
	if len(f) != 1 || f[0].Webhook != "hub" || f[0].Message != "Create" || f[0].Attempts != 1 ||
		!strings.Contains(f[0].Err, "publish to event hub hub (topic events)") {
		t.Fatalf("failures %+v", f)
	}
}

func TestEventHubSchemaErrors(t *testing.T) {
	_, err := emulator.ParseSchema(fmt.Appendf(nil, hookSchema, `
  - {name: dup, url: http://example.com, auth: {type: webhookkey, value: k}, steps: [{message: Create, table: contact}]}
eventhubs:
  - name: dup
    brokers: [nohost]
    message_format: xml
    steps:
      - {message: Create, table: contact, mode: sync}
      - {message: Merge, table: contact}
  - {name: empty}
`), "hooks.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`eventhubs[0].name: duplicate service endpoint name "dup" (also webhooks[0])`,
		`eventhubs[0].brokers[0]: "nohost" is not host:port`,
		"eventhubs[0].topic: is required",
		`eventhubs[0].message_format: "xml" is not supported`,
		"eventhubs[0].steps[0].mode: event hub steps are asynchronous only",
		`eventhubs[0].steps[1].message: "Merge"`,
		"eventhubs[1].brokers: at least one", "eventhubs[1].steps: at least one step",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
