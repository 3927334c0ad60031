package emulator_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/dvsync/dvsync/emulator"
)

// startWith starts an emulator for testSchema with the given options (the
// token is filled in).
func startWith(t *testing.T, opts emulator.Options) *api {
	t.Helper()
	schema, err := emulator.ParseSchema([]byte(testSchema), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	opts.Token = testToken
	srv, err := emulator.New(schema, opts)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &api{t: t, root: hs.URL, base: hs.URL + "/api/data/v9.2"}
}

func TestRequestLimit(t *testing.T) {
	a := startWith(t, emulator.Options{Limits: emulator.Limits{Requests: 3, Window: time.Hour, DOPHint: 6}})
	for want := 2; want >= 0; want-- {
		r := a.do("GET", "accounts", nil).must(t, http.StatusOK)
		if got := r.header.Get("x-ms-ratelimit-burst-remaining-xrm-requests"); got != strconv.Itoa(want) {
			t.Errorf("burst remaining %q, want %d", got, want)
		}
		if got := r.header.Get("x-ms-dop-hint"); got != "6" {
			t.Errorf("x-ms-dop-hint %q", got)
		}
	}
	r := a.do("GET", "accounts", nil)
	wantErr(t, r, http.StatusTooManyRequests, "0x80072322",
		"Number of requests exceeded the limit of 3 over time window of 3600 seconds.")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 3600 {
		t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
	}
}

func TestExecutionTimeLimit(t *testing.T) {
	// The first request is delayed past the whole allowance; the next one
	// is refused.
	a := startWith(t, emulator.Options{
		Limits: emulator.Limits{ExecutionTime: time.Millisecond, Window: time.Hour},
		Faults: emulator.Faults{Latency: 5 * time.Millisecond, Count: 1},
	})
	a.do("GET", "accounts", nil).must(t, http.StatusOK)
	r := a.do("GET", "accounts", nil)
	wantErr(t, r, http.StatusTooManyRequests, "0x80072321",
		"Combined execution time of incoming requests exceeded limit of 1 milliseconds over time window of 3600 seconds.")
	if got := r.header.Get("x-ms-ratelimit-time-remaining-xrm-requests"); got != "0.00" {
		t.Errorf("time remaining %q", got)
	}
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}

func TestConcurrencyLimit(t *testing.T) {
	const slow = "accounts(00000000-0000-0000-0000-00000000051a)"
	a := startWith(t, emulator.Options{
		Limits: emulator.Limits{Concurrent: 1},
		Faults: emulator.Faults{Latency: time.Hour, Match: slow},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slowDone := make(chan error, 1)
	go func() {
		// The slow request may itself be refused while one of the polling
		// requests below holds the slot; it tries again until it holds it.
		for {
			req, _ := http.NewRequestWithContext(ctx, "GET", a.base+"/"+slow, nil)
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				slowDone <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTooManyRequests {
				slowDone <- fmt.Errorf("slow request answered %s", resp.Status)
				return
			}
		}
	}()

	// Once the slow request holds the only slot, others get 429.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := a.do("GET", "accounts", nil)
		if r.status == http.StatusTooManyRequests {
			wantErr(t, r, http.StatusTooManyRequests, "0x80072326", "Number of concurrent requests exceeded the limit of 1.")
			if r.header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no 429 while a request was in flight")
		}
	}
	cancel()
	if err := <-slowDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("slow request: %v", err)
	}
	// The slot is freed when the handler returns, which may lag the
	// client's cancellation.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if a.do("GET", "accounts", nil).status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slot was never freed")
		}
	}
}

func TestNoLimitsByDefault(t *testing.T) {
	a := startAPI(t)
	r := a.do("GET", "accounts", nil).must(t, http.StatusOK)
	if r.header.Get("x-ms-ratelimit-burst-remaining-xrm-requests") != "" {
		t.Error("burst header without a request limit")
	}
	if r.header.Get("x-ms-dop-hint") != "4" {
		t.Errorf("x-ms-dop-hint %q", r.header.Get("x-ms-dop-hint"))
	}
}
