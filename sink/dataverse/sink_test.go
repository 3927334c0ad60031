package dataverse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// fakeDataverse answers by the account number in the URL, so that one
// batch can meet every kind of answer. It counts metadata requests and
// the largest number of requests in flight at once.
type fakeDataverse struct {
	*httptest.Server
	metadata atomic.Int32
	inflight atomic.Int32
	maxSeen  atomic.Int32
	mu       sync.Mutex
	bodies   map[string]string // path → last body written
	// hold, when set, is called inside every row request.
	hold func(r *http.Request)
}

func newFake(t *testing.T) *fakeDataverse {
	f := &fakeDataverse{bodies: make(map[string]string)}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeDataverse) serve(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
	}
	if strings.HasPrefix(r.URL.Path, "/api/data/v9.2/EntityDefinitions(") {
		f.metadata.Add(1)
		if r.URL.Path == "/api/data/v9.2/EntityDefinitions(LogicalName='account')" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid","PrimaryNameAttribute":"name"}`)
			return
		}
		reply(404, "0x80040217", "Could not find entity")
		return
	}
	// Read the body first: the server notices a client going away (and
	// cancels r.Context()) only once the body has been consumed.
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies[r.URL.Path] = string(b)
	f.mu.Unlock()
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if f.hold != nil {
		f.hold(r)
	}
	if !strings.HasPrefix(r.URL.Path, "/api/data/v9.2/accounts(") {
		reply(404, "0x80060888", "Resource not found for the segment '"+strings.TrimPrefix(r.URL.Path, "/api/data/v9.2/")+"'.")
		return
	}
	switch {
	case strings.Contains(r.URL.Path, "'throttle"):
		// The digit after "throttle" is the Retry-After in seconds.
		i := strings.Index(r.URL.Path, "'throttle") + len("'throttle")
		w.Header().Set("Retry-After", r.URL.Path[i:i+1])
		reply(429, "0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
	case strings.Contains(r.URL.Path, "'busy"):
		reply(503, "", "Service Unavailable")
	case strings.Contains(r.URL.Path, "'expired"):
		reply(401, "0x80041d52", "The OAuth token has expired")
	case strings.Contains(r.URL.Path, "'bad"):
		reply(400, "0x80048d19", "Error identified in Payload provided by the user for Entity :'accounts'")
	case strings.Contains(r.URL.Path, "'parent"):
		reply(404, "0x80040217", "contact With Id = 0b9c2f7e-6f1d-5a3e-9d4c-1a2b3c4d5e6f Does Not Exist")
	case strings.Contains(r.URL.Path, "'missing") && r.Method == http.MethodDelete:
		reply(404, "0x80060891", "A record with the specified key values does not exist in account entity")
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *fakeDataverse) body(path string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[path]
}

func newTestSink(t *testing.T, f *fakeDataverse, cfg Config) *Sink {
	t.Helper()
	c, err := odataclient.New(odataclient.Options{BaseURL: f.URL, Tokens: odataclient.StaticToken("t")})
	if err != nil {
		t.Fatal(err)
	}
	// These tests look at single requests and at how each failure is
	// classified on its way to the engine; the grouped paths and the
	// retries have their own tests.
	if cfg.Mode == "" {
		cfg.Mode = ModeSingle
	}
	if cfg.Retries == 0 {
		cfg.Retries = -1
	}
	s := New(c, cfg)
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func upsert(number string) change.Record {
	return change.Record{
		Op:    change.OpUpdate,
		Table: "account",
		Key:   change.Key{col("accountnumber", change.Text(number))},
		After: change.Row{col("accountnumber", change.Text(number)), col("name", change.Text("n-"+number)), col("fax", change.Unchanged())},
	}
}

func del(number string) change.Record {
	return change.Record{Op: change.OpDelete, Table: "account", Key: change.Key{col("accountnumber", change.Text(number))}}
}

func TestWriteUpsertsAndDeletes(t *testing.T) {
	f := newFake(t)
	s := newTestSink(t, f, Config{})
	batch := []change.Record{upsert("A1"), del("A2"), del("missing1")}
	batch[0].Op = change.OpInsert
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if got := f.body("/api/data/v9.2/accounts(accountnumber='A1')"); got != `{"accountnumber":"A1","name":"n-A1"}` {
		t.Fatalf("upsert body %s", got)
	}
	if f.metadata.Load() != 1 {
		t.Fatalf("%d metadata requests, want 1", f.metadata.Load())
	}
}

func TestWriteClassifiesPerRecord(t *testing.T) {
	f := newFake(t)
	s := newTestSink(t, f, Config{Concurrency: 3})
	batch := []change.Record{
		upsert("ok1"),       // 0
		upsert("throttle1"), // 1
		upsert("bad1"),      // 2
		upsert("busy1"),     // 3
		upsert("parent1"),   // 4: binds to a row that does not exist yet
		del("missing2"),     // 5: already gone, success
		{Op: change.OpInsert, Table: "account", Key: change.Key{col("accountnumber", change.Bytes([]byte{1}))}}, // 6
		{Op: change.OpInsert, Table: "account", Key: change.Key{col("accountnumber", change.Text("f"))},
			After: change.Row{col("x", change.Float(math.Inf(1)))}}, // 7
	}
	err := s.Write(t.Context(), batch)
	var be *change.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want *change.BatchError", err)
	}
	if !change.IsDeferred(be.Failed[4]) {
		t.Errorf("record 4: %v; want deferred", be.Failed[4])
	}
	delete(be.Failed, 4)
	wantRetry := map[int]time.Duration{1: time.Second, 3: 0}
	wantPermanent := []int{2, 6, 7}
	if len(be.Failed) != len(wantRetry)+len(wantPermanent) {
		t.Errorf("failed %v", be.Failed)
	}
	for i, wait := range wantRetry {
		got, ok := change.RetryWait(be.Failed[i])
		if !ok || got != wait {
			t.Errorf("record %d: %v; want retryable after %v", i, be.Failed[i], wait)
		}
	}
	for _, i := range wantPermanent {
		if !change.IsPermanent(be.Failed[i]) {
			t.Errorf("record %d: %v; want permanent", i, be.Failed[i])
		}
	}
	var oe *odataclient.Error
	if !errors.As(be.Failed[2], &oe) || oe.StatusCode != 400 {
		t.Errorf("record 2 does not wrap the *odataclient.Error: %v", be.Failed[2])
	}
}

// TestFatalFailuresStopTheWrite covers failures that are no record's
// fault: refused credentials and unknown tables come back as one fatal
// error, never as a BatchError the engine would dead-letter.
func TestFatalFailuresStopTheWrite(t *testing.T) {
	f := newFake(t)
	s := newTestSink(t, f, Config{Concurrency: 3})
	for name, batch := range map[string][]change.Record{
		"token refused":  {upsert("ok1"), upsert("bad1"), upsert("expired1")},
		"unknown table":  {upsert("ok2"), {Op: change.OpInsert, Table: "nosuchtable", Key: change.Key{col("k", change.Int(1))}}},
		"refused delete": {del("expired2")},
	} {
		err := s.Write(t.Context(), batch)
		var be *change.BatchError
		if !change.IsFatal(err) || errors.As(err, &be) {
			t.Errorf("%s: err = %v, want a fatal error, not a BatchError", name, err)
		}
	}
}

func TestDeleteOfUnknownResourceIsNotSuccess(t *testing.T) {
	f := newFake(t)
	s := newTestSink(t, f, Config{EntitySets: map[string]string{"account": "acounts"}})
	err := s.Write(t.Context(), []change.Record{del("A1"), upsert("A1")})
	if !change.IsFatal(err) {
		t.Fatalf("err = %v, want fatal: the entity set does not exist", err)
	}
	if f.metadata.Load() != 0 {
		t.Fatalf("configured entity set still looked up %d times", f.metadata.Load())
	}
}

func TestAllRetryableIsOneError(t *testing.T) {
	f := newFake(t)
	s := newTestSink(t, f, Config{})
	err := s.Write(t.Context(), []change.Record{upsert("throttle2"), upsert("busy2"), upsert("throttle5")})
	var be *change.BatchError
	if errors.As(err, &be) {
		t.Fatalf("err = %v, want a single retryable error", err)
	}
	if wait, ok := change.RetryWait(err); !ok || wait != 5*time.Second {
		t.Fatalf("err = %v; want retryable after the longest wait, 5s", err)
	}
}

func TestEntitySetFetchedOncePerTable(t *testing.T) {
	f := newFake(t)
	s := newTestSink(t, f, Config{Concurrency: 16})
	var batch []change.Record
	for i := range 50 {
		batch = append(batch, upsert(fmt.Sprintf("E%d", i)))
	}
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), batch[:5]); err != nil {
		t.Fatal(err)
	}
	if n := f.metadata.Load(); n != 1 {
		t.Fatalf("%d metadata requests for one table, want 1", n)
	}
	// A failed lookup is asked again by the next write.
	unknown := []change.Record{{Op: change.OpInsert, Table: "nosuch", Key: change.Key{col("k", change.Int(1))}}}
	for range 2 {
		if err := s.Write(t.Context(), unknown); !change.IsFatal(err) {
			t.Fatalf("unknown table: %v, want fatal", err)
		}
	}
	if n := f.metadata.Load(); n != 3 {
		t.Fatalf("%d metadata requests, want 3", n)
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	f := newFake(t)
	const limit = 4
	reached := make(chan struct{})
	var once sync.Once
	f.hold = func(r *http.Request) {
		if f.inflight.Load() >= limit {
			once.Do(func() { close(reached) })
		}
		// The first requests wait until limit are in flight, which proves
		// the sink runs them in parallel.
		select {
		case <-reached:
		case <-time.After(10 * time.Second):
		}
	}
	s := newTestSink(t, f, Config{Concurrency: limit})
	var batch []change.Record
	for i := range 40 {
		batch = append(batch, upsert(fmt.Sprintf("C%d", i)))
	}
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reached:
	default:
		t.Fatal("never had the limit of requests in flight at once")
	}
	if m := f.maxSeen.Load(); m != limit {
		t.Fatalf("at most %d requests in flight, want %d", m, limit)
	}
}

func TestWriteReturnsContextError(t *testing.T) {
	f := newFake(t)
	arrived := make(chan struct{}, 64)
	f.hold = func(r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	}
	s := newTestSink(t, f, Config{Concurrency: 8, EntitySets: map[string]string{"account": "accounts"}})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		var batch []change.Record
		for i := range 40 {
			batch = append(batch, upsert(fmt.Sprintf("X%d", i)))
		}
		errc <- s.Write(ctx, batch)
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request arrived")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := len(arrived) + 1; n > 8 {
		t.Fatalf("%d requests started, more than the concurrency", n)
	}
}

func TestWriteAfterClose(t *testing.T) {
	f := newFake(t)
	s := newTestSink(t, f, Config{})
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(t.Context(), []change.Record{upsert("A")}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{Concurrency: 8, EntitySets: map[string]string{"account": "accounts"}}).Validate(); err != nil {
		t.Fatal(err)
	}
	err := Config{Concurrency: -1, EntitySets: map[string]string{"account": "acc/ounts", "": "x"}}.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"concurrency", "entity_sets.account", "entity_sets: empty table name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}
