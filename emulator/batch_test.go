package emulator_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// batchReq is one request of a test batch.
type batchReq struct {
	method, target, body, contentID string
}

// batchBody renders requests as a $batch body; a nil-separated group in
// changesets becomes a change set. eol is the line end to use.
func batchBody(eol string, items ...any) string {
	var b strings.Builder
	line := func(s string) { b.WriteString(s + eol) }
	writeReq := func(r batchReq) {
		line("Content-Type: application/http")
		line("Content-Transfer-Encoding: binary")
		if r.contentID != "" {
			line("Content-ID: " + r.contentID)
		}
		line("")
		line(r.method + " " + r.target + " HTTP/1.1")
		if r.body != "" {
			line("Content-Type: application/json;type=entry")
			line("")
			line(r.body)
		} else {
			line("Accept: application/json")
			line("")
		}
	}
	for i, it := range items {
		line("--batch_test")
		switch it := it.(type) {
		case batchReq:
			writeReq(it)
		case []batchReq:
			cs := fmt.Sprintf("changeset_%d", i)
			line("Content-Type: multipart/mixed;boundary=" + cs)
			line("")
			for _, r := range it {
				line("--" + cs)
				writeReq(r)
			}
			line("--" + cs + "--")
		}
	}
	line("--batch_test--")
	return b.String()
}

// partResp is one response part of a batch answer.
type partResp struct {
	changeset bool // inside a change-set response
	contentID string
	status    int
	header    http.Header
	body      []byte
}

func (a *api) batch(body string, headers ...string) (*response, []partResp) {
	a.t.Helper()
	headers = append([]string{"Content-Type", "multipart/mixed;boundary=batch_test"}, headers...)
	r := a.do("POST", "$batch", body, headers...).must(a.t, http.StatusOK)
	mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || !strings.HasPrefix(params["boundary"], "batchresponse_") {
		a.t.Fatalf("batch response Content-Type %q", r.header.Get("Content-Type"))
	}
	parts, err := readParts(bytes.NewReader(r.body), params["boundary"], false)
	if err != nil {
		a.t.Fatalf("batch response: %v\n%s", err, r.body)
	}
	return r, parts
}

func readParts(rd io.Reader, boundary string, inChangeset bool) ([]partResp, error) {
	var out []partResp
	mr := multipart.NewReader(rd, boundary)
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		mt, params, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if mt == "multipart/mixed" {
			if inChangeset || !strings.HasPrefix(params["boundary"], "changesetresponse_") {
				return nil, fmt.Errorf("unexpected nested part %q", p.Header.Get("Content-Type"))
			}
			inner, err := readParts(p, params["boundary"], true)
			if err != nil {
				return nil, err
			}
			out = append(out, inner...)
			continue
		}
		if mt != "application/http" || p.Header.Get("Content-Transfer-Encoding") != "binary" {
			return nil, fmt.Errorf("part headers %v", p.Header)
		}
		resp, err := http.ReadResponse(bufio.NewReader(p), nil)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		out = append(out, partResp{
			changeset: inChangeset, contentID: p.Header.Get("Content-ID"),
			status: resp.StatusCode, header: resp.Header, body: bytes.TrimSpace(body),
		})
	}
}

func (p partResp) obj(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(p.body, &m); err != nil {
		t.Fatalf("part body is not JSON: %v\n%s", err, p.body)
	}
	return m
}

func TestBatchChangesetWithReferences(t *testing.T) {
	for _, eol := range []string{"\r\n", "\n"} {
		a := startAPI(t)
		body := batchBody(eol,
			[]batchReq{
				{method: "POST", target: a.base + "/accounts", contentID: "1", body: `{"name":"Fabrikam East","accountnumber":"FAB-0001"}`},
				{method: "POST", target: "/api/data/v9.2/contacts", contentID: "2", body: `{"lastname":"Silva","parentcustomerid_account@odata.bind":"$1"}`},
				{method: "PATCH", target: "$1", contentID: "3", body: `{"description":"patched through $1"}`},
			},
			batchReq{method: "GET", target: "accounts?$select=name,accountnumber&$filter=startswith(accountnumber,'FAB-')"},
		)
		_, parts := a.batch(body)
		if len(parts) != 4 {
			t.Fatalf("eol %q: %d parts, want 4", eol, len(parts))
		}
		for i, p := range parts[:3] {
			if !p.changeset || p.status != http.StatusNoContent || p.contentID != fmt.Sprint(i+1) {
				t.Fatalf("part %d: changeset=%v status=%d Content-ID=%q", i, p.changeset, p.status, p.contentID)
			}
			if p.header.Get("OData-Version") != "4.0" {
				t.Errorf("part %d: OData-Version %q", i, p.header.Get("OData-Version"))
			}
			if p.header.Get("Location") == "" || p.header.Get("Location") != p.header.Get("OData-EntityId") {
				t.Errorf("part %d: Location %q, OData-EntityId %q", i, p.header.Get("Location"), p.header.Get("OData-EntityId"))
			}
		}
		accountURI := parts[0].header.Get("OData-EntityId")
		if parts[2].header.Get("OData-EntityId") != accountURI {
			t.Errorf("PATCH $1 wrote %q, want %q", parts[2].header.Get("OData-EntityId"), accountURI)
		}
		contact := a.get(strings.TrimPrefix(parts[1].header.Get("OData-EntityId"), a.base+"/"))
		if got := contact["_parentcustomerid_value"]; !strings.Contains(accountURI, fmt.Sprint(got)) {
			t.Errorf("contact's parent %v, want the account %s", got, accountURI)
		}
		get := parts[3]
		if get.changeset || get.status != http.StatusOK {
			t.Fatalf("GET part: changeset=%v status=%d", get.changeset, get.status)
		}
		rows := get.obj(t)["value"].([]any)
		if len(rows) != 1 || rows[0].(map[string]any)["description"] != nil {
			t.Errorf("GET rows %v", rows)
		}
		acc := a.get(strings.TrimPrefix(accountURI, a.base+"/"))
		if acc["description"] != "patched through $1" {
			t.Errorf("account description %v", acc["description"])
		}
	}
}

func TestBatchChangesetRollsBack(t *testing.T) {
	a := startAPI(t)
	kept := a.create("accounts", map[string]any{"name": "Kept", "accountnumber": "K-1"})
	doomed := a.create("accounts", map[string]any{"name": "Doomed", "accountnumber": "D-1"})
	a.create("contacts", map[string]any{"lastname": "Taken", "emailaddress1": "taken@example.com"})

	changeset := []batchReq{
		{method: "POST", target: "accounts", contentID: "1", body: `{"name":"New","accountnumber":"N-1"}`},
		{method: "PATCH", target: "accounts(" + kept + ")", contentID: "2", body: `{"name":"Renamed","accountnumber":"K-2"}`},
		{method: "DELETE", target: "accounts(" + doomed + ")", contentID: "3"},
		{method: "POST", target: "contacts", contentID: "4", body: `{"lastname":"Dup","emailaddress1":"taken@example.com","parentcustomerid_account@odata.bind":"$1"}`},
	}
	get := batchReq{method: "GET", target: "accounts?$select=name"}

	_, parts := a.batch(batchBody("\r\n", changeset, get))
	if len(parts) != 1 {
		t.Fatalf("%d parts, want only the failed change set's error", len(parts))
	}
	p := parts[0]
	if p.changeset || p.status != http.StatusPreconditionFailed || p.contentID != "4" {
		t.Fatalf("failed part: changeset=%v status=%d Content-ID=%q; %s", p.changeset, p.status, p.contentID, p.body)
	}
	if e := p.obj(t)["error"].(map[string]any); e["code"] != "0x80060892" {
		t.Errorf("error %v", e)
	}
	assertRolledBack := func() {
		t.Helper()
		if got := a.get("accounts(" + kept + ")"); got["name"] != "Kept" || got["accountnumber"] != "K-1" {
			t.Errorf("updated row not restored: %v", got)
		}
		a.get("accounts(accountnumber='K-1')")
		a.do("GET", "accounts(accountnumber='K-2')", nil).must(t, http.StatusNotFound)
		a.get("accounts(" + doomed + ")")
		a.get("accounts(accountnumber='D-1')")
		a.do("GET", "accounts(accountnumber='N-1')", nil).must(t, http.StatusNotFound)
		if n := len(a.do("GET", "accounts", nil).must(t, http.StatusOK).rows(t)); n != 2 {
			t.Errorf("%d accounts after rollback, want 2", n)
		}
	}
	assertRolledBack()

	// With odata.continue-on-error the request after the failed change set
	// still runs.
	r, parts := a.batch(batchBody("\r\n", changeset, get), "Prefer", "odata.continue-on-error")
	if len(parts) != 2 || parts[0].status != http.StatusPreconditionFailed || parts[1].status != http.StatusOK {
		t.Fatalf("continue-on-error parts: %+v", parts)
	}
	if r.header.Get("Preference-Applied") != "odata.continue-on-error" {
		t.Errorf("Preference-Applied %q", r.header.Get("Preference-Applied"))
	}
	assertRolledBack()
}

func TestBatchStopsAtFirstFailure(t *testing.T) {
	a := startAPI(t)
	_, parts := a.batch(batchBody("\r\n",
		batchReq{method: "POST", target: "accounts", body: `{"name":"One"}`},
		batchReq{method: "GET", target: "accounts(00000000-0000-0000-0000-000000000001)"},
		batchReq{method: "POST", target: "accounts", body: `{"name":"Never"}`},
	))
	if len(parts) != 2 || parts[0].status != http.StatusNoContent || parts[1].status != http.StatusNotFound {
		t.Fatalf("parts %+v", parts)
	}
	if n := len(a.do("GET", "accounts", nil).must(t, http.StatusOK).rows(t)); n != 1 {
		t.Errorf("%d accounts, want 1: the request after the failure must not run", n)
	}
}

func TestBatchRejects(t *testing.T) {
	a := startAPI(t)
	many := make([]any, 1001)
	for i := range many {
		many[i] = batchReq{method: "GET", target: "accounts?$top=1"}
	}
	tooMany := a.do("POST", "$batch", batchBody("\r\n", many...), "Content-Type", "multipart/mixed;boundary=batch_test")
	wantErr(t, tooMany, http.StatusBadRequest, "0x80060888", "maximum number of '1000'")

	getInChangeset := a.do("POST", "$batch", batchBody("\r\n", []batchReq{{method: "GET", target: "accounts"}}),
		"Content-Type", "multipart/mixed;boundary=batch_test")
	wantErr(t, getInChangeset, http.StatusBadRequest, "0x80060888", "GET")

	noBoundary := a.do("POST", "$batch", batchBody("\r\n", batchReq{method: "GET", target: "accounts"}), "Content-Type", "application/json")
	wantErr(t, noBoundary, http.StatusBadRequest, "0x80060888", "multipart/mixed")

	// A reference to a Content-ID outside the change set fails it.
	_, parts := a.batch(batchBody("\r\n", []batchReq{{method: "PATCH", target: "$7", body: `{"name":"x"}`}}))
	if len(parts) != 1 || parts[0].status != http.StatusBadRequest {
		t.Fatalf("parts %+v", parts)
	}
}
