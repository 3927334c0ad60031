package odataclient

import (
	"errors"
	"net/http"
	"sync"
	"testing"
)

// TestUnauthorizedRetriedWithFreshToken: a cached token the service
// refuses (revoked, or expired early) is dropped and the request sent once
// more with a new one; a burst of such answers fetches one new token.
func TestUnauthorizedRetriedWithFreshToken(t *testing.T) {
	tokens := newTokenServer(t, nil)
	src, _ := newSource(t, ClientCredentials{
		Authority: tokens.URL, TenantID: "tenant-1", ClientID: "app-1",
		ClientSecret: testSecret, Scope: "https://org.example/.default",
	})
	api := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-2" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c, err := New(Options{BaseURL: api.URL, Tokens: src})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(t.Context()); err != nil { // cache tok-1
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := c.Delete(t.Context(), "accounts", Key{ID: accountID}, WriteOptions{}); err != nil {
				t.Errorf("Delete: %v", err)
			}
		})
	}
	wg.Wait()
	if n := tokens.issued.Load(); n != 2 {
		t.Fatalf("%d tokens issued, want 2: one refresh for the whole burst", n)
	}
}

// TestUnauthorizedTwiceIsReturned: credentials refused with a fresh token
// too are the caller's to handle; the request is not sent a third time.
func TestUnauthorizedTwiceIsReturned(t *testing.T) {
	tokens := newTokenServer(t, nil)
	src, _ := newSource(t, ClientCredentials{
		Authority: tokens.URL, TenantID: "tenant-1", ClientID: "app-1",
		ClientSecret: testSecret, Scope: "https://org.example/.default",
	})
	api := newServer(t, jsonReply(401, `{"error":{"code":"0x80044302","message":"Request is not authenticated."}}`))
	c, err := New(Options{BaseURL: api.URL, Tokens: src})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Delete(t.Context(), "accounts", Key{ID: accountID}, WriteOptions{})
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized {
		t.Fatalf("err = %v, want the 401", err)
	}
	if n := len(api.requests()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	// A static token cannot be refreshed: no second request.
	api2 := newServer(t, jsonReply(401, `{"error":{"code":"0x80044302","message":"Request is not authenticated."}}`))
	if err := newClient(t, api2).Delete(t.Context(), "accounts", Key{ID: accountID}, WriteOptions{}); err == nil {
		t.Fatal("401 with a static token succeeded")
	}
	if n := len(api2.requests()); n != 1 {
		t.Fatalf("static token: %d requests, want 1", n)
	}
}
