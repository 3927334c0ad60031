package emulator_test

import (
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

// gatedReceiver is a webhook endpoint that holds every request until open
// is called, so that runs pile up in the emulator's queue, then records
// the record id of each context it accepts.
type gatedReceiver struct {
	gate     chan struct{}
	openOnce sync.Once

	mu      sync.Mutex
	arrived int                 // requests that reached the handler
	ids     map[string]struct{} // PrimaryEntityId of each accepted context
	dups    int
}

func startGatedReceiver(t *testing.T) (*gatedReceiver, string) {
	t.Helper()
	rc := &gatedReceiver{gate: make(chan struct{}), ids: map[string]struct{}{}}
	hs := httptest.NewServer(http.HandlerFunc(rc.serve))
	// Open before closing, or Close would wait for the held requests.
	t.Cleanup(hs.Close)
	t.Cleanup(rc.open)
	return rc, hs.URL
}

func (rc *gatedReceiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	rc.arrived++
	rc.mu.Unlock()
	select {
	case <-rc.gate:
	case <-r.Context().Done():
		return
	}
	var ctx struct {
		ID string `json:"PrimaryEntityId"`
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &ctx); err != nil || ctx.ID == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	if _, ok := rc.ids[ctx.ID]; ok {
		rc.dups++
	}
	rc.ids[ctx.ID] = struct{}{}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (rc *gatedReceiver) open() { rc.openOnce.Do(func() { close(rc.gate) }) }

func (rc *gatedReceiver) counts() (arrived, accepted, dups int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.arrived, len(rc.ids), rc.dups
}

// TestWebhookQueueNeverDrops queues 11,000 asynchronous runs, more than
// the 10,000 the queue used to hold, behind a receiver that answers none of
// them until every write is done: all of them must arrive, once each, as
// Dataverse's durable queue delivers them. (More runs prove no more and
// cost minutes under the race detector.)
func TestWebhookQueueNeverDrops(t *testing.T) {
	const rows, perMessage = 11_000, 1000
	rc, url := startGatedReceiver(t)
	a, srv := startHooks(t, `
  - {name: audit, url: `+url+`/hook, auth: {type: webhookkey, value: right-key}, steps: [{message: Create, table: account}]}
`)
	targets := make([]any, perMessage)
	for n := 0; n < rows; n += perMessage {
		for i := range targets {
			targets[i] = map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": fmt.Sprintf("Account %d", n+i)}
		}
		a.do("POST", "accounts/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": targets}).must(t, http.StatusOK)
	}
	if f := srv.WebhookFailures(); len(f) != 0 {
		t.Fatalf("%d runs failed while queued, the first: %+v", len(f), f[0])
	}
	rc.open()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, accepted, dups := rc.counts(); accepted != rows || dups != 0 {
		t.Fatalf("the receiver accepted %d distinct contexts (%d repeated); want %d", accepted, dups, rows)
	}
	if f := srv.WebhookFailures(); len(f) != 0 {
		t.Fatalf("%d runs failed, the first: %+v", len(f), f[0])
	}
}

// TestWebhookQueueLimit checks that an operator's limit on the runs waiting
// fails the runs past it, and only those.
func TestWebhookQueueLimit(t *testing.T) {
	const workers, limit = 4, 3
	rc, url := startGatedReceiver(t)
	a, srv := startHooksWith(t, `
  - {name: audit, url: `+url+`/hook, auth: {type: webhookkey, value: right-key}, steps: [{message: Create, table: account}]}
`, emulator.Options{WebhookQueueLimit: limit})
	// Occupy every worker with a request the receiver holds.
	for i := range workers {
		a.create("accounts", map[string]any{"name": fmt.Sprintf("In flight %d", i)})
		waitFor(t, "the run to reach the receiver", func() bool { arrived, _, _ := rc.counts(); return arrived == i+1 })
	}
	for i := range limit + 2 {
		a.create("accounts", map[string]any{"name": fmt.Sprintf("Queued %d", i)})
	}
	f := srv.WebhookFailures()
	if len(f) != 2 || f[0].Attempts != 0 || !strings.Contains(f[0].Err, "queue is full (3 runs waiting)") {
		t.Fatalf("failures %+v; want the two runs past the limit", f)
	}
	rc.open()
	drain(t, srv)
	if _, accepted, _ := rc.counts(); accepted != workers+limit {
		t.Fatalf("the receiver accepted %d contexts; want %d", accepted, workers+limit)
	}
}
