package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/internal/freeport"
)

func TestHealthcheckCommand(t *testing.T) {
	ok := startHealthServer(t, http.StatusOK, "ok\n")
	if err := runHealthcheck(t, "--url", ok+"/healthz"); err != nil {
		t.Errorf("healthy daemon: %v", err)
	}
	notReady := startHealthServer(t, http.StatusServiceUnavailable, "not ready: pipeline \"app\" is not running\n")
	err := runHealthcheck(t, "--url", notReady+"/readyz")
	if err == nil || !strings.Contains(err.Error(), `503 Service Unavailable: not ready: pipeline "app" is not running`) {
		t.Errorf("unready daemon: %v", err)
	}
	addr, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	if err := runHealthcheck(t, "--url", "http://"+addr+"/healthz", "--timeout", "2s"); err == nil {
		t.Error("no daemon listening: healthcheck returned nil")
	}
}

func startHealthServer(t *testing.T, status int, body string) string {
	t.Helper()
	srv := &http.Server{ReadHeaderTimeout: time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func runHealthcheck(t *testing.T, args ...string) error {
	t.Helper()
	cmd := newHealthcheckCmd()
	cmd.SetArgs(args)
	cmd.SetOut(new(strings.Builder))
	cmd.SetErr(new(strings.Builder))
	return cmd.ExecuteContext(t.Context())
}
