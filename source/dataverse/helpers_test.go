package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/freeport"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/state"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// appUser is the user id of the emulator application that stands for
// dvsync's own identity in these tests.
const appUser = "8d7c6b5a-4e3f-4a2b-9c1d-0e1f2a3b4c5d"

const schemaTemplate = `
version: 1
applications:
  - {client_id: sync-app, client_secret: app-secret, user_id: ` + appUser + `}
tables:
  - logical_name: contact
    entity_set: contacts
    primary_name: lastname
    change_tracking: true
    attributes:
      - {name: lastname, type: string}
      - {name: creditlimit, type: money}
      - {name: preferredcontactmethodcode, type: picklist, options: [1, 2, 3]}
%s
`

const hookKey = "hook-secret"

// hooksSection registers Create, Update and Delete steps with images,
// posting to url with the webhook key.
func hooksSection(url string) string {
	return `webhooks:
  - name: dvsync
    url: ` + url + `
    auth: {type: webhookkey, value: ` + hookKey + `}
    steps:
      - {message: Create, table: contact, images: [{type: post}]}
      - {message: Update, table: contact, images: [{type: both}]}
      - {message: Delete, table: contact, images: [{type: pre}]}`
}

// freeAddr returns a loopback address whose port was free a moment ago,
// for a receiver whose URL the emulator's schema must name before it
// starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// dv is a running emulator with a client for the source, and writers
// acting as a person (the static token) and as dvsync (the application).
type dv struct {
	t      *testing.T
	emu    *testenv.Emulator
	client *odataclient.Client
	app    *odataclient.Client
}

func startDataverse(t *testing.T, hooks string) *dv {
	t.Helper()
	emu := testenv.StartEmulator(t, fmt.Sprintf(schemaTemplate, hooks))
	client, err := odataclient.New(odataclient.Options{BaseURL: emu.URL, Tokens: odataclient.StaticToken(emu.Token)})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := odataclient.NewClientCredentials(odataclient.ClientCredentials{
		TokenURL: emu.URL + "/tenant/oauth2/v2.0/token", ClientID: "sync-app", ClientSecret: "app-secret", Scope: emu.URL + "/.default",
	})
	if err != nil {
		t.Fatal(err)
	}
	app, err := odataclient.New(odataclient.Options{BaseURL: emu.URL, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	return &dv{t: t, emu: emu, client: client, app: app}
}

// create makes a contact as c and returns its id.
func (d *dv) create(c *odataclient.Client, lastname string) string {
	d.t.Helper()
	res, err := c.Create(context.Background(), "contacts", []byte(`{"lastname":"`+lastname+`","creditlimit":10.5,"preferredcontactmethodcode":2}`), odataclient.WriteOptions{})
	if err != nil {
		d.t.Fatal(err)
	}
	return res.EntityID
}

func (d *dv) update(c *odataclient.Client, id, lastname string) {
	d.t.Helper()
	if _, err := c.Update(context.Background(), "contacts", odataclient.Key{ID: id}, []byte(`{"lastname":"`+lastname+`"}`), odataclient.WriteOptions{}); err != nil {
		d.t.Fatal(err)
	}
}

func (d *dv) remove(c *odataclient.Client, id string) {
	d.t.Helper()
	if err := c.Delete(context.Background(), "contacts", odataclient.Key{ID: id}, odataclient.WriteOptions{}); err != nil {
		d.t.Fatal(err)
	}
}

// reset deletes every row; the emulator's earlier delta tokens expire.
func (d *dv) reset() {
	d.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.emu.URL+"/_emulator/reset", nil)
	req.Header.Set("Authorization", "Bearer "+d.emu.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		d.t.Fatalf("reset: %s", resp.Status)
	}
}

// faults replaces the emulator's injected faults; "" clears them.
func (d *dv) faults(spec string) {
	d.t.Helper()
	method := http.MethodPut
	if spec == "" {
		method = http.MethodDelete
	}
	req, _ := http.NewRequest(method, d.emu.URL+"/_emulator/faults", strings.NewReader(spec))
	req.Header.Set("Authorization", "Bearer "+d.emu.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		d.t.Fatalf("faults: %s", resp.Status)
	}
}

func openBolt(t *testing.T) (func() *state.Bolt, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	return func() *state.Bolt {
		s, err := state.OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, path
}

// opened is an open Source with what its test needs to drive it.
type opened struct {
	t   *testing.T
	src *Source
	got []change.Record
}

func openSource(t *testing.T, cfg Config, client *odataclient.Client, store Store, from change.Position) *opened {
	t.Helper()
	src, err := New(cfg, client, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := src.Open(ctx, from); err != nil {
		t.Fatal(err)
	}
	o := &opened{t: t, src: src}
	t.Cleanup(func() { o.close() })
	return o
}

func (o *opened) close() {
	if o.src == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := o.src.Close(ctx); err != nil {
		o.t.Errorf("close: %v", err)
	}
	o.src = nil
}

// read reads until n more records arrived, failing after a deadline.
func (o *opened) read(n int) []change.Record {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []change.Record
	for len(out) < n {
		recs, err := o.src.Read(ctx)
		if err != nil {
			o.t.Fatalf("read %d of %d records: %v", len(out), n, err)
		}
		out = append(out, recs...)
	}
	if len(out) > n {
		o.t.Fatalf("read %d records, want %d: %v", len(out), n, out)
	}
	o.got = append(o.got, out...)
	return out
}

// waitFor polls cond until it holds, failing after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// quiet waits until every feed has caught up (two more poll rounds, and
// hooks answered webhook requests), then checks nothing more is waiting.
func (o *opened) quiet(hooks int64) {
	o.t.Helper()
	if hooks > 0 {
		waitFor(o.t, fmt.Sprintf("%d webhook requests", hooks), func() bool { return o.src.hooks.Load() >= hooks })
	}
	if o.src.cfg.Poll != nil {
		r0 := o.src.rounds.Load()
		waitFor(o.t, "two poll rounds", func() bool { return o.src.rounds.Load() >= r0+2 })
	}
	es, err := o.src.store.InboxEntries(context.Background(), o.src.cfg.Name, o.src.readSeq, 0)
	if err != nil {
		o.t.Fatal(err)
	}
	for _, e := range es {
		rec, _ := decodeRecord(e.Data)
		o.t.Errorf("unexpected record %s (%v)", rec.String(), rec.Meta)
	}
}

// ack acks everything read so far.
func (o *opened) ack() {
	o.t.Helper()
	if len(o.got) == 0 {
		return
	}
	if err := o.src.Ack(context.Background(), o.got[len(o.got)-1].Position); err != nil {
		o.t.Fatal(err)
	}
}

// post sends body to the receiver with the query string q.
func post(t *testing.T, addr, q string, header http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+DefaultPath+q, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hookBody is a RemoteExecutionContext as Dataverse posts it.
func hookBody(message, id, user string, version int64, extra ...string) []byte {
	target := `{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","Attributes":[{"key":"lastname","value":"Doe"},{"key":"contactid","value":"` + id + `"}],"Id":"` + id + `","LogicalName":"contact"}`
	if message == "Delete" {
		target = `{"__type":"EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","Id":"` + id + `","LogicalName":"contact"}`
	}
	image := `[{"key":"Image","value":{"Attributes":[{"key":"lastname","value":"Doe"},{"key":"versionnumber","value":` +
		fmt.Sprint(version) + `}],"Id":"` + id + `","LogicalName":"contact"}}]`
	pre, postImg := `[]`, image
	if message == "Delete" {
		pre, postImg = image, `[]`
	}
	members := []string{
		`"CorrelationId":"9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"`,
		`"Depth":1`,
		`"InitiatingUserId":"` + user + `"`,
		`"InputParameters":[{"key":"Target","value":` + target + `}]`,
		`"MessageName":"` + message + `"`,
		`"OperationCreatedOn":"\/Date(1732449601000-0000)\/"`,
		`"OperationId":"2d3e4f5a-6b7c-4d8e-9f0a-` + fmt.Sprintf("%012d", version) + `"`,
		`"PostEntityImages":` + postImg,
		`"PreEntityImages":` + pre,
		`"PrimaryEntityId":"` + id + `"`,
		`"PrimaryEntityName":"contact"`,
		`"RequestId":null`,
		`"Stage":40`,
		`"UserId":"` + user + `"`,
	}
	return []byte("{" + strings.Join(append(members, extra...), ",") + "}")
}

const person = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"

// lastname returns a record's lastname, or "" when it has none.
func lastname(r change.Record) string {
	v, ok := r.After.Get("lastname")
	if !ok || v.Kind() != change.KindText {
		return ""
	}
	return v.Str()
}

func keyID(r change.Record) string {
	if len(r.Key) != 1 {
		return ""
	}
	return r.Key[0].Value.String()
}

func describe(recs []change.Record) string {
	var b strings.Builder
	for _, r := range recs {
		m, _ := json.Marshal(r.Meta)
		fmt.Fprintf(&b, "\n  %s %s %s", r.String(), lastname(r), m)
	}
	return b.String()
}

// postgresStore returns an opener of a PostgreSQL state store in a fresh
// database.
func postgresStore(t *testing.T) func() Store {
	dsn := testenv.NewDatabase(t, testenv.StartPostgres(t))
	return func() Store {
		s, err := state.OpenPostgres(context.Background(), dsn, "dvsync")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func closeStore(t *testing.T, s Store) {
	t.Helper()
	if c, ok := s.(interface{ Close() error }); ok {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}

// readUntil reads until done holds for the records read by this call,
// grouped by row id, failing after a deadline.
func (o *opened) readUntil(what string, done func(g map[string][]change.Record) bool) []change.Record {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []change.Record
	for !done(byID(out)) {
		recs, err := o.src.Read(ctx)
		if err != nil {
			o.t.Fatalf("waiting for %s: %v; read so far:%s", what, err, describe(out))
		}
		out = append(out, recs...)
	}
	o.got = append(o.got, out...)
	return out
}

// checkOrder fails unless each row's records have increasing versions
// (deletes excepted, which carry none) and nothing follows a delete.
func checkOrder(t *testing.T, recs []change.Record) {
	t.Helper()
	for id, rs := range byID(recs) {
		var last int64
		for i, r := range rs {
			if i > 0 && rs[i-1].Op == change.OpDelete {
				t.Errorf("row %s has a record after its delete:%s", id, describe(rs))
			}
			if r.Op == change.OpDelete {
				continue
			}
			v, err := strconv.ParseInt(r.Meta["versionnumber"], 10, 64)
			if err != nil || v <= last {
				t.Errorf("row %s: versions not increasing:%s", id, describe(rs))
			}
			last = v
		}
	}
}

// final is the last record of a row; ok is false when it has none.
func final(g map[string][]change.Record, id string) (change.Record, bool) {
	rs := g[id]
	if len(rs) == 0 {
		return change.Record{}, false
	}
	return rs[len(rs)-1], true
}

func isDelete(g map[string][]change.Record, id string) bool {
	r, ok := final(g, id)
	return ok && r.Op == change.OpDelete
}

func hasName(g map[string][]change.Record, id, name string) bool {
	r, ok := final(g, id)
	return ok && r.Op != change.OpDelete && lastname(r) == name
}
