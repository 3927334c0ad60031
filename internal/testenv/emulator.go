package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/dvsync/dvsync/emulator"
)

// Emulator is a running Dataverse emulator.
type Emulator struct {
	// URL is the server's root, e.g. "http://127.0.0.1:41234" (no trailing
	// slash); the Web API lives under URL + "/api/data/v9.2/".
	URL string
	// Token is the bearer token the server accepts.
	Token string
	// Server is the emulator itself, for tests that inspect it directly.
	Server *emulator.Server
}

// StartEmulator starts the emulator for schemaYAML (the format of
// emulator.ParseSchema) on a real HTTP listener on 127.0.0.1 and a free port,
// with a fresh random token. The test fails at once if the schema is invalid.
// The server is shut down in t.Cleanup, after waiting for in-flight requests.
func StartEmulator(t testing.TB, schemaYAML string) *Emulator {
	t.Helper()
	schema, err := emulator.ParseSchema([]byte(schemaYAML), "schema.yaml")
	if err != nil {
		t.Fatalf("testenv: emulator schema: %v", err)
	}
	tokenBytes := make([]byte, 16)
	_, _ = rand.Read(tokenBytes)
	token := hex.EncodeToString(tokenBytes)
	srv, err := emulator.New(schema, emulator.Options{Token: token})
	if err != nil {
		t.Fatalf("testenv: emulator: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: emulator listener: %v", err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			t.Errorf("testenv: emulator shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("testenv: emulator serve: %v", err)
		}
	})
	return &Emulator{URL: "http://" + ln.Addr().String(), Token: token, Server: srv}
}
