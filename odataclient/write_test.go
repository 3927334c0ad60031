package odataclient

import (
	"errors"
	"net/http"
	"testing"
)

const accountID = "7eb682f1-ca75-e511-80d4-00155d2a68d1"

func TestCreate(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("OData-EntityId", "http://x/api/data/v9.2/accounts("+accountID+")")
		w.WriteHeader(http.StatusNoContent)
	})
	c := newClient(t, s)
	body := []byte(`{"name":"Sample Account","revenue":5000000}`)
	res, err := c.Create(t.Context(), "accounts", body, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := s.only(t)
	if r.Method != http.MethodPost || r.RequestURI != "/api/data/v9.2/accounts" || r.Body != string(body) {
		t.Fatalf("request = %s %s %s", r.Method, r.RequestURI, r.Body)
	}
	wantHeaders(t, r, true)
	for _, h := range []string{"If-Match", "If-None-Match", "Prefer"} {
		if v := r.Header.Get(h); v != "" {
			t.Errorf("unexpected %s: %q", h, v)
		}
	}
	if res.Status != 204 || res.EntityID != accountID || res.Body != nil || res.ETag != "" {
		t.Fatalf("result = %+v", res)
	}
}

func TestCreateReturnRepresentation(t *testing.T) {
	const row = `{"@odata.context":"x","@odata.etag":"W/\"536530\"","accountid":"` + accountID + `","name":"A"}`
	s := newServer(t, jsonReply(http.StatusCreated, row))
	c := newClient(t, s)
	hdr := http.Header{}
	hdr.Set("Prefer", `odata.include-annotations="*"`)
	hdr.Set("MSCRM.SuppressDuplicateDetection", "false")
	res, err := c.Create(t.Context(), "accounts", []byte(`{"name":"A"}`), WriteOptions{ReturnRepresentation: true, Headers: hdr})
	if err != nil {
		t.Fatal(err)
	}
	r := s.only(t)
	if got := r.Header.Get("Prefer"); got != `return=representation,odata.include-annotations="*"` {
		t.Errorf("Prefer = %q", got)
	}
	if got := r.Header.Get("MSCRM.SuppressDuplicateDetection"); got != "false" {
		t.Errorf("extra header = %q", got)
	}
	if res.Status != 201 || res.ETag != `W/"536530"` || string(res.Body) != row || res.EntityID != "" {
		t.Fatalf("result = %+v", res)
	}
}

func TestExtraHeadersCannotReplaceAuthorization(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c := newClient(t, s)
	hdr := http.Header{"Authorization": {"Bearer other"}}
	if _, err := c.Create(t.Context(), "accounts", []byte(`{}`), WriteOptions{Headers: hdr}); err != nil {
		t.Fatal(err)
	}
	if got := s.only(t).Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+testToken {
		t.Fatalf("Authorization = %q", got)
	}
}

func TestUpdateSendsIfMatch(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("OData-EntityId", "http://x/api/data/v9.2/accounts("+accountID+")")
		w.WriteHeader(http.StatusNoContent)
	})
	c := newClient(t, s)
	key := Key{ID: accountID}
	if _, err := c.Update(t.Context(), "accounts", key, []byte(`{"name":"B"}`), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Update(t.Context(), "accounts", key, []byte(`{"name":"C"}`), WriteOptions{IfMatch: `W/"470867"`}); err != nil {
		t.Fatal(err)
	}
	reqs := s.requests()
	for i, want := range []string{"*", `W/"470867"`} {
		r := reqs[i]
		if r.Method != http.MethodPatch || r.RequestURI != "/api/data/v9.2/accounts("+accountID+")" {
			t.Errorf("request %d = %s %s", i, r.Method, r.RequestURI)
		}
		if got := r.Header.Get("If-Match"); got != want {
			t.Errorf("request %d If-Match = %q, want %q", i, got, want)
		}
		wantHeaders(t, r, true)
	}
}

func TestUpsertByAlternateKey(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("OData-EntityId", "http://x/api/data/v9.2/accounts("+accountID+")")
		w.Header().Set("ETag", `W/"71004878"`)
		w.WriteHeader(http.StatusNoContent)
	})
	c := newClient(t, s)
	key := Key{Alternate: []KeyPart{{"accountnumber", "A'1"}, {"tenant", 5}}}
	res, err := c.Upsert(t.Context(), "accounts", key, []byte(`{"name":"A"}`), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := s.only(t)
	if r.Method != http.MethodPatch || r.RequestURI != "/api/data/v9.2/accounts(accountnumber='A''1',tenant=5)" || r.Body != `{"name":"A"}` {
		t.Fatalf("request = %s %s %s", r.Method, r.RequestURI, r.Body)
	}
	if v, ok := r.Header["If-Match"]; ok {
		t.Errorf("upsert sent If-Match %q", v)
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		t.Errorf("upsert sent If-None-Match %q", v)
	}
	wantHeaders(t, r, true)
	if res.Status != 204 || res.EntityID != accountID || res.ETag != `W/"71004878"` {
		t.Fatalf("result = %+v", res)
	}
}

func TestUpsertCreateOnlyConflict(t *testing.T) {
	s := newServer(t, jsonReply(http.StatusPreconditionFailed,
		`{"error":{"code":"","message":"A record with matching key values already exists."}}`))
	c := newClient(t, s)
	key := Key{Alternate: []KeyPart{{"accountnumber", "A1"}}}
	_, err := c.Upsert(t.Context(), "accounts", key, []byte(`{}`), WriteOptions{IfNoneMatch: "*"})
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 412 || e.Message != "A record with matching key values already exists." || e.Temporary() {
		t.Fatalf("err = %#v", err)
	}
	if got := s.only(t).Header.Get("If-None-Match"); got != "*" {
		t.Fatalf("If-None-Match = %q", got)
	}
}

func TestDelete(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/data/v9.2/accounts(accountnumber='gone')" {
			jsonReply(404, `{"error":{"code":"0x80060891","message":"A record with the specified key values does not exist in account entity"}}`)(w, r)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	c := newClient(t, s)
	if err := c.Delete(t.Context(), "accounts", Key{ID: accountID}, WriteOptions{IfMatch: `W/"1"`}); err != nil {
		t.Fatal(err)
	}
	r := s.only(t)
	if r.Method != http.MethodDelete || r.RequestURI != "/api/data/v9.2/accounts("+accountID+")" || r.Body != "" {
		t.Fatalf("request = %s %s %q", r.Method, r.RequestURI, r.Body)
	}
	if r.Header.Get("If-Match") != `W/"1"` {
		t.Errorf("If-Match = %q", r.Header.Get("If-Match"))
	}
	wantHeaders(t, r, false)

	err := c.Delete(t.Context(), "accounts", Key{Alternate: []KeyPart{{"accountnumber", "gone"}}}, WriteOptions{})
	if !IsNotFound(err) {
		t.Fatalf("delete of a missing row: %v, want a 404 *Error", err)
	}
	var e *Error
	errors.As(err, &e)
	if e.Code != "0x80060891" || e.Method != http.MethodDelete || e.Temporary() {
		t.Fatalf("error = %#v", e)
	}
}

func TestEmptyBodyStillSendsContentType(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c := newClient(t, s)
	if _, err := c.Upsert(t.Context(), "accounts", Key{ID: accountID}, nil, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	r := s.only(t)
	if r.Body != "" || r.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("body %q, Content-Type %q", r.Body, r.Header.Get("Content-Type"))
	}
}

func TestBodyBufferMayBeReused(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c := newClient(t, s)
	buf := make([]byte, 0, 64)
	for i := range 3 {
		buf = append(buf[:0], `{"n":`...)
		buf = append(buf, byte('0'+i), '}')
		if _, err := c.Create(t.Context(), "accounts", buf, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range s.requests() {
		if want := `{"n":` + string(rune('0'+i)) + `}`; r.Body != want {
			t.Errorf("request %d body %q, want %q", i, r.Body, want)
		}
	}
}
