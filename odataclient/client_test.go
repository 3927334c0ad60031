package odataclient

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "s3cret-token-value"

// recorded is what the test server saw of one request.
type recorded struct {
	Method     string
	RequestURI string
	Header     http.Header
	Body       string
}

// server is an httptest server that records every request and answers
// with the handler the test installs.
type server struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
	h    http.HandlerFunc
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{h: h}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, recorded{r.Method, r.RequestURI, r.Header.Clone(), string(b)})
		s.mu.Unlock()
		w.Header().Set("OData-Version", "4.0")
		s.h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recorded(nil), s.reqs...)
}

func (s *server) only(t *testing.T) recorded {
	t.Helper()
	r := s.requests()
	if len(r) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(r))
	}
	return r[0]
}

func newClient(t *testing.T, s *server) *Client {
	t.Helper()
	c, err := New(Options{BaseURL: s.URL, Tokens: StaticToken(testToken), UserAgent: "test-agent"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func jsonReply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// wantHeaders checks the headers every request carries, and those that
// depend on the method and on a body.
func wantHeaders(t *testing.T, r recorded, hasBody bool) {
	t.Helper()
	want := map[string]string{
		"Accept":           "application/json",
		"Odata-Maxversion": "4.0",
		"Odata-Version":    "4.0",
		"Authorization":    "Bearer " + testToken,
		"User-Agent":       "test-agent",
	}
	if r.Method == http.MethodGet {
		want["If-None-Match"] = "null"
	}
	if hasBody {
		want["Content-Type"] = "application/json"
	}
	for k, v := range want {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s %s: header %s = %q, want %q", r.Method, r.RequestURI, k, got, v)
		}
	}
	if !hasBody && r.Header.Get("Content-Type") != "" {
		t.Errorf("%s: Content-Type %q on a request without body", r.Method, r.Header.Get("Content-Type"))
	}
}

func TestNewValidatesOptions(t *testing.T) {
	for _, base := range []string{
		"", "ftp://org.example", "http://", "https://user:pw@org.example",
		"https://org.example?x=1", "https://org.example#frag", "://bad",
	} {
		if _, err := New(Options{BaseURL: base}); err == nil {
			t.Errorf("New(BaseURL %q) succeeded", base)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("New error leaks the password: %v", err)
		}
	}
	if _, err := New(Options{BaseURL: "https://org.example", APIVersion: "9.2/x"}); err == nil {
		t.Error("New accepted a malformed APIVersion")
	}
	for base, want := range map[string]string{
		"https://org.example":         "https://org.example/api/data/v9.2/",
		"https://org.example/":        "https://org.example/api/data/v9.2/",
		"http://127.0.0.1:8080/proxy": "http://127.0.0.1:8080/proxy/api/data/v9.2/",
	} {
		c, err := New(Options{BaseURL: base})
		if err != nil {
			t.Fatalf("New(%q): %v", base, err)
		}
		if c.APIURL() != want {
			t.Errorf("New(%q).APIURL() = %q, want %q", base, c.APIURL(), want)
		}
	}
	c, err := New(Options{BaseURL: "https://org.example", APIVersion: "v9.0"})
	if err != nil || c.APIURL() != "https://org.example/api/data/v9.0/" {
		t.Errorf("APIVersion v9.0: %v, %v", c.APIURL(), err)
	}
}

func TestDefaultHTTPClientIsTuned(t *testing.T) {
	c, err := New(Options{BaseURL: "https://org.example"})
	if err != nil {
		t.Fatal(err)
	}
	tr, ok := c.http.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("default transport is %T", c.http.Transport)
	}
	if tr.MaxIdleConnsPerHost < 64 || tr.IdleConnTimeout == 0 || tr.TLSHandshakeTimeout == 0 || tr.ResponseHeaderTimeout == 0 {
		t.Errorf("default transport not tuned: %+v", tr)
	}
	if c.http.Jar != nil {
		t.Error("default client keeps cookies; it would pin requests to one server")
	}
}

func TestTokenErrorSendsNothing(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c, err := New(Options{BaseURL: s.URL, Tokens: tokenFunc(func(context.Context) (string, error) {
		return "", errors.New("entra unavailable")
	})})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Create(t.Context(), "accounts", []byte(`{}`), WriteOptions{})
	if err == nil || !strings.Contains(err.Error(), "entra unavailable") {
		t.Fatalf("err = %v, want the token source's error", err)
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("server saw %d requests after a token failure", n)
	}
}

type tokenFunc func(context.Context) (string, error)

func (f tokenFunc) Token(ctx context.Context) (string, error) { return f(ctx) }

func TestNilTokensSendsNoAuthorization(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c, err := New(Options{BaseURL: s.URL})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(t.Context(), "accounts", Key{ID: "00000000-0000-0000-0000-000000000001"}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if h := s.only(t).Header.Get("Authorization"); h != "" {
		t.Fatalf("Authorization = %q, want none", h)
	}
}

func TestNetworkErrorIsWrappedNotError(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c := newClient(t, s)
	s.Close()
	_, err := c.Create(t.Context(), "accounts", []byte(`{}`), WriteOptions{})
	if err == nil {
		t.Fatal("Create against a closed server succeeded")
	}
	var e *Error
	if errors.As(err, &e) {
		t.Fatalf("network failure decoded as *Error: %v", err)
	}
	if !strings.Contains(err.Error(), "POST /api/data/v9.2/accounts") {
		t.Errorf("error lacks method and path: %v", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestContextCancellationIsReturned(t *testing.T) {
	arrived := make(chan struct{})
	var once sync.Once
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(arrived) })
		<-r.Context().Done()
	})
	c := newClient(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.Retrieve(ctx, "accounts", Key{ID: "00000000-0000-0000-0000-000000000001"}, Query{})
		errc <- err
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the server")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"7":                             7 * time.Second,
		" 120 ":                         2 * time.Minute,
		"0":                             0,
		"-3":                            0,
		"soon":                          0,
		"99999999999999999":             24 * time.Hour,
		"Wed, 01 May 2024 12:00:30 GMT": 30 * time.Second,
		"Wed, 01 May 2024 11:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRequestBodyIsTheRequestsOwn(t *testing.T) {
	caller := []byte(`{"name":"x"}`)
	r := &request{body: caller}
	lent := r.lend()
	if !bytes.Equal(lent, caller) {
		t.Fatalf("lent %q, want %q", lent, caller)
	}
	caller[2] = 'N' // the caller reuses its buffer once the call returned
	if string(lent) != `{"name":"x"}` {
		t.Fatalf("lent body changed with the caller's buffer: %q", lent)
	}
	built := []byte(`{}`)
	r = &request{body: built, own: true}
	if lent := r.lend(); &lent[0] != &built[0] {
		t.Fatal("a body built for the request was copied")
	}
}
