package dvevent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
)

const emulatorSchema = `
version: 1
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
      - {name: lastname, type: string}
      - {name: creditlimit, type: money}
      - {name: birthdate, type: datetime}
      - {name: preferredcontactmethodcode, type: picklist, options: [1, 2, 3]}
      - {name: interests, type: multiselectpicklist, options: [100000000, 100000001, 100000002]}
      - {name: parentcustomerid, type: lookup, targets: [account, contact]}
webhooks:
  - name: capture
    url: %s
    auth: {type: webhookkey, value: k}
    steps:
      - {message: Create, table: contact, images: [{type: post}]}
      - {message: Update, table: contact, images: [{type: both}]}
      - {message: Delete, table: contact, images: [{type: pre}]}
`

// TestDecodeEmulatorContexts decodes the contexts the emulator posts for a
// create, an update and a delete, every typed value included.
func TestDecodeEmulatorContexts(t *testing.T) {
	arrived := make(chan []byte, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		arrived <- b
	}))
	t.Cleanup(hook.Close)
	emu := testenv.StartEmulator(t, fmtSchema(hook.URL))

	send := func(method, path, body string) string {
		t.Helper()
		req, err := http.NewRequestWithContext(context.Background(), method, emu.URL+"/api/data/v9.2/"+path, bytes.NewReader([]byte(body)))
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
		var row map[string]any
		_ = json.Unmarshal(out, &row)
		s, _ := row["contactid"].(string)
		if s == "" {
			s, _ = row["accountid"].(string)
		}
		return s
	}
	account := send("POST", "accounts", `{"name":"Contoso"}`)
	contact := send("POST", "contacts", `{"lastname":"Anderson","creditlimit":1234.5,"birthdate":"1990-05-01T00:00:00Z",
		"preferredcontactmethodcode":2,"interests":"100000000,100000002","parentcustomerid_account@odata.bind":"/accounts(`+account+`)"}`)
	send("PATCH", "contacts("+contact+")", `{"lastname":"Smith"}`)
	send("DELETE", "contacts("+contact+")", ``)

	var bodies [][]byte
	timeout := time.After(10 * time.Second)
	for len(bodies) < 3 {
		select {
		case b := <-arrived:
			bodies = append(bodies, b)
		case <-timeout:
			t.Fatalf("%d webhook calls arrived, want 3", len(bodies))
		}
	}
	var recs = map[change.Op]change.Record{}
	for _, b := range bodies {
		ev, err := Decode(b)
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		rec, err := ev.Record()
		if err != nil {
			t.Fatal(err)
		}
		if rec.Key[0].Name != "contactid" || rec.Key[0].Value.String() != contact {
			t.Errorf("%s key = %s", rec.Op, rec.Key)
		}
		if _, ok := ev.Version(); !ok {
			t.Errorf("%s: no versionnumber in the images", rec.Op)
		}
		recs[rec.Op] = rec
	}
	created := recs[change.OpInsert].After
	for name, want := range map[string]change.Value{
		"lastname":                            change.Text("Anderson"),
		"creditlimit":                         change.MustDecimal("1234.5000"),
		"birthdate":                           change.Timestamp(time.Date(1990, 5, 1, 0, 0, 0, 0, time.UTC)),
		"preferredcontactmethodcode":          change.Int(2),
		"interests":                           change.Text("100000000,100000002"),
		"parentcustomerid":                    uuidValue(t, account),
		"parentcustomerid" + LookupNameSuffix: change.Text("account"),
	} {
		if got, _ := created.Get(name); !got.Equal(want) {
			t.Errorf("created %s = %s %s, want %s %s", name, got.Kind(), got, want.Kind(), want)
		}
	}
	upd := recs[change.OpUpdate]
	if b, _ := upd.Before.Get("lastname"); b.String() != "Anderson" {
		t.Errorf("update Before lastname = %s", b)
	}
	if a, _ := upd.After.Get("lastname"); a.String() != "Smith" {
		t.Errorf("update After lastname = %s", a)
	}
	if del := recs[change.OpDelete]; del.After != nil || del.Before == nil {
		t.Errorf("delete After %v, Before %v", del.After, del.Before)
	}
}

func fmtSchema(url string) string {
	return string(bytes.Replace([]byte(emulatorSchema), []byte("%s"), []byte(url), 1))
}
