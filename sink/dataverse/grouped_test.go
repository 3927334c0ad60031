package dataverse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// bulkFake is a Dataverse fake for the grouped write paths: it serves
// UpsertMultiple (all or nothing) and $batch (per request), keeps rows by
// their key text, and counts every write of every row so that tests can
// prove nothing was lost or written twice.
type bulkFake struct {
	*httptest.Server
	noBulk     bool         // answer UpsertMultiple as an unknown action
	fail5xx    atomic.Int32 // fail this many bulk/$batch requests with 503
	throttle   sync.Map     // key → struct{}: answered 429 once inside a $batch
	retryAfter string       // Retry-After of that 429

	mu       sync.Mutex
	rows     map[string]string // "accounts(accountnumber='A1')" → body
	writes   map[string]int
	requests map[string]int // "bulk", "batch", "single"
}

func newBulkFake(t *testing.T) *bulkFake {
	f := &bulkFake{rows: map[string]string{}, writes: map[string]int{}, requests: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *bulkFake) count(kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[kind]
}

func (f *bulkFake) writesOf(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes[key]
}

func (f *bulkFake) has(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.rows[key]
	return ok
}

func errorBody(code, msg string) string {
	return fmt.Sprintf(`{"error":{"code":%q,"message":%q}}`, code, msg)
}

func (f *bulkFake) serve(w http.ResponseWriter, r *http.Request) {
	const api = "/api/data/v9.2/"
	body, _ := io.ReadAll(r.Body)
	reply := func(status int, b string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, b)
	}
	path := strings.TrimPrefix(r.URL.Path, api)
	switch path {
	case "EntityDefinitions(LogicalName='account')":
		reply(200, `{"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid"}`)
	case "accounts/Microsoft.Dynamics.CRM.UpsertMultiple":
		f.mu.Lock()
		f.requests["bulk"]++
		f.mu.Unlock()
		switch {
		case f.noBulk:
			reply(404, errorBody("0x8006088a", "Resource not found for the segment 'Microsoft.Dynamics.CRM.UpsertMultiple'."))
			return
		case f.fail5xx.Add(-1) >= 0:
			reply(503, errorBody("", "Service Unavailable"))
			return
		}
		var doc struct{ Targets []map[string]any }
		if err := json.Unmarshal(body, &doc); err != nil {
			reply(400, errorBody("0x80048d19", err.Error()))
			return
		}
		for _, t := range doc.Targets {
			id, _ := t["@odata.id"].(string)
			if t["@odata.type"] != "Microsoft.Dynamics.CRM.account" || strings.Contains(id, "bad") {
				// All or nothing: one bad target, no row written.
				reply(400, errorBody("0x80048d19", "Error identified in Payload provided by the user for Entity :'accounts'"))
				return
			}
		}
		f.mu.Lock()
		for _, t := range doc.Targets {
			id := t["@odata.id"].(string)
			delete(t, "@odata.id")
			delete(t, "@odata.type")
			b, _ := json.Marshal(t)
			f.rows[id] = string(b)
			f.writes[id]++
		}
		f.mu.Unlock()
		w.WriteHeader(204)
	case "$batch":
		f.mu.Lock()
		f.requests["batch"]++
		f.mu.Unlock()
		if f.fail5xx.Add(-1) >= 0 {
			reply(503, errorBody("", "Service Unavailable"))
			return
		}
		f.serveBatch(w, r, body)
	default:
		f.mu.Lock()
		f.requests["single"]++
		f.mu.Unlock()
		status, b := f.apply(r.Method, path, string(body))
		if b == "" {
			w.WriteHeader(status)
			return
		}
		reply(status, b)
	}
}

// apply runs one row request and returns its status and error body.
func (f *bulkFake) apply(method, key, body string) (int, string) {
	if strings.Contains(key, "bad") {
		return 400, errorBody("0x80048d19", "Error identified in Payload provided by the user for Entity :'accounts'")
	}
	if strings.Contains(key, "throttle") {
		if _, done := f.throttle.LoadOrStore(key, struct{}{}); !done {
			return 429, errorBody("0x80072322", "Number of requests exceeded the limit of 6000 over time window of 300 seconds.")
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch method {
	case http.MethodPatch:
		f.rows[key] = body
		f.writes[key]++
		return 204, ""
	case http.MethodDelete:
		if _, ok := f.rows[key]; !ok {
			return 404, errorBody("0x80060891", "A record with the specified key values does not exist in account entity")
		}
		delete(f.rows, key)
		f.writes[key]++
		return 204, ""
	}
	return 405, errorBody("", "method")
}

func (f *bulkFake) serveBatch(w http.ResponseWriter, r *http.Request, body []byte) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var out bytes.Buffer
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(p))
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		b, _ := io.ReadAll(req.Body)
		u, _ := url.Parse(req.RequestURI)
		status, eb := f.apply(req.Method, strings.TrimPrefix(u.Path, "/api/data/v9.2/"), string(b))
		out.WriteString("--batchresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n")
		fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
		if status == 429 && f.retryAfter != "" {
			out.WriteString("Retry-After: " + f.retryAfter + "\r\n")
		}
		if eb != "" {
			out.WriteString("Content-Type: application/json\r\n\r\n" + eb + "\r\n")
		} else {
			out.WriteString("\r\n\r\n")
		}
	}
	out.WriteString("--batchresponse_x--\r\n")
	w.Header().Set("Content-Type", "multipart/mixed; boundary=batchresponse_x")
	_, _ = w.Write(out.Bytes())
}

func newGroupedSink(t *testing.T, f *bulkFake, cfg Config) *Sink {
	t.Helper()
	c, err := odataclient.New(odataclient.Options{BaseURL: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	s := New(c, cfg)
	// Backoff is not under test here; keep the retries quick.
	s.retry.base, s.retry.cap = time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func accountPath(number string) string { return "accounts(accountnumber='" + number + "')" }

func TestBulkUpsertsAndBatchedDeletes(t *testing.T) {
	f := newBulkFake(t)
	f.rows[accountPath("old1")], f.rows[accountPath("old2")] = "{}", "{}"
	s := newGroupedSink(t, f, Config{})
	var batch []change.Record
	for i := range 250 {
		batch = append(batch, upsert(fmt.Sprintf("B%d", i)))
	}
	batch = append(batch, del("old1"), del("old2"), del("never"))
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if b, d, n := f.count("bulk"), f.count("batch"), f.count("single"); b != 3 || d != 1 || n != 0 {
		t.Fatalf("%d UpsertMultiple, %d $batch, %d single requests; want 3, 1, 0", b, d, n)
	}
	for i := range 250 {
		if n := f.writesOf(accountPath(fmt.Sprintf("B%d", i))); n != 1 {
			t.Fatalf("row B%d written %d times", i, n)
		}
	}
	if got := f.rows[accountPath("B7")]; got != `{"accountnumber":"B7","name":"n-B7"}` {
		t.Errorf("row body %s", got)
	}
	if f.has(accountPath("old1")) || f.has(accountPath("old2")) {
		t.Error("deleted rows remain")
	}
}

func TestBulkBadRowReportedGoodRowsLand(t *testing.T) {
	f := newBulkFake(t)
	s := newGroupedSink(t, f, Config{})
	var batch []change.Record
	for i := range 100 {
		batch = append(batch, upsert(fmt.Sprintf("G%d", i)))
	}
	batch[42] = upsert("bad42")
	err := s.Write(t.Context(), batch)
	var be *change.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 {
		t.Fatalf("err = %v, want a BatchError naming one record", err)
	}
	var oe *odataclient.Error
	if !change.IsPermanent(be.Failed[42]) || !errors.As(be.Failed[42], &oe) || oe.Code != "0x80048d19" {
		t.Fatalf("record 42: %v, want permanent with the service's error", be.Failed[42])
	}
	for i, rec := range batch {
		if i == 42 {
			continue
		}
		if n := f.writesOf(accountPath(rec.Key[0].Value.Str())); n != 1 {
			t.Fatalf("good row %d written %d times, want 1", i, n)
		}
	}
	if b, d := f.count("bulk"), f.count("batch"); b != 1 || d != 1 {
		t.Fatalf("%d UpsertMultiple, %d $batch; want 1 and 1", b, d)
	}
}

func TestNoBulkSupportIsRemembered(t *testing.T) {
	f := newBulkFake(t)
	f.noBulk = true
	s := newGroupedSink(t, f, Config{})
	for round := range 2 {
		if err := s.Write(t.Context(), []change.Record{upsert(fmt.Sprintf("N%d", round)), upsert(fmt.Sprintf("M%d", round))}); err != nil {
			t.Fatal(err)
		}
	}
	if b, d := f.count("bulk"), f.count("batch"); b != 1 || d != 2 {
		t.Fatalf("%d UpsertMultiple, %d $batch; want 1 (then remembered) and 2", b, d)
	}
}

func TestBatch5xxRetriedWithoutDuplicates(t *testing.T) {
	f := newBulkFake(t)
	f.fail5xx.Store(2)
	s := newGroupedSink(t, f, Config{Mode: ModeBatch, EntitySets: map[string]string{"account": "accounts"}})
	var batch []change.Record
	for i := range 30 {
		batch = append(batch, upsert(fmt.Sprintf("R%d", i)))
	}
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	for _, rec := range batch {
		if n := f.writesOf(accountPath(rec.Key[0].Value.Str())); n != 1 {
			t.Fatalf("%s written %d times", rec.Key, n)
		}
	}
	if st := s.Stats(); st.Retries != 2 || st.Requests != 3 {
		t.Fatalf("stats %+v, want 2 retries of 3 requests", st)
	}
}

func TestRetriesAreBounded(t *testing.T) {
	f := newBulkFake(t)
	f.fail5xx.Store(1000)
	s := newGroupedSink(t, f, Config{Retries: 3})
	err := s.Write(t.Context(), []change.Record{upsert("X1"), upsert("X2")})
	if _, ok := change.RetryWait(err); !ok {
		t.Fatalf("err = %v, want retryable", err)
	}
	if n := f.count("bulk"); n != 4 {
		t.Fatalf("%d attempts, want 1 + 3 retries", n)
	}
}

func TestThrottledRowsInBatchResent(t *testing.T) {
	f := newBulkFake(t)
	f.retryAfter = "1"
	s := newGroupedSink(t, f, Config{Mode: ModeBatch, Concurrency: 8})
	var batch []change.Record
	for i := range 40 {
		name := fmt.Sprintf("T%d", i)
		if i%4 == 0 {
			name = fmt.Sprintf("throttle%d", i)
		}
		batch = append(batch, upsert(name))
	}
	start := time.Now()
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	for _, rec := range batch {
		if n := f.writesOf(accountPath(rec.Key[0].Value.Str())); n != 1 {
			t.Fatalf("%s written %d times, want 1", rec.Key, n)
		}
	}
	st := s.Stats()
	if st.Throttled != 1 || st.Retries != 1 || st.Limit != 4 {
		t.Fatalf("stats %+v: want 1 throttling, 1 retry, limit halved to 4", st)
	}
	// The service's Retry-After held back the resend.
	if st.PausedUntil.Sub(start) < time.Second {
		t.Fatalf("paused until %v, less than Retry-After after the start %v", st.PausedUntil, start)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("Write returned after %v, before the Retry-After of 1s", d)
	}
}

func TestLimiterAdapts(t *testing.T) {
	f := newBulkFake(t)
	c, err := odataclient.New(odataclient.Options{BaseURL: f.URL})
	if err != nil {
		t.Fatal(err)
	}
	l := newLimiter(c, 8)
	ctx := t.Context()
	for range 8 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Full: the next acquire waits until a slot frees.
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("acquire beyond the limit returned %v", err)
	default:
	}
	// A burst of throttled answers halves the limit once.
	for range 3 {
		l.release(true, 0)
	}
	if st := l.snapshot(); st.Limit != 4 || st.Throttled != 3 {
		t.Fatalf("after throttling: %+v, want limit 4", st)
	}
	// Five in flight; two successes bring it below the limit of 4, so
	// the waiter gets in.
	l.release(false, 0)
	l.release(false, 0)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// Four in flight. Four more successes make six in a row: the fourth
	// raised the limit by one.
	for range 4 {
		l.release(false, 0)
	}
	if st := l.snapshot(); st.Limit != 5 || st.InFlight != 0 {
		t.Fatalf("after successes: %+v, want limit 5 and nothing in flight", st)
	}
	// A cancelled wait returns the context's error.
	for range 5 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.acquire(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire on a cancelled context: %v", err)
	}
}

// A service without $batch (the fake answers it 404) gets single requests
// in auto mode, and the sink remembers that.
func TestNoBatchSupportFallsBackToSingles(t *testing.T) {
	f := newFake(t)
	s := newTestSink(t, f, Config{Mode: ModeAuto, EntitySets: map[string]string{"account": "accounts"}})
	if err := s.Write(t.Context(), []change.Record{upsert("S1"), del("S2")}); err != nil {
		t.Fatal(err)
	}
	if got := f.body("/api/data/v9.2/accounts(accountnumber='S1')"); got != `{"accountnumber":"S1","name":"n-S1"}` {
		t.Fatalf("upsert body %q", got)
	}
	if !s.noBatch.Load() || !s.bulkUnsupported("account") {
		t.Fatal("the sink did not remember the missing $batch and bulk support")
	}
	if err := s.Write(t.Context(), []change.Record{upsert("S3")}); err != nil {
		t.Fatal(err)
	}
	if f.body("/api/data/v9.2/accounts(accountnumber='S3')") == "" {
		t.Fatal("second write did not arrive as a single request")
	}
}
