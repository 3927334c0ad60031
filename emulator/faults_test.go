package emulator_test

import (
	"net/http"
	"testing"

	"github.com/dvsync/dvsync/emulator"
)

func TestFaultEndpoint(t *testing.T) {
	a := startAPI(t)
	set := func(body string) *response {
		return a.do("PUT", "/_emulator/faults", body)
	}

	set(`{"throttle_rate":1,"retry_after_seconds":7,"count":2}`).must(t, http.StatusOK)
	for range 2 {
		r := a.do("GET", "accounts", nil)
		wantErr(t, r, http.StatusTooManyRequests, "0x80072322", "Number of requests exceeded")
		if r.header.Get("Retry-After") != "7" {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
	}
	a.do("GET", "accounts", nil).must(t, http.StatusOK)

	set(`{"error_rate":1,"error_status":502,"count":1,"match":"contacts"}`).must(t, http.StatusOK)
	a.do("GET", "accounts", nil).must(t, http.StatusOK)
	wantErr(t, a.do("GET", "contacts", nil), http.StatusBadGateway, "0x80040216", "injected fault")
	a.do("GET", "contacts", nil).must(t, http.StatusOK)

	// A POST, because net/http retries an idempotent request whose reused
	// connection closed before answering.
	set(`{"drop_rate":1,"count":1}`).must(t, http.StatusOK)
	if r, err := a.send("POST", "accounts", map[string]any{"name": "dropped"}); err == nil {
		t.Fatalf("dropped request got an answer: %d", r.status)
	}
	if n := len(a.do("GET", "accounts", nil).must(t, http.StatusOK).rows(t)); n != 0 {
		t.Errorf("%d accounts after a dropped create", n)
	}

	set(`{"latency_ms":1,"error_rate":0.5}`).must(t, http.StatusOK)
	got := a.do("GET", "/_emulator/faults", nil).must(t, http.StatusOK).obj(t)
	if num(t, got["latency_ms"]) != "1" || num(t, got["error_rate"]) != "0.5" {
		t.Errorf("faults %v", got)
	}
	a.do("DELETE", "/_emulator/faults", nil).must(t, http.StatusOK)
	for range 10 {
		a.do("GET", "accounts", nil).must(t, http.StatusOK)
	}

	wantErr(t, set(`{"error_rate":2}`), http.StatusBadRequest, "0x80048d19", "between 0 and 1")
	wantErr(t, set(`{"eror_rate":1}`), http.StatusBadRequest, "0x80048d19", "unknown field")
	wantErr(t, set(`{"error_rate":1,"error_status":404}`), http.StatusBadRequest, "0x80048d19", "5xx")
	r := a.do("GET", "/_emulator/faults", nil, "Authorization", "Bearer wrong")
	wantErr(t, r, http.StatusUnauthorized, "0x80044302", "not authenticated")
}

func TestFaultsFromOptions(t *testing.T) {
	a := startWith(t, emulator.Options{Faults: emulator.Faults{ErrorRate: 1, Count: 1}})
	wantErr(t, a.do("GET", "accounts", nil), http.StatusServiceUnavailable, "0x80040216", "injected fault")
	a.do("GET", "accounts", nil).must(t, http.StatusOK)

	schema, err := emulator.ParseSchema([]byte(testSchema), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.New(schema, emulator.Options{Token: testToken, Faults: emulator.Faults{DropRate: -1}}); err == nil {
		t.Error("New accepted a negative fault rate")
	}
}

func TestReset(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"name": "A", "accountnumber": "R-1"})
	a.create("contacts", map[string]any{"lastname": "C"})
	before := a.get("accounts(" + id + ")")
	a.do("POST", "/_emulator/reset", nil).must(t, http.StatusNoContent)
	for _, set := range []string{"accounts", "contacts"} {
		if n := len(a.do("GET", set, nil).must(t, http.StatusOK).rows(t)); n != 0 {
			t.Errorf("%d %s after reset", n, set)
		}
	}
	a.do("GET", "accounts(accountnumber='R-1')", nil).must(t, http.StatusNotFound)
	again := a.create("accounts", map[string]any{"name": "A", "accountnumber": "R-1"})
	if etag := a.get("accounts(" + again + ")")["@odata.etag"]; etag == before["@odata.etag"] {
		t.Errorf("ETag %v reused after reset", etag)
	}
	a.do("GET", "/_emulator/reset", nil).must(t, http.StatusMethodNotAllowed)
}
