package testenv

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

const emulatorTestSchema = `
tables:
  - logical_name: account
    entity_set: accounts
    attributes:
      - {name: name, type: string}
`

func TestStartEmulator(t *testing.T) {
	var closedURL string
	t.Run("serves", func(t *testing.T) {
		emu := StartEmulator(t, emulatorTestSchema)
		closedURL = emu.URL
		if !strings.HasPrefix(emu.URL, "http://127.0.0.1:") || strings.HasSuffix(emu.URL, "/") {
			t.Errorf("URL %q", emu.URL)
		}
		if emu.Token == "" || emu.Server == nil {
			t.Fatalf("emulator %+v", emu)
		}
		req, _ := http.NewRequest("POST", emu.URL+"/api/data/v9.2/accounts", strings.NewReader(`{"name":"x"}`))
		req.Header.Set("Authorization", "Bearer "+emu.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("create: %s", resp.Status)
		}

		resp, err = http.Get(emu.URL + "/api/data/v9.2/accounts")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("without the token: %s", resp.Status)
		}
	})
	// The subtest's cleanup closed the listener.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(closedURL + "/api/data/v9.2/accounts"); err == nil {
		resp.Body.Close()
		t.Errorf("emulator still serving after cleanup: %s", resp.Status)
	}
}
