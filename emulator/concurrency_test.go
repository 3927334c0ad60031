package emulator_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// expect sends a request from any goroutine and reports a wrong status with
// t.Errorf; it returns nil when the request failed.
func expect(t *testing.T, a *api, status int, method, path string, body any, headers ...string) *response {
	r, err := a.send(method, path, body, headers...)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return nil
	}
	if r.status != status {
		t.Errorf("%s %s: status %d, want %d: %s", method, path, r.status, status, r.body)
		return nil
	}
	return r
}

// TestConcurrentUpserts drives one key from many goroutines: exactly one
// request creates the row, every write gets its own version, and the key
// index never holds two rows.
func TestConcurrentUpserts(t *testing.T) {
	a := startAPI(t)
	const writers, each = 8, 10
	var (
		mu      sync.Mutex
		created int
		etags   = map[string]bool{}
		wg      sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r, err := a.send("PATCH", "accounts(accountnumber='HOT')?$select=accountid",
					map[string]any{"numberofemployees": w*each + i}, "Prefer", "return=representation")
				if err != nil || (r.status != http.StatusCreated && r.status != http.StatusOK) {
					t.Errorf("upsert: %v %+v", err, r)
					return
				}
				mu.Lock()
				if r.status == http.StatusCreated {
					created++
				}
				etags[r.header.Get("ETag")] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if created != 1 {
		t.Errorf("%d upserts created the row, want 1", created)
	}
	if len(etags) != writers*each {
		t.Errorf("%d distinct ETags for %d writes", len(etags), writers*each)
	}
	rows := a.do("GET", "accounts?$filter=accountnumber%20eq%20'HOT'", nil).must(t, http.StatusOK).rows(t)
	if len(rows) != 1 {
		t.Fatalf("%d rows hold the key", len(rows))
	}
	if got := rows[0]["@odata.etag"].(string); !etags[got] {
		t.Errorf("final ETag %s was never returned to a writer", got)
	}
}

// TestConcurrentMixedLoad runs creates, updates, deletes, reads and lists on
// two tables at once; under -race it checks the locking, and afterwards
// every surviving row is readable by its key.
func TestConcurrentMixedLoad(t *testing.T) {
	a := startAPI(t)
	const workers, each = 6, 15
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				num := fmt.Sprintf("W%d-%d", w, i)
				if expect(t, a, 204, "POST", "accounts", map[string]any{"accountnumber": num, "name": num}) == nil ||
					expect(t, a, 204, "PATCH", "accounts(accountnumber='"+num+"')", map[string]any{"numberofemployees": i}, "If-Match", "*") == nil ||
					expect(t, a, 204, "POST", "contacts", map[string]any{
						"lastname":                            num,
						"emailaddress1":                       num + "@example.com",
						"parentcustomerid_account@odata.bind": "/accounts(accountnumber='" + num + "')",
					}) == nil ||
					expect(t, a, 200, "GET", "accounts?$filter=numberofemployees%20ge%205&$orderby=name%20desc", nil, "Prefer", "odata.maxpagesize=7") == nil ||
					expect(t, a, 200, "GET", "contacts(emailaddress1='"+num+"@example.com')", nil) == nil {
					return
				}
				if i%3 == 0 && expect(t, a, 204, "DELETE", "accounts(accountnumber='"+num+"')", nil) == nil {
					return
				}
			}
		})
	}
	wg.Wait()

	rows := a.do("GET", "accounts?$select=accountnumber", nil).must(t, http.StatusOK).rows(t)
	if want := workers * (each - (each+2)/3); len(rows) != want {
		t.Errorf("%d accounts left, want %d", len(rows), want)
	}
	for _, r := range rows {
		a.get("accounts(accountnumber='" + r["accountnumber"].(string) + "')")
	}
	if n := len(a.do("GET", "contacts", nil).must(t, http.StatusOK).rows(t)); n != workers*each {
		t.Errorf("%d contacts, want %d", n, workers*each)
	}
}

// TestChangesetsUnderConcurrentWrites runs failing change sets against the
// same table while other clients write to it: every change set is rolled
// back completely and no other write is lost.
func TestChangesetsUnderConcurrentWrites(t *testing.T) {
	a := startAPI(t)
	a.create("accounts", map[string]any{"name": "holder", "accountnumber": "TAKEN"})
	const rounds, writers = 10, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				expect(t, a, http.StatusNoContent, "POST", "accounts",
					map[string]any{"name": "plain", "accountnumber": fmt.Sprintf("W%d-%d", w, i)})
			}
		})
	}
	wg.Go(func() {
		for i := range rounds {
			body := batchBody("\r\n", []batchReq{
				{method: "POST", target: "accounts", contentID: "1", body: fmt.Sprintf(`{"name":"doomed","accountnumber":"CS-%d"}`, i)},
				{method: "POST", target: "accounts/Microsoft.Dynamics.CRM.CreateMultiple", contentID: "2",
					body: `{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.account","name":"doomed"}]}`},
				{method: "POST", target: "accounts", contentID: "3", body: `{"name":"doomed","accountnumber":"TAKEN"}`},
			})
			expect(t, a, http.StatusOK, "POST", "$batch", body, "Content-Type", "multipart/mixed;boundary=batch_test")
		}
	})
	wg.Wait()
	rows := a.do("GET", "accounts?$select=name", nil).must(t, http.StatusOK).rows(t)
	plain := 0
	for _, r := range rows {
		switch r["name"] {
		case "doomed":
			t.Errorf("a rolled-back row survived: %v", r)
		case "plain":
			plain++
		}
	}
	if plain != rounds*writers {
		t.Errorf("%d plain rows, want %d", plain, rounds*writers)
	}
}
