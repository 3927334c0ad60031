package dataverse

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/state"
)

const rowID = "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e"

func webhookConfig(addr string) Config {
	return Config{
		Name:       "dv",
		Webhook:    &WebhookConfig{Listen: addr, Auth: WebhookAuth{WebhookKey: hookKey}, MaxBodyBytes: 64 << 10},
		OwnUserIDs: []string{appUser},
		Tag:        "dvsync",
	}
}

// stored returns the entries and kept bodies of the store's inbox.
func stored(t *testing.T, s *state.Bolt) ([]state.InboxEntry, []state.KeptBody) {
	t.Helper()
	es, err := s.InboxEntries(context.Background(), "dv", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.InboxKept(context.Background(), "dv", 0)
	if err != nil {
		t.Fatal(err)
	}
	return es, kept
}

func TestWebhookAuth(t *testing.T) {
	for _, tc := range []struct {
		name   string
		auth   WebhookAuth
		query  string
		header http.Header
		want   int
	}{
		{"key right", WebhookAuth{WebhookKey: "k1"}, "?code=k1", nil, http.StatusOK},
		{"key wrong", WebhookAuth{WebhookKey: "k1"}, "?code=k2", nil, http.StatusUnauthorized},
		{"key missing", WebhookAuth{WebhookKey: "k1"}, "", nil, http.StatusUnauthorized},
		{"key prefix", WebhookAuth{WebhookKey: "k1"}, "?code=k", nil, http.StatusUnauthorized},
		{"header right", WebhookAuth{Headers: map[string]string{"X-Api-Key": "h1"}}, "", http.Header{"X-Api-Key": {"h1"}}, http.StatusOK},
		{"header wrong", WebhookAuth{Headers: map[string]string{"X-Api-Key": "h1"}}, "", http.Header{"X-Api-Key": {"h2"}}, http.StatusUnauthorized},
		{"header as query", WebhookAuth{Headers: map[string]string{"X-Api-Key": "h1"}}, "?X-Api-Key=h1", nil, http.StatusUnauthorized},
		{"query right", WebhookAuth{Query: map[string]string{"sig": "q1", "v": "2"}}, "?sig=q1&v=2", nil, http.StatusOK},
		{"query one missing", WebhookAuth{Query: map[string]string{"sig": "q1", "v": "2"}}, "?sig=q1", nil, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open, _ := openBolt(t)
			store := open()
			t.Cleanup(func() { store.Close() })
			cfg := webhookConfig("127.0.0.1:0")
			cfg.Webhook.Auth = tc.auth
			o := openSource(t, cfg, nil, store, nil)
			addr := o.src.Addr().String()
			status, _ := post(t, addr, tc.query, tc.header, hookBody("Update", rowID, person, 5))
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			es, kept := stored(t, store)
			if tc.want == http.StatusUnauthorized && (len(es) != 0 || len(kept) != 0) {
				t.Errorf("a refused request stored %d entries and kept %d bodies", len(es), len(kept))
			}
			if tc.want == http.StatusOK && len(es) != 1 {
				t.Errorf("an accepted request stored %d entries", len(es))
			}
		})
	}
}

func TestWebhookRefusals(t *testing.T) {
	open, _ := openBolt(t)
	store := open()
	t.Cleanup(func() { store.Close() })
	o := openSource(t, webhookConfig("127.0.0.1:0"), nil, store, nil)
	addr := o.src.Addr().String()
	key := "?code=" + hookKey

	big := hookBody("Update", rowID, person, 5, `"Padding":"`+strings.Repeat("x", 70<<10)+`"`)
	if status, _ := post(t, addr, key, nil, big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: status %d, want 413", status)
	}
	// A body without Content-Length is cut off at the limit too.
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+DefaultPath+key, struct{ *bytes.Reader }{bytes.NewReader(big)})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized chunked body: status %d, want 413", resp.StatusCode)
	}
	malformed := []byte(`{"MessageName":"Update","PrimaryEntityName":"contact"`)
	if status, _ := post(t, addr, key, nil, malformed); status != http.StatusBadRequest {
		t.Errorf("malformed JSON: status %d, want 400", status)
	}
	badValue := bytes.Replace(hookBody("Update", rowID, person, 5), []byte(`"value":"Doe"`), []byte(`"value":{"__type":"Unknown:x"}`), 1)
	if status, _ := post(t, addr, key, nil, badValue); status != http.StatusBadRequest {
		t.Errorf("unknown typed value: status %d, want 400", status)
	}
	if status, _ := post(t, addr, "?code="+hookKey+"x", nil, malformed); status != http.StatusUnauthorized {
		t.Errorf("malformed with a wrong key: status %d, want 401", status)
	}
	es, kept := stored(t, store)
	if len(es) != 0 {
		t.Errorf("refused requests stored %d entries", len(es))
	}
	if len(kept) != 2 || !bytes.Equal(kept[0].Body, malformed) || !strings.Contains(kept[0].Reason, "not a RemoteExecutionContext") ||
		!bytes.Equal(kept[1].Body, badValue) || !strings.Contains(kept[1].Reason, "Unknown") {
		t.Errorf("kept bodies = %+v", kept)
	}
	// GET is not how Dataverse calls.
	resp, err = http.Get("http://" + addr + DefaultPath + key)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
}

// TestWebhookOnceInOrder: a retried delivery, a late older version and
// dvsync's own changes are not applied; a delete outranks the version it
// deleted, and a delete delivered twice is applied once.
func TestWebhookOnceInOrder(t *testing.T) {
	open, _ := openBolt(t)
	store := open()
	t.Cleanup(func() { store.Close() })
	o := openSource(t, webhookConfig("127.0.0.1:0"), nil, store, nil)
	addr := o.src.Addr().String()
	key := "?code=" + hookKey
	const other = "11111111-2222-4333-8444-555555555555"
	for i, b := range [][]byte{
		hookBody("Update", rowID, person, 5),
		hookBody("Update", rowID, person, 5), // retried
		hookBody("Update", rowID, person, 4), // older, late
		hookBody("Update", rowID, appUser, 6),
		hookBody("Update", rowID, person, 7, `"SharedVariables":[{"key":"tag","value":"dvsync"}]`),
		hookBody("Update", other, person, 1),
		hookBody("Update", rowID, person, 5), // applied already, below dvsync's own 6, 7
		hookBody("Delete", rowID, person, 7),
		hookBody("Delete", rowID, person, 7),
	} {
		if status, msg := post(t, addr, key, nil, b); status != http.StatusOK {
			t.Fatalf("post %d: %d %s", i, status, msg)
		}
	}
	got := o.read(3)
	if got[0].Op != change.OpUpdate || keyID(got[0]) != rowID || got[0].Meta["versionnumber"] != "5" ||
		got[1].Op != change.OpUpdate || keyID(got[1]) != other ||
		got[2].Op != change.OpDelete || keyID(got[2]) != rowID {
		t.Errorf("records:%s", describe(got))
	}
	if got[0].Origin != (change.Origin{System: "dataverse", Name: person}) || got[0].Meta["source"] != "webhook" {
		t.Errorf("origin %+v, meta %v", got[0].Origin, got[0].Meta)
	}
	o.quiet(0)
}

// TestWebhookRestart: an event answered 2xx and never acked is returned
// again by a new source on the same store; acked ones are not.
func TestWebhookRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) func() Store
	}{
		{"bolt", func(t *testing.T) func() Store {
			open, _ := openBolt(t)
			return func() Store { return open() }
		}},
		{"postgres", postgresStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := tc.store(t)
			store := open()
			cfg := webhookConfig("127.0.0.1:0")
			o := openSource(t, cfg, nil, store, nil)
			addr := o.src.Addr().String()
			for v := int64(1); v <= 2; v++ {
				if status, msg := post(t, addr, "?code="+hookKey, nil, hookBody("Update", rowID, person, v)); status != http.StatusOK {
					t.Fatalf("post: %d %s", status, msg)
				}
			}
			first := o.read(2)
			if err := o.src.Ack(context.Background(), first[0].Position); err != nil {
				t.Fatal(err)
			}
			// "Killed" right after answering: closed without acking the second.
			o.close()
			closeStore(t, store)

			store = open()
			t.Cleanup(func() { closeStore(t, store) })
			again := openSource(t, cfg, nil, store, first[0].Position)
			got := again.read(1)
			if got[0].Meta["versionnumber"] != "2" || !bytes.Equal(got[0].Position, first[1].Position) {
				t.Errorf("after restart:%s", describe(got))
			}
			// The retried delivery of the event already stored is not applied twice.
			addr = again.src.Addr().String()
			if status, _ := post(t, addr, "?code="+hookKey, nil, hookBody("Update", rowID, person, 2)); status != http.StatusOK {
				t.Fatal(status)
			}
			again.quiet(1)
		})
	}
}

// A person's edit overtaken by dvsync's own write, whose webhook arrives
// first, is applied when it arrives, even after a restart; deliveries
// older than it, or retried, are not, and neither is dvsync's own version
// delivered again.
func TestWebhookChangeOvertakenByOwnWrite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) func() Store
	}{
		{"bolt", func(t *testing.T) func() Store {
			open, _ := openBolt(t)
			return func() Store { return open() }
		}},
		{"postgres", postgresStore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			open := tc.store(t)
			store := open()
			cfg := webhookConfig("127.0.0.1:0")
			o := openSource(t, cfg, nil, store, nil)
			send := func(o *opened, bodies ...[]byte) {
				t.Helper()
				for i, b := range bodies {
					if status, msg := post(t, o.src.Addr().String(), "?code="+hookKey, nil, b); status != http.StatusOK {
						t.Fatalf("post %d: %d %s", i, status, msg)
					}
				}
			}
			send(o,
				hookBody("Update", rowID, person, 10),
				hookBody("Update", rowID, appUser, 14), // dvsync's write over the person's 13
				hookBody("Update", rowID, person, 13),  // the person's edit, delivered late
				hookBody("Update", rowID, person, 13),  // retried
				hookBody("Update", rowID, person, 12),  // older than the edit applied
			)
			got := o.read(2)
			if got[0].Meta["versionnumber"] != "10" || got[1].Meta["versionnumber"] != "13" || got[1].Op != change.OpUpdate {
				t.Fatalf("records:%s", describe(got))
			}
			o.quiet(5)
			if err := o.src.Ack(context.Background(), got[1].Position); err != nil {
				t.Fatal(err)
			}

			// dvsync writes again; the person's edit it overtook arrives
			// after a restart.
			send(o, hookBody("Update", rowID, appUser, 17, `"SharedVariables":[{"key":"tag","value":"dvsync"}]`))
			o.close()
			closeStore(t, store)
			store = open()
			t.Cleanup(func() { closeStore(t, store) })
			again := openSource(t, cfg, nil, store, got[1].Position)
			send(again,
				hookBody("Update", rowID, person, 16),
				hookBody("Update", rowID, person, 17), // dvsync's own version, not its user's
				hookBody("Update", rowID, person, 15),
				hookBody("Update", rowID, person, 18), // a later edit, in order
			)
			later := again.read(2)
			if later[0].Meta["versionnumber"] != "16" || later[1].Meta["versionnumber"] != "18" {
				t.Errorf("after restart:%s", describe(later))
			}
			again.quiet(4)
		})
	}
}
