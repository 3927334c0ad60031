package odataclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// parsedRequest is one inner request of a $batch as a server reads it.
type parsedRequest struct {
	changeSet int // 0 outside a change set, else the change set's 1-based number
	contentID string
	req       *http.Request
	body      string
}

// parseBatch reads a $batch request body the way a server does, with the
// standard library's MIME reader, so that the test checks the wire format
// rather than the encoder's own idea of it.
func parseBatch(t *testing.T, contentType string, body string) []parsedRequest {
	t.Helper()
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" {
		t.Fatalf("batch Content-Type %q: %v", contentType, err)
	}
	var out []parsedRequest
	mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
	cs := 0
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		ct := p.Header.Get("Content-Type")
		if strings.HasPrefix(ct, "multipart/mixed") {
			cs++
			_, params, _ := mime.ParseMediaType(ct)
			inner := multipart.NewReader(p, params["boundary"])
			for {
				ip, err := inner.NextPart()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, readInner(t, ip, cs))
			}
			continue
		}
		out = append(out, readInner(t, p, 0))
	}
}

func readInner(t *testing.T, p *multipart.Part, cs int) parsedRequest {
	t.Helper()
	if p.Header.Get("Content-Type") != "application/http" || p.Header.Get("Content-Transfer-Encoding") != "binary" {
		t.Fatalf("part headers %v", p.Header)
	}
	req, err := http.ReadRequest(bufio.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(req.Body)
	return parsedRequest{changeSet: cs, contentID: p.Header.Get("Content-ID"), req: req, body: strings.TrimRight(string(b), "\r\n")}
}

// multipartAnswer builds a batch answer: each element is either a
// complete application/http part ("HTTP/1.1 204 …") or a []string of such
// parts making a change set answer.
func multipartAnswer(parts ...any) (string, string) {
	var b bytes.Buffer
	const outer = "batchresponse_0c9f5d2e"
	for i, p := range parts {
		b.WriteString("--" + outer + "\r\n")
		switch p := p.(type) {
		case string:
			b.WriteString("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n" + p + "\r\n")
		case []string:
			cs := fmt.Sprintf("changesetresponse_%d", i)
			b.WriteString("Content-Type: multipart/mixed; boundary=" + cs + "\r\n\r\n")
			for j, ip := range p {
				fmt.Fprintf(&b, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: %d\r\n\r\n%s\r\n", cs, j+1, ip)
			}
			b.WriteString("--" + cs + "--\r\n")
		}
	}
	b.WriteString("--" + outer + "--\r\n")
	return "multipart/mixed; boundary=" + outer, b.String()
}

const (
	created  = "HTTP/1.1 204 No Content\r\nOData-Version: 4.0\r\nOData-EntityId: http://x/api/data/v9.2/accounts(11111111-1111-1111-1111-111111111111)\r\n\r\n"
	dupKey   = "HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x80060892\",\"message\":\"A record with the same key already exists.\"}}"
	notFound = "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x80060891\",\"message\":\"A record with the specified key values does not exist in account entity\"}}"
	listed   = "HTTP/1.1 200 OK\r\nContent-Type: application/json; odata.metadata=minimal\r\n\r\n{\"value\":[]}"
)

func TestBatchEncodesChangeSetsAndMapsAnswers(t *testing.T) {
	var got []parsedRequest
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		ct, body := multipartAnswer([]string{created, created}, notFound, listed)
		w.Header().Set("Content-Type", ct)
		io.WriteString(w, body)
	})
	c := newClient(t, s)

	create, err := CreateRequest("accounts", []byte(`{"name":"Fabrikam"}`), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	create.ContentID = "1"
	bind, _ := CreateRequest("contacts", []byte(`{"parentcustomerid_account@odata.bind":"$1"}`), WriteOptions{Tag: "dvsync one"})
	bind.ContentID = "2"
	del, err := DeleteRequest("accounts", Key{Alternate: []KeyPart{{"accountnumber", "A'1 &x"}}}, WriteOptions{IfMatch: `W/"7"`})
	if err != nil {
		t.Fatal(err)
	}
	parts := []BatchPart{
		{ChangeSet: []BatchRequest{create, bind}},
		{Request: del},
		{Request: BatchRequest{Method: "GET", Path: "accounts?$select=name"}},
	}
	res, err := c.Batch(t.Context(), parts, BatchOptions{ContinueOnError: true})
	if err != nil {
		t.Fatal(err)
	}

	rec := s.only(t)
	if rec.Method != "POST" || rec.RequestURI != "/api/data/v9.2/$batch" {
		t.Fatalf("outer request %s %s", rec.Method, rec.RequestURI)
	}
	if p := rec.Header.Get("Prefer"); p != "odata.continue-on-error" {
		t.Errorf("Prefer = %q", p)
	}
	got = parseBatch(t, rec.Header.Get("Content-Type"), rec.Body)
	if len(got) != 4 {
		t.Fatalf("server parsed %d requests, want 4", len(got))
	}
	want := []struct {
		cs          int
		id, method  string
		uri, body   string
		headerKey   string
		headerValue string
	}{
		{1, "1", "POST", s.URL + "/api/data/v9.2/accounts", `{"name":"Fabrikam"}`, "Content-Type", "application/json"},
		{1, "2", "POST", s.URL + "/api/data/v9.2/contacts?tag=dvsync%20one", `{"parentcustomerid_account@odata.bind":"$1"}`, "", ""},
		{0, "", "DELETE", s.URL + "/api/data/v9.2/accounts(accountnumber='A''1%20%26x')", "", "If-Match", `W/"7"`},
		{0, "", "GET", s.URL + "/api/data/v9.2/accounts?$select=name", "", "", ""},
	}
	for i, w := range want {
		g := got[i]
		if g.changeSet != w.cs || g.contentID != w.id || g.req.Method != w.method || g.req.RequestURI != w.uri || g.body != w.body {
			t.Errorf("request %d = cs %d id %q %s %s %q\nwant cs %d id %q %s %s %q", i,
				g.changeSet, g.contentID, g.req.Method, g.req.RequestURI, g.body, w.cs, w.id, w.method, w.uri, w.body)
		}
		if w.headerKey != "" && g.req.Header.Get(w.headerKey) != w.headerValue {
			t.Errorf("request %d header %s = %q, want %q", i, w.headerKey, g.req.Header.Get(w.headerKey), w.headerValue)
		}
	}

	if len(res) != 4 {
		t.Fatalf("%d responses, want 4", len(res))
	}
	for i := range 2 {
		if res[i].Err != nil || res[i].Status != 204 || res[i].EntityID != "11111111-1111-1111-1111-111111111111" {
			t.Errorf("response %d = %+v", i, res[i])
		}
	}
	var e *Error
	if !errors.As(res[2].Err, &e) || e.StatusCode != 404 || e.Code != "0x80060891" || e.Method != "DELETE" {
		t.Errorf("response 2 err = %v", res[2].Err)
	}
	if !IsNotFound(res[2].Err) {
		t.Error("IsNotFound(response 2) = false")
	}
	if res[3].Err != nil || res[3].Status != 200 || string(res[3].Body) != `{"value":[]}` {
		t.Errorf("response 3 = %+v (body %q)", res[3], res[3].Body)
	}
}

func TestBatchFailedChangeSetAndStop(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		// The change set failed as a whole; without continue-on-error the
		// service stops, so the last request has no answer.
		ct, body := multipartAnswer(created, dupKey)
		w.Header().Set("Content-Type", ct)
		io.WriteString(w, body)
	})
	c := newClient(t, s)
	up := func(n string) BatchRequest {
		r, err := UpsertRequest("accounts", Key{Alternate: []KeyPart{{"accountnumber", n}}}, []byte(`{}`), WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	res, err := c.Batch(t.Context(), []BatchPart{
		{Request: up("A1")},
		{ChangeSet: []BatchRequest{up("A2"), up("A3")}},
		{Request: up("A4")},
	}, BatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 4 || res[0].Err != nil {
		t.Fatalf("responses %+v", res)
	}
	for _, i := range []int{1, 2} {
		var e *Error
		if !errors.As(res[i].Err, &e) || e.StatusCode != 412 || e.Code != "0x80060892" {
			t.Errorf("change set request %d err = %v", i, res[i].Err)
		}
	}
	if !errors.Is(res[3].Err, ErrNotExecuted) || res[3].Status != 0 {
		t.Errorf("request after the failure = %+v, want ErrNotExecuted", res[3])
	}
	if p := s.only(t).Header.Get("Prefer"); p != "" {
		t.Errorf("Prefer = %q without ContinueOnError", p)
	}
}

func TestBatchWholeFailureIsError(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		jsonReply(429, `{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit"}}`)(w, r)
	})
	c := newClient(t, s)
	del, _ := DeleteRequest("accounts", Key{ID: "11111111-1111-1111-1111-111111111111"}, WriteOptions{})
	_, err := c.Batch(t.Context(), []BatchPart{{Request: del}}, BatchOptions{})
	var e *Error
	if !errors.As(err, &e) || !e.Temporary() || e.RetryAfter.Seconds() != 3 {
		t.Fatalf("err = %v, want a temporary *Error with Retry-After", err)
	}
}

func TestBatchRejectsBadInput(t *testing.T) {
	s := newServer(t, jsonReply(500, ""))
	c := newClient(t, s)
	many := make([]BatchPart, MaxBatchRequests+1)
	for i := range many {
		many[i].Request = BatchRequest{Method: "DELETE", Path: "accounts(1)"}
	}
	for name, parts := range map[string][]BatchPart{
		"too many":         many,
		"GET in changeset": {{ChangeSet: []BatchRequest{{Method: "GET", Path: "accounts"}}}},
		"header injection": {{Request: BatchRequest{Method: "DELETE", Path: "accounts(1)", Header: http.Header{"X": {"a\r\nB: c"}}}}},
		"path with space":  {{Request: BatchRequest{Method: "DELETE", Path: "accounts(1) HTTP/1.1\r\n"}}},
	} {
		if _, err := c.Batch(t.Context(), parts, BatchOptions{}); err == nil {
			t.Errorf("%s: Batch succeeded", name)
		}
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("server saw %d requests for invalid batches", n)
	}
}

func TestWriteOptionalHeaders(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c := newClient(t, s)
	on := false
	_, err := c.Upsert(t.Context(), "accounts", Key{ID: "11111111-1111-1111-1111-111111111111"}, []byte(`{}`), WriteOptions{
		SuppressDuplicateDetection:   &on,
		BypassCustomPluginExecution:  true,
		BypassBusinessLogicExecution: "CustomSync,CustomAsync",
		Tag:                          "dvsync&x=1",
		CallerObjectID:               "22222222-2222-2222-2222-222222222222",
	})
	if err != nil {
		t.Fatal(err)
	}
	r := s.only(t)
	if r.RequestURI != "/api/data/v9.2/accounts(11111111-1111-1111-1111-111111111111)?tag=dvsync%26x%3D1" {
		t.Errorf("RequestURI = %s", r.RequestURI)
	}
	for k, v := range map[string]string{
		"MSCRM.SuppressDuplicateDetection":   "false",
		"MSCRM.BypassCustomPluginExecution":  "true",
		"MSCRM.BypassBusinessLogicExecution": "CustomSync,CustomAsync",
		"CallerObjectId":                     "22222222-2222-2222-2222-222222222222",
	} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}
