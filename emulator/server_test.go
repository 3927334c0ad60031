package emulator_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/emulator"
)

func TestAuthentication(t *testing.T) {
	a := startAPI(t)
	for _, tc := range []struct {
		name, header string
	}{
		{"missing", ""},
		{"wrong token", "Bearer not-the-token"},
		{"token prefix", "Bearer " + testToken[:4]},
		{"wrong scheme", "Basic " + testToken},
		{"no scheme", testToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a.do("GET", "accounts", nil, "Authorization", tc.header)
			wantErr(t, r, http.StatusUnauthorized, "0x80044302", "Request is not authenticated.")
			if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
			}
			if got := r.header.Get("OData-Version"); got != "4.0" {
				t.Errorf("OData-Version %q on 401", got)
			}
		})
	}
	t.Run("scheme is case-insensitive", func(t *testing.T) {
		a.do("GET", "accounts", nil, "Authorization", "bearer "+testToken).must(t, http.StatusOK)
	})
}

func TestResponseHeaders(t *testing.T) {
	a := startAPI(t)
	r := a.do("GET", "accounts", nil).must(t, http.StatusOK)
	if got := r.header.Get("OData-Version"); got != "4.0" {
		t.Errorf("OData-Version %q", got)
	}
	if got := r.header.Get("Content-Type"); got != "application/json; odata.metadata=minimal" {
		t.Errorf("Content-Type %q", got)
	}
	// Error responses are JSON too.
	r = a.do("GET", "nosuchset", nil)
	if got := r.header.Get("Content-Type"); got != "application/json; odata.metadata=minimal" {
		t.Errorf("error Content-Type %q", got)
	}
	if got := r.header.Get("OData-Version"); got != "4.0" {
		t.Errorf("error OData-Version %q", got)
	}
}

func TestRouting(t *testing.T) {
	a := startAPI(t)
	for _, tc := range []struct {
		name, method, path string
		status             int
		code, msg          string
	}{
		{"unknown entity set", "GET", "acounts", 404, "0x80060888", "Resource not found for the segment 'acounts'."},
		{"logical name is not an entity set", "GET", "account", 404, "0x80060888", "Resource not found for the segment 'account'."},
		{"outside the API", "GET", "/api/other", 404, "0x80060888", "Resource not found"},
		{"unknown API version", "GET", "/api/data/v8.2/accounts", 404, "0x80060888", "Resource not found"},
		{"PUT on a collection", "PUT", "accounts", 405, "0x80060888", "does not support http method 'PUT'"},
		{"POST on a record", "POST", "accounts(00000000-0000-0000-0000-000000000001)", 405, "0x80060888", "'POST'"},
		{"batch without multipart body", "POST", "$batch", 400, "0x80060888", "multipart/mixed"},
		{"GET on batch", "GET", "$batch", 405, "0x80060888", "'GET'"},
		{"navigation paths are not implemented", "GET", "accounts(00000000-0000-0000-0000-000000000001)/name", 501, "0x80040216", "not implemented"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, a.do(tc.method, tc.path, nil), tc.status, tc.code, tc.msg)
		})
	}
}

func TestAPIVersions(t *testing.T) {
	a := startAPI(t)
	for _, v := range []string{"v9.0", "v9.1", "v9.2"} {
		t.Run(v, func(t *testing.T) {
			r := a.do("POST", "/api/data/"+v+"/accounts", map[string]any{"name": v}).must(t, http.StatusNoContent)
			id := r.header.Get("OData-EntityId")
			if !strings.HasPrefix(id, a.root+"/api/data/"+v+"/accounts(") {
				t.Errorf("OData-EntityId %q does not use the requested version", id)
			}
			body := a.do("GET", id, nil).must(t, http.StatusOK).obj(t)
			if body["name"] != v {
				t.Errorf("name %v", body["name"])
			}
		})
	}
}

func TestNewRequiresToken(t *testing.T) {
	s, err := emulator.ParseSchema([]byte(testSchema), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emulator.New(s, emulator.Options{}); err == nil {
		t.Fatal("New without a token succeeded")
	}
}
