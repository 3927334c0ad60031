package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDemo runs 'dvsync demo' as 'make demo' does; its child 'dvsync run'
// is this test binary re-executed as dvsync.
func TestDemo(t *testing.T) {
	t.Setenv(runAsDvsync, "1")
	out, errOut, err := runCLI(t, "demo", "--examples", examples)
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	for _, want := range []string{"Fabrikam Europe", "120000.75", "dvsync stopped cleanly"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Northwind") != 2 {
		t.Errorf("Northwind should appear in two tables, then be deleted:\n%s", out)
	}
}

func TestEmulatorCommandRequiresToken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out syncBuffer
	cmd := newRootCmd()
	cmd.SetArgs([]string{"emulator", "--listen", addr, "--schema", filepath.Join(examples, "schema.yaml"), "--token", "s3cret"})
	cmd.SetOut(&out)
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()

	url := "http://" + addr + "/api/data/v9.2/accounts"
	get := func(token string) int {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitUntil(t, 10*time.Second, func() bool { return get("s3cret") == http.StatusOK })
	if code := get("wrong"); code != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", code)
	}
	if code := get(""); code != http.StatusUnauthorized {
		t.Errorf("no token: status %d, want 401", code)
	}
	if !strings.Contains(out.String(), "Dataverse emulator serving http://"+addr) {
		t.Errorf("start-up line missing: %q", out.String())
	}
	if strings.Contains(out.String(), "s3cret") {
		t.Error("a token given on the command line is echoed")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("emulator after cancel: %v", err)
	}
}
