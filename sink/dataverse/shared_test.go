package dataverse

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// TestSinksOnOneClientShareTheLimit runs two Sinks, as two pipelines
// would, on one Client: together they must not have more requests in
// flight than the lower of their limits, the rest waiting in the shared
// limiter rather than at the service.
func TestSinksOnOneClientShareTheLimit(t *testing.T) {
	f := newFake(t)
	release := make(chan struct{})
	f.hold = func(*http.Request) { <-release }
	c, err := odataclient.New(odataclient.Options{BaseURL: f.URL, Tokens: odataclient.StaticToken("t")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Mode: ModeSingle, Retries: -1, EntitySets: map[string]string{"account": "accounts"}}
	cfg.Concurrency = 6
	s1 := New(c, cfg)
	cfg.Concurrency = 4
	s2 := New(c, cfg)
	if s1.limiter != s2.limiter {
		t.Fatal("two Sinks on one Client have separate limiters")
	}

	errs := make(chan error, 2)
	for n, s := range []*Sink{s1, s2} {
		var batch []change.Record
		for i := range 10 {
			batch = append(batch, upsert(fmt.Sprintf("S%d-%d", n, i)))
		}
		go func() { errs <- s.Write(t.Context(), batch) }()
	}
	// s1 runs 6 workers and s2 4: 10 want a slot, 4 may have one.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		l := s1.limiter
		l.mu.Lock()
		inFlight, waiting := l.inFlight, len(l.waiters)
		l.mu.Unlock()
		if inFlight == 4 && waiting == 6 && f.inflight.Load() == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("limiter: %d in flight, %d waiting; service: %d in flight; want 4, 6, 4",
				inFlight, waiting, f.inflight.Load())
		}
		<-tick.C
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if m := f.maxSeen.Load(); m != 4 {
		t.Fatalf("at most %d requests in flight, want 4", m)
	}

	// The limiter lives as long as one of its Sinks.
	_ = s1.Close(t.Context())
	_ = s1.Close(t.Context()) // a second Close must not release s2's reference
	s3 := New(c, Config{})
	if s3.limiter != s2.limiter {
		t.Fatal("a Sink opened while another is open got a new limiter")
	}
	_ = s2.Close(t.Context())
	_ = s3.Close(t.Context())
	s4 := New(c, Config{})
	t.Cleanup(func() { s4.Close(t.Context()) })
	if s4.limiter == s2.limiter {
		t.Fatal("the limiter outlived every Sink using it")
	}
}
