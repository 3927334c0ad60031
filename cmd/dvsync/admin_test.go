package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPauseAndResumeATable pauses a mapped table through the admin
// endpoint of a running daemon: its changes are held, not lost, and
// arrive on resume.
func TestPauseAndResumeATable(t *testing.T) {
	e := newE2E(t)
	e.env = append(e.env, adminTokenEnv+"=adm1n")
	cfg := e.writeConfig("telephone1")
	d := e.startDaemonWith(cfg)
	call := func(method, path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+d.httpAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const pause = "/admin/pause?pipeline=app&table=public.customers"
	if code, _ := call("POST", pause, ""); code != http.StatusUnauthorized {
		t.Errorf("pause without a token: status %d", code)
	}
	if code, _ := call("POST", pause, "wrong"); code != http.StatusUnauthorized {
		t.Errorf("pause with a wrong token: status %d", code)
	}
	if code, body := call("POST", "/admin/pause?pipeline=app&table=public.nope", "adm1n"); code != http.StatusNotFound ||
		!strings.Contains(body, "tables: public.customers") {
		t.Errorf("pause of an unmapped table: %d %s", code, body)
	}
	if code, body := call("POST", pause, "adm1n"); code != http.StatusOK {
		t.Fatalf("pause: %d %s", code, body)
	}

	e.exec(`INSERT INTO customers VALUES (1, 'held', NULL, NULL, 1, 1)`)
	waitUntil(t, 20*time.Second, func() bool {
		return scrape(t, d.httpAddr)[`dvsync_engine_paused_records{pipeline="app"}`] == 1
	})
	if _, err := e.accountField("1", "name"); err == nil {
		t.Fatal("a change of a paused table reached Dataverse")
	}
	if code, body := call("GET", "/admin/paused", "adm1n"); code != http.StatusOK || strings.TrimSpace(body) != `{"app":{"public.customers":1}}` {
		t.Errorf("paused: %d %s", code, body)
	}

	if code, body := call("POST", "/admin/resume?pipeline=app&table=public.customers", "adm1n"); code != http.StatusOK ||
		!strings.Contains(body, "1 held changes released") {
		t.Fatalf("resume: %d %s", code, body)
	}
	e.exec(`UPDATE customers SET name = 'released' WHERE id = 1`)
	waitUntil(t, 20*time.Second, func() bool {
		name, err := e.accountField("1", "name")
		return err == nil && name == "released"
	})
	if err := d.stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}
