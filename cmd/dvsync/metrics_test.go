package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAdapterMetrics scrapes a running daemon's /metrics while the
// emulator throttles its first writes: the Dataverse request, 429 and
// retry counters move, the concurrency gauges are there, and the
// PostgreSQL slot lag appears once the heartbeat has measured it, all
// under the pipeline's label.
func TestAdapterMetrics(t *testing.T) {
	e := newE2E(t)
	dir := filepath.Join(e.dir, "conf")
	writeFile(t, filepath.Join(dir, "dvsync.yaml"), `version: 1
http: {listen: "${DVSYNC_HTTP}"}
state: {path: "${DVSYNC_STATE}"}
dataverse:
  url: ${DATAVERSE_URL}
  auth: {token: "${DATAVERSE_TOKEN}"}
connections:
  app: {type: postgres, dsn: "${PG_DSN}", heartbeat_interval: 100ms}
mappings: [mappings/*.yaml]
`)
	writeFile(t, filepath.Join(dir, "mappings", "customers.yaml"), fmt.Sprintf(customersMapping, "telephone1"))
	d := e.startDaemonWith(filepath.Join(dir, "dvsync.yaml"))

	// The lag appears with the first heartbeat, before any write.
	const pipe = `pipeline="app"`
	waitUntil(t, 30*time.Second, func() bool {
		_, ok := scrape(t, d.httpAddr)[`dvsync_postgres_slot_lag_bytes{`+pipe+`}`]
		return ok
	})

	// The next three requests to accounts are answered 429.
	e.setFaults(t, `{"throttle_rate":1,"count":3,"match":"accounts","retry_after_seconds":0.05}`)
	e.exec(`INSERT INTO customers VALUES (1, 'a', NULL, '1', 1, 1), (2, 'b', NULL, '2', 2, 2)`)
	// Only the daemon talks to the emulator until the faults are spent:
	// the test's own reads would use them up.
	waitUntil(t, 30*time.Second, func() bool {
		return scrape(t, d.httpAddr)[`dvsync_engine_records_written_total{op="insert",`+pipe+`,table="public.customers"}`] == 2
	})
	m := scrape(t, d.httpAddr)
	if got, _, err := e.dataverseRows(); err != nil || len(got) != 2 {
		t.Errorf("Dataverse holds %v, %v; want both rows", got, err)
	}
	for _, c := range []struct {
		name string
		min  float64
	}{
		{"dvsync_dataverse_requests_total", 4}, // three throttled and the one that went through
		{"dvsync_dataverse_throttled_total", 3},
		{"dvsync_dataverse_retries_total", 3},
		{"dvsync_dataverse_concurrency_limit", 1},
		{"dvsync_dataverse_concurrency_ceiling", 1},
	} {
		v, ok := m[c.name+"{"+pipe+"}"]
		if !ok || v < c.min {
			t.Errorf("%s{%s} = %v (present: %v), want at least %v", c.name, pipe, v, ok, c.min)
		}
	}
	if _, ok := m[`dvsync_dataverse_requests_in_flight{`+pipe+`}`]; !ok {
		t.Error("no in-flight gauge")
	}
	if v := m[`dvsync_postgres_slot_lag_bytes{`+pipe+`}`]; v < 0 {
		t.Errorf("slot lag %v bytes", v)
	}
}

// setFaults replaces the emulator's injected faults through its admin
// endpoint.
func (e *e2e) setFaults(t *testing.T, body string) {
	t.Helper()
	var url, token string
	for _, kv := range e.env {
		if v, ok := strings.CutPrefix(kv, "DATAVERSE_URL="); ok {
			url = v
		}
		if v, ok := strings.CutPrefix(kv, "DATAVERSE_TOKEN="); ok {
			token = v
		}
	}
	req, err := http.NewRequest(http.MethodPut, url+"/_emulator/faults", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT /_emulator/faults: status %d", resp.StatusCode)
	}
}
