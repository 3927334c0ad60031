package emulator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/emulator"
)

// receiver is a webhook endpoint that checks its key itself, as a real
// receiver must: requests without it are answered 401 and never accepted.
type receiver struct {
	mu       sync.Mutex
	accepted []hookCall
	rejected int
	hits     map[string]int // by path, accepted or not
	// answers are the statuses a path answers, in order, before 200.
	answers map[string][]int
}

type hookCall struct {
	path   string
	header http.Header
	body   []byte
	ctx    map[string]any
}

func startReceiver(t *testing.T, answers map[string][]int) (*receiver, string) {
	t.Helper()
	rc := &receiver{hits: map[string]int{}, answers: answers}
	hs := httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(hs.Close)
	return rc, hs.URL
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.hits[r.URL.Path]++
	if r.URL.Query().Get("code") != "right-key" && r.Header.Get("X-Hook-Key") != "right-key" {
		rc.rejected++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if q := rc.answers[r.URL.Path]; len(q) > 0 {
		rc.answers[r.URL.Path] = q[1:]
		w.WriteHeader(q[0])
		return
	}
	var ctx map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&ctx); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.accepted = append(rc.accepted, hookCall{path: r.URL.Path, header: r.Header.Clone(), body: body, ctx: ctx})
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) calls() []hookCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hookCall(nil), rc.accepted...)
}

func (rc *receiver) hitCount(path string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.hits[path]
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

const hookSchema = `
version: 1
applications:
  - {client_id: sync-app, client_secret: app-secret, user_id: 8d7c6b5a-4e3f-4a2b-9c1d-0e1f2a3b4c5d}
tables:
  - logical_name: account
    entity_set: accounts
    primary_name: name
    attributes:
      - {name: name, type: string}
  - logical_name: contact
    entity_set: contacts
    primary_name: lastname
    attributes:
      - {name: firstname, type: string}
      - {name: lastname, type: string}
      - {name: jobtitle, type: string}
      - {name: description, type: memo, max_length: 1048576}
      - {name: creditlimit, type: money}
      - {name: birthdate, type: datetime}
      - {name: preferredcontactmethodcode, type: picklist, options: [1, 2, 3]}
      - {name: interests, type: multiselectpicklist, options: [100000000, 100000001, 100000002]}
      - {name: parentcustomerid, type: lookup, targets: [account]}
webhooks:
%s
`

const appUserID = "8d7c6b5a-4e3f-4a2b-9c1d-0e1f2a3b4c5d"

// startHooks starts an emulator whose schema has the given webhooks
// section; it returns the API client and the server.
func startHooks(t *testing.T, webhooks string) (*api, *emulator.Server) {
	t.Helper()
	return startHooksWith(t, webhooks, emulator.Options{})
}

// startHooksWith is startHooks with further options; the token and the
// organisation's name are set.
func startHooksWith(t *testing.T, webhooks string, opts emulator.Options) (*api, *emulator.Server) {
	t.Helper()
	schema, err := emulator.ParseSchema(fmt.Appendf(nil, hookSchema, webhooks), "hooks.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts.Token, opts.OrganizationName = testToken, "contoso"
	srv, err := emulator.New(schema, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &api{t: t, root: hs.URL, base: hs.URL + "/api/data/v9.2"}, srv
}

// appBearer returns an Authorization value for the schema's application.
func appBearer(t *testing.T, a *api) string {
	status, body := a.token(clientCredentials("sync-app", "app-secret"))
	if status != http.StatusOK {
		t.Fatalf("token: %d %v", status, body)
	}
	return "Bearer " + body["access_token"].(string)
}

// drain delivers every queued run, so that what a receiver has not got by
// then it never gets.
func drain(t *testing.T, srv *emulator.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// pairs turns a [{key, value}] collection into a map.
func pairs(t *testing.T, v any) map[string]any {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("not a key/value array: %#v", v)
	}
	m := map[string]any{}
	for _, e := range list {
		kv := e.(map[string]any)
		m[kv["key"].(string)] = kv["value"]
	}
	return m
}

func entityAttrs(t *testing.T, v any) map[string]any {
	t.Helper()
	return pairs(t, v.(map[string]any)["Attributes"])
}

func TestWebhookCreateUpdateDelete(t *testing.T) {
	rc, url := startReceiver(t, nil)
	a, srv := startHooks(t, `
  - name: audit
    url: `+url+`/hook
    auth: {type: webhookkey, value: right-key}
    steps:
      - message: Create
        table: contact
        images: [{type: post}]
      - message: Update
        table: contact
        filtering_attributes: [jobtitle, creditlimit]
        images: [{type: both, alias: Img}, {type: pre, alias: Names, attributes: [firstname, lastname]}]
      - message: Delete
        table: contact
        images: [{type: pre}]
`)
	bearer := appBearer(t, a)
	acct := a.create("accounts", map[string]any{"name": "Contoso"})
	r := a.do("POST", "contacts", map[string]any{
		"firstname": "Nancy", "lastname": "Anderson", "jobtitle": "Buyer", "creditlimit": 10000,
		"birthdate": "1980-02-03T04:05:06Z", "preferredcontactmethodcode": 1, "interests": "100000002,100000000",
		"parentcustomerid@odata.bind": "accounts(" + acct + ")",
	}, "Authorization", bearer).must(t, http.StatusNoContent)
	id := r.header.Get("OData-EntityId")
	id = id[strings.LastIndex(id, "(")+1 : len(id)-1]
	a.do("PATCH", "contacts("+id+")", map[string]any{"firstname": "Nan"}, "Authorization", bearer).must(t, http.StatusNoContent)
	a.do("PATCH", "contacts("+id+")", map[string]any{"jobtitle": "Purchasing Manager", "preferredcontactmethodcode": 2}, "Authorization", bearer).must(t, http.StatusNoContent)
	a.do("DELETE", "contacts("+id+")", nil, "Authorization", bearer).must(t, http.StatusNoContent)

	waitFor(t, "three contexts", func() bool { return len(rc.calls()) >= 3 })
	drain(t, srv)
	byMsg := map[string]hookCall{}
	for _, c := range rc.calls() {
		byMsg[c.ctx["MessageName"].(string)] = c
	}
	if n := len(rc.calls()); n != 3 || len(byMsg) != 3 {
		t.Fatalf("got %d contexts for %v; want Create, Update and Delete once (the firstname update is filtered out)", n, byMsg)
	}
	if f := srv.WebhookFailures(); len(f) != 0 {
		t.Fatalf("failures: %+v", f)
	}

	for msg, c := range byMsg {
		ctx := c.ctx
		for name, want := range map[string]string{
			"x-ms-dynamics-entity-name": "contact", "x-ms-dynamics-request-name": msg,
			"x-ms-dynamics-organization": "contoso", "Content-Type": "application/json",
			"x-ms-correlation-request-id": ctx["CorrelationId"].(string),
		} {
			if got := c.header.Get(name); got != want {
				t.Errorf("%s: header %s = %q, want %q", msg, name, got, want)
			}
		}
		if ctx["UserId"] != appUserID || ctx["InitiatingUserId"] != appUserID {
			t.Errorf("%s: UserId %v, InitiatingUserId %v; want the application user", msg, ctx["UserId"], ctx["InitiatingUserId"])
		}
		if ctx["PrimaryEntityName"] != "contact" || ctx["PrimaryEntityId"] != id || ctx["Stage"] != json.Number("40") ||
			ctx["Mode"] != json.Number("1") || ctx["Depth"] != json.Number("1") || ctx["SecondaryEntityName"] != "none" ||
			ctx["OrganizationName"] != "contoso" || ctx["ParentContext"] != nil {
			t.Errorf("%s: context %v", msg, ctx)
		}
		if own := ctx["OwningExtension"].(map[string]any); own["LogicalName"] != "sdkmessageprocessingstep" {
			t.Errorf("%s: OwningExtension %v", msg, own)
		}
		if !bytes.Contains(c.body, []byte(`"OperationCreatedOn":"\/Date(`)) {
			t.Errorf("%s: dates are not written as \\/Date(ms)\\/: %s", msg, c.body)
		}
	}

	create := byMsg["Create"].ctx
	target := pairs(t, create["InputParameters"])["Target"].(map[string]any)
	if target["__type"] != "Entity:http://schemas.microsoft.com/xrm/2011/Contracts" || target["LogicalName"] != "contact" || target["Id"] != id {
		t.Errorf("Create Target %v", target)
	}
	attrs := entityAttrs(t, target)
	if attrs["firstname"] != "Nancy" || attrs["contactid"] != id || attrs["birthdate"] != "/Date(318398706000)/" {
		t.Errorf("Create Target attributes %v", attrs)
	}
	if v := attrs["preferredcontactmethodcode"].(map[string]any); v["__type"] != "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts" || v["Value"] != json.Number("1") {
		t.Errorf("choice %v", v)
	}
	// A multi-select choice is an OptionSetValueCollection: one OptionSetValue per choice.
	if v, _ := attrs["interests"].([]any); len(v) != 2 || v[0].(map[string]any)["__type"] != "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts" ||
		v[0].(map[string]any)["Value"] != json.Number("100000002") || v[1].(map[string]any)["Value"] != json.Number("100000000") {
		t.Errorf("multi-select choice %v", attrs["interests"])
	}
	if v := attrs["creditlimit"].(map[string]any); v["__type"] != "Money:http://schemas.microsoft.com/xrm/2011/Contracts" || v["Value"] != json.Number("10000.0000") {
		t.Errorf("money %v", v)
	}
	if v := attrs["parentcustomerid"].(map[string]any); v["__type"] != "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts" || v["Id"] != acct || v["LogicalName"] != "account" {
		t.Errorf("lookup %v", v)
	}
	if v := attrs["createdby"].(map[string]any); v["Id"] != appUserID || v["LogicalName"] != "systemuser" {
		t.Errorf("createdby %v", v)
	}
	if out := pairs(t, create["OutputParameters"]); out["id"] != id {
		t.Errorf("Create OutputParameters %v", out)
	}
	post := pairs(t, create["PostEntityImages"])
	if img, ok := post["PostImage"].(map[string]any); !ok || img["__type"] != nil || entityAttrs(t, img)["lastname"] != "Anderson" {
		t.Errorf("Create PostEntityImages %v", post)
	}
	if len(pairs(t, create["PreEntityImages"])) != 0 {
		t.Errorf("Create has pre images: %v", create["PreEntityImages"])
	}

	update := byMsg["Update"].ctx
	attrs = entityAttrs(t, pairs(t, update["InputParameters"])["Target"])
	if attrs["jobtitle"] != "Purchasing Manager" || attrs["firstname"] != nil || attrs["contactid"] != id || attrs["modifiedon"] == nil {
		t.Errorf("Update Target attributes %v", attrs)
	}
	pre, post := pairs(t, update["PreEntityImages"]), pairs(t, update["PostEntityImages"])
	if got := entityAttrs(t, pre["Img"]); got["jobtitle"] != "Buyer" || got["firstname"] != "Nan" {
		t.Errorf("Update pre image %v", got)
	}
	if got := entityAttrs(t, post["Img"]); got["jobtitle"] != "Purchasing Manager" || got["preferredcontactmethodcode"].(map[string]any)["Value"] != json.Number("2") {
		t.Errorf("Update post image %v", got)
	}
	if got := entityAttrs(t, pre["Names"]); len(got) != 2 || got["lastname"] != "Anderson" {
		t.Errorf("Update pre image with attributes %v", got)
	}

	del := byMsg["Delete"].ctx
	ref := pairs(t, del["InputParameters"])["Target"].(map[string]any)
	if ref["__type"] != "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts" || ref["Id"] != id || ref["LogicalName"] != "contact" {
		t.Errorf("Delete Target %v", ref)
	}
	if got := entityAttrs(t, pairs(t, del["PreEntityImages"])["PreImage"]); got["jobtitle"] != "Purchasing Manager" {
		t.Errorf("Delete pre image %v", got)
	}
}

func TestWebhookWrongKeyNeverReachesReceiver(t *testing.T) {
	rc, url := startReceiver(t, nil)
	a, srv := startHooks(t, `
  - name: wrong
    url: `+url+`/hook
    auth: {type: webhookkey, value: wrong-key}
    steps: [{message: Create, table: contact}]
  - name: header
    url: `+url+`/header
    auth: {type: header, values: {X-Hook-Key: right-key}}
    steps: [{message: Create, table: contact}]
`)
	a.create("contacts", map[string]any{"lastname": "Anderson"})
	waitFor(t, "the failure", func() bool { return len(srv.WebhookFailures()) == 1 && len(rc.calls()) == 1 })
	drain(t, srv)
	if calls := rc.calls(); len(calls) != 1 || calls[0].path != "/header" {
		t.Fatalf("accepted %v; want only the header-authenticated endpoint", calls)
	}
	f := srv.WebhookFailures()[0]
	if f.Webhook != "wrong" || f.StatusCode != http.StatusUnauthorized || f.Attempts != 1 || f.Message != "Create" || f.Table != "contact" || f.Sync {
		t.Errorf("failure %+v", f)
	}
	if strings.Contains(f.Err, "wrong-key") {
		t.Errorf("the failure shows the key: %s", f.Err)
	}
}

func TestWebhookAsyncRetry(t *testing.T) {
	rc, url := startReceiver(t, map[string][]int{
		"/flaky": {http.StatusServiceUnavailable},
		"/down":  {http.StatusBadGateway, http.StatusGatewayTimeout, http.StatusServiceUnavailable},
		"/fails": {http.StatusInternalServerError},
	})
	a, srv := startHooks(t, `
  - {name: flaky, url: `+url+`/flaky, auth: {type: webhookkey, value: right-key}, steps: [{message: Create, table: contact}]}
  - {name: down, url: `+url+`/down, auth: {type: querystring, values: {code: right-key}}, steps: [{message: Create, table: contact}]}
  - {name: fails, url: `+url+`/fails, auth: {type: webhookkey, value: right-key}, steps: [{message: Create, table: contact}]}
`)
	a.create("contacts", map[string]any{"lastname": "Anderson"})
	waitFor(t, "the deliveries", func() bool { return len(rc.calls()) == 1 && len(srv.WebhookFailures()) == 2 })
	drain(t, srv)
	if calls := rc.calls(); len(calls) != 1 || calls[0].path != "/flaky" {
		t.Errorf("accepted %v; want the flaky endpoint on its second attempt", calls)
	}
	for path, want := range map[string]int{"/flaky": 2, "/down": 2, "/fails": 1} {
		if got := rc.hitCount(path); got != want {
			t.Errorf("%s got %d requests, want %d", path, got, want)
		}
	}
	got := map[string]emulator.WebhookFailure{}
	for _, f := range srv.WebhookFailures() {
		got[f.Webhook] = f
	}
	if f := got["down"]; f.StatusCode != http.StatusGatewayTimeout || f.Attempts != 2 {
		t.Errorf("down: %+v", f)
	}
	if f := got["fails"]; f.StatusCode != http.StatusInternalServerError || f.Attempts != 1 {
		t.Errorf("fails: %+v", f)
	}
}

func TestWebhookSyncFailureFailsWrite(t *testing.T) {
	rc, url := startReceiver(t, map[string][]int{"/sync": {http.StatusInternalServerError}})
	a, srv := startHooks(t, `
  - name: gate
    url: `+url+`/sync
    auth: {type: webhookkey, value: right-key}
    steps: [{message: Create, table: contact, mode: sync, stage: 20}]
`)
	r := a.do("POST", "contacts", map[string]any{"lastname": "Refused"})
	wantErr(t, r, http.StatusBadRequest, "0x80040265", "failed")
	if rows := a.do("GET", "contacts", nil).must(t, http.StatusOK).rows(t); len(rows) != 0 {
		t.Fatalf("the refused create was stored: %v", rows)
	}
	if f := srv.WebhookFailures(); len(f) != 1 || !f[0].Sync || f[0].StatusCode != http.StatusInternalServerError {
		t.Fatalf("failures %+v", f)
	}

	// The receiver accepts from now on: the write succeeds, and the
	// context arrived before the answer.
	a.create("contacts", map[string]any{"lastname": "Accepted"})
	calls := rc.calls()
	if len(calls) != 1 || calls[0].ctx["Mode"] != json.Number("0") || calls[0].ctx["Stage"] != json.Number("20") || calls[0].ctx["IsInTransaction"] != true {
		t.Fatalf("sync calls %v", calls)
	}
	if out := pairs(t, calls[0].ctx["OutputParameters"]); len(out) != 0 {
		t.Errorf("a pre-operation step has output parameters: %v", out)
	}
}

func TestWebhookBulkBatchAndTrimming(t *testing.T) {
	rc, url := startReceiver(t, nil)
	a, srv := startHooks(t, `
  - name: all
    url: `+url+`/hook
    auth: {type: webhookkey, value: right-key}
    steps: [{message: Create, table: contact, images: [{type: post}]}]
`)
	a.do("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "Bulk 1"},
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "Bulk 2"},
	}}).must(t, http.StatusOK)
	// A failed bulk message is rolled back: its contexts are never sent.
	a.do("POST", "contacts/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "Rolled back"},
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "Rolled back", "preferredcontactmethodcode": 9},
	}})

	batch := "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n" +
		"--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n" +
		"POST " + a.base + "/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"lastname\":\"Batch\"}\r\n" +
		"--cs--\r\n--b--\r\n"
	a.do("POST", "$batch", batch, "Content-Type", "multipart/mixed; boundary=b").must(t, http.StatusOK)
	// A change set that fails after a create rolls it back: no context.
	failing := "--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n" +
		"--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n" +
		"POST " + a.base + "/contacts HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"lastname\":\"Rolled back\"}\r\n" +
		"--cs\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 2\r\n\r\n" +
		"PATCH " + a.base + "/contacts(00000000-0000-0000-0000-000000000001) HTTP/1.1\r\nContent-Type: application/json\r\nIf-Match: *\r\n\r\n{\"lastname\":\"x\"}\r\n" +
		"--cs--\r\n--b--\r\n"
	if r := a.do("POST", "$batch", failing, "Content-Type", "multipart/mixed; boundary=b").must(t, http.StatusOK); !bytes.Contains(r.body, []byte("404")) {
		t.Fatalf("the change set did not fail: %s", r.body)
	}

	big := strings.Repeat("x", 300<<10)
	a.create("contacts", map[string]any{"lastname": "Big", "description": big})

	waitFor(t, "four contexts", func() bool { return len(rc.calls()) >= 4 })
	drain(t, srv)
	names := map[string]hookCall{}
	for _, c := range rc.calls() {
		names[c.header.Get("x-ms-correlation-request-id")] = c
	}
	var got []string
	var trimmed *hookCall
	for _, c := range rc.calls() {
		if c.header.Get("x-ms-dynamics-msg-size-exceeded") != "" {
			trimmed = &c
			continue
		}
		attrs := entityAttrs(t, pairs(t, c.ctx["InputParameters"])["Target"])
		// A Create Target holds the columns the request sent and the
		// platform's, not every column of the stored row.
		if _, ok := attrs["versionnumber"]; ok {
			t.Errorf("Create Target of %v carries versionnumber: %v", attrs["lastname"], attrs)
		}
		got = append(got, attrs["lastname"].(string))
	}
	if len(rc.calls()) != 4 || len(names) != 4 || trimmed == nil || len(got) != 3 {
		t.Fatalf("contexts for %v (trimmed one: %v); want Bulk 1, Bulk 2, Batch and a trimmed one", got, trimmed != nil)
	}
	if len(trimmed.body) > 256<<10 || len(pairs(t, trimmed.ctx["InputParameters"])) != 0 || len(pairs(t, trimmed.ctx["PostEntityImages"])) != 0 {
		t.Errorf("the large context was not trimmed: %d bytes", len(trimmed.body))
	}
	if trimmed.ctx["MessageName"] != "Create" || trimmed.ctx["PrimaryEntityId"] == nil {
		t.Errorf("trimmed context %v", trimmed.ctx)
	}
}

func TestWebhookSchemaErrors(t *testing.T) {
	_, err := emulator.ParseSchema(fmt.Appendf(nil, hookSchema, `
  - name: bad
    url: ftp://example.com
    auth: {type: basic}
    steps:
      - {message: Merge, table: nope}
      - {message: Create, table: contact, mode: async, stage: 20, images: [{type: pre}]}
      - {message: Delete, table: contact, filtering_attributes: [jobtitle], images: [{type: post}]}
`), "hooks.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"webhooks[0].url:", `webhooks[0].auth.type: unknown auth type "basic"`,
		`webhooks[0].steps[0].message: "Merge"`, `webhooks[0].steps[0].table: "nope"`,
		"webhooks[0].steps[1].mode: asynchronous steps are post-operation", "webhooks[0].steps[1].images[0].type: a Create step has no pre image",
		"webhooks[0].steps[2].filtering_attributes: only Update steps", "webhooks[0].steps[2].images[0].type: a Delete step has no post image",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestWebhookClose(t *testing.T) {
	rc, url := startReceiver(t, nil)
	a, srv := startHooks(t, `
  - {name: audit, url: `+url+`/hook, auth: {type: webhookkey, value: right-key}, steps: [{message: Create, table: contact}]}
`)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Writes go on after Close; their runs are recorded as never started.
	a.create("contacts", map[string]any{"lastname": "After close"})
	f := srv.WebhookFailures()
	if len(f) != 1 || f[0].Attempts != 0 || !strings.Contains(f[0].Err, "closed") {
		t.Fatalf("failures %+v", f)
	}
	if n := rc.hitCount("/hook"); n != 0 {
		t.Fatalf("the receiver got %d requests after Close", n)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
