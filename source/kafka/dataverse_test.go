package kafka

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/dvevent"
	"github.com/dvsync/dvsync/internal/testenv"
)

const emulatorSchema = `
version: 1
tables:
  - logical_name: contact
    entity_set: contacts
    primary_name: lastname
    attributes:
      - {name: lastname, type: string}
      - {name: creditlimit, type: money}
webhooks:
  - name: capture
    url: %s
    auth: {type: webhookkey, value: k}
    steps:
      - {message: Create, table: contact, images: [{type: post}]}
      - {message: Update, table: contact, images: [{type: both}]}
      - {message: Delete, table: contact, images: [{type: pre}]}
`

// emulatorContexts makes the emulator create, update and delete a contact
// and returns the RemoteExecutionContext bodies it posts for them, which
// are what it would send to an Event Hub, and the contact's id.
func emulatorContexts(t *testing.T) (bodies [][]byte, contactID string) {
	t.Helper()
	arrived := make(chan []byte, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		arrived <- b
	}))
	t.Cleanup(hook.Close)
	emu := testenv.StartEmulator(t, fmt.Sprintf(emulatorSchema, hook.URL))
	send := func(method, path, body string) {
		t.Helper()
		if id := emulatorWrite(t, emu, method, path, body); id != "" {
			contactID = id
		}
	}
	send("POST", "contacts", `{"lastname":"Anderson","creditlimit":1234.5}`)
	send("PATCH", "contacts("+contactID+")", `{"lastname":"Smith"}`)
	send("DELETE", "contacts("+contactID+")", ``)
	timeout := time.NewTimer(testTimeout)
	defer timeout.Stop()
	for len(bodies) < 3 {
		select {
		case b := <-arrived:
			bodies = append(bodies, b)
		case <-timeout.C:
			t.Fatalf("%d webhook calls arrived, want 3", len(bodies))
		}
	}
	return bodies, contactID
}

// emulatorWrite sends one Web API request to emu and returns the
// contactid of the row it answers with, if any.
func emulatorWrite(t *testing.T, emu *testenv.Emulator, method, path, body string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, emu.URL+"/api/data/v9.2/"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+emu.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Prefer", "return=representation")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
	}
	var row struct {
		ID string `json:"contactid"`
	}
	_ = json.Unmarshal(out, &row)
	return row.ID
}

// TestEmulatorEventHubRoute runs the route Dataverse -> Event Hubs ->
// dvsync on one machine: the emulator publishes the contexts of a
// contact's create, update and delete to a topic through its EventHub
// service endpoint, and the source reads them in order.
func TestEmulatorEventHubRoute(t *testing.T) {
	k := testenv.StartKafka(t, "dataverse-contacts")
	emu := testenv.StartEmulator(t, `
version: 1
tables:
  - logical_name: contact
    entity_set: contacts
    primary_name: lastname
    attributes:
      - {name: lastname, type: string}
eventhubs:
  - name: contacts-hub
    brokers: [`+strings.Join(k.Addrs, ", ")+`]
    topic: dataverse-contacts
    steps:
      - {message: Create, table: contact, images: [{type: post}]}
      - {message: Update, table: contact, images: [{type: both}]}
      - {message: Delete, table: contact, images: [{type: pre}]}
`)
	s := openSource(t, testConfig(k, "hub", Topic{Name: "dataverse-contacts", Format: FormatDataverseEvent}))
	id := emulatorWrite(t, emu, "POST", "contacts", `{"lastname":"Anderson"}`)
	emulatorWrite(t, emu, "PATCH", "contacts("+id+")", `{"lastname":"Smith"}`)
	emulatorWrite(t, emu, "DELETE", "contacts("+id+")", ``)

	got := readN(t, s, 3)
	var ops []string
	for _, r := range got {
		ops = append(ops, r.Op.String())
		if r.Table != "contact" || r.Key.String() != "contactid="+id {
			t.Errorf("record %s", r.String())
		}
	}
	if strings.Join(ops, "") != "cud" {
		t.Errorf("operations %v, want c, u, d", ops)
	}
	if v := value(t, got[1].After, "lastname"); v.String() != "Smith" {
		t.Errorf("updated lastname %s", v)
	}
	if v := value(t, got[1].Before, "lastname"); v.String() != "Anderson" {
		t.Errorf("lastname before the update %s", v)
	}
}

// TestDataverseEventTopic puts the emulator's RemoteExecutionContext
// bodies on a topic, as Dataverse's Event Hubs service endpoint does, and
// reads them back as the webhook receiver would decode them.
func TestDataverseEventTopic(t *testing.T) {
	bodies, contact := emulatorContexts(t)
	// The emulator posts each change's webhook on its own; put them on
	// the topic in the order they were made.
	order := map[string]int{"Create": 0, "Update": 1, "Delete": 2}
	sorted := make([][]byte, 3)
	var ev *dvevent.Event
	for _, b := range bodies {
		e, err := dvevent.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		sorted[order[e.MessageName]] = b
		ev = e
	}
	bodies = sorted
	k := testenv.StartKafka(t, "dataverse")
	var msgs []kafka.Message
	for _, b := range bodies {
		msgs = append(msgs, kafka.Message{Key: []byte(contact), Value: b})
	}
	msgs = append(msgs, msg(contact, `{"MessageName":"Create"}`)) // not a whole context
	produce(t, k, "dataverse", msgs...)

	cfg := testConfig(k, "dv", Topic{Name: "dataverse", Format: FormatDataverseEvent})
	cfg.SkipUserIDs = []string{"00000000-0000-0000-0000-00000000abcd"} // someone else
	s := openSource(t, cfg)
	got := readN(t, s, 4)
	ops := ""
	for _, r := range got[:3] {
		ops += r.Op.String()
		if r.Table != "contact" || r.Key.String() != "contactid="+contact || r.Meta[MetaTopic] != "dataverse" {
			t.Errorf("record %s (meta %v)", r.String(), r.Meta)
		}
		if r.Origin.System != "dataverse" || !strings.EqualFold(r.Origin.Name, ev.UserID) {
			t.Errorf("%s: origin %+v, want the event's user %s", r.String(), r.Origin, ev.UserID)
		}
	}
	if ops != "cud" {
		t.Errorf("operations %q, want cud", ops)
	}
	if v := value(t, got[0].After, "creditlimit"); !v.Equal(change.MustDecimal("1234.5000")) {
		t.Errorf("creditlimit = %s %s", v.Kind(), v)
	}
	if v := value(t, got[1].After, "lastname"); v.String() != "Smith" {
		t.Errorf("updated lastname = %s", v)
	}
	if r := got[3]; r.Meta[MetaDecodeError] == "" || r.Table != "dataverse" {
		t.Errorf("a truncated context decoded as %s", r.String())
	}

	// Events made by dvsync's own user are echoes and skipped, however
	// the configured GUID is written.
	own, err := New(Config{Connection: cfg.Connection, GroupID: "g", Topics: cfg.Topics,
		SkipUserIDs: []string{"{" + strings.ToUpper(ev.UserID) + "}"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bodies {
		if d := decodeOne(t, own, kafka.Message{Value: b}); !d.skip {
			t.Errorf("event of dvsync's own user not skipped: %s", d.rec.String())
		}
	}
}
