package emulator_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/emulator"
)

// testSchema covers every attribute type, a lookup with one target, a
// polymorphic lookup, single and composite alternate keys, and a key that
// contains a lookup.
const testSchema = `
version: 1
tables:
  - logical_name: account
    entity_set: accounts
    primary_id: accountid
    primary_name: name
    change_tracking: true
    attributes:
      - {name: name, type: string, max_length: 160}
      - {name: accountnumber, type: string, max_length: 20}
      - {name: emailaddress1, type: string, max_length: 100}
      - {name: creditlimit, type: money}
      - {name: numberofemployees, type: integer}
      - {name: description, type: memo}
      - {name: revenue, type: decimal, precision: 2}
      - {name: latitude, type: double, precision: 5}
      - {name: donotemail, type: boolean}
      - {name: lastcontacted, type: datetime}
      - {name: foundedon, type: dateonly}
      - {name: externalid, type: uniqueidentifier}
      - {name: bigcount, type: bigint}
      - {name: industrycode, type: picklist, options: [1, 2, 3]}
      - {name: parentaccountid, type: lookup, targets: [account]}
    keys:
      - {name: accountnumber_key, attributes: [accountnumber]}
  - logical_name: contact
    entity_set: contacts
    primary_name: lastname
    attributes:
      - {name: firstname, type: string, max_length: 50}
      - {name: lastname, type: string, max_length: 50}
      - {name: emailaddress1, type: string, max_length: 100}
      - {name: parentcustomerid, type: lookup, targets: [account, contact]}
    keys:
      - {name: emailaddress1_key, attributes: [emailaddress1]}
  - logical_name: dvs_line
    entity_set: dvs_lines
    attributes:
      - {name: dvs_order, type: string, max_length: 20}
      - {name: dvs_lineno, type: integer}
      - {name: dvs_qty, type: integer}
    keys:
      - {name: dvs_order_line, attributes: [dvs_order, dvs_lineno]}
  - logical_name: dvs_membership
    entity_set: dvs_memberships
    attributes:
      - {name: dvs_accountid, type: lookup, targets: [account]}
      - {name: dvs_role, type: picklist, options: [1, 2]}
      - {name: dvs_note, type: string}
    keys:
      - {name: dvs_account_role, attributes: [dvs_accountid, dvs_role]}
`

const testToken = "s3cret-token"

// api is a small client for the emulator under test, over real HTTP.
type api struct {
	t    *testing.T
	root string // http://127.0.0.1:port
	base string // root + /api/data/v9.2
}

func startAPI(t *testing.T) *api {
	t.Helper()
	schema, err := emulator.ParseSchema([]byte(testSchema), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := emulator.New(schema, emulator.Options{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &api{t: t, root: hs.URL, base: hs.URL + "/api/data/v9.2"}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// obj decodes the body as a JSON object, keeping numbers exact.
func (r *response) obj(t *testing.T) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.body)
	}
	return m
}

// rows returns the "value" array of a collection response.
func (r *response) rows(t *testing.T) []map[string]any {
	t.Helper()
	vals, ok := r.obj(t)["value"].([]any)
	if !ok {
		t.Fatalf("no value array in %s", r.body)
	}
	out := make([]map[string]any, len(vals))
	for i, v := range vals {
		out[i] = v.(map[string]any)
	}
	return out
}

// apiErr returns the error code and message of an error body.
func (r *response) apiErr(t *testing.T) (code, message string) {
	t.Helper()
	e, ok := r.obj(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("not an error body: %s", r.body)
	}
	code, _ = e["code"].(string)
	message, _ = e["message"].(string)
	return code, message
}

// do sends a request and fails the test if it cannot; see send.
func (a *api) do(method, path string, body any, headers ...string) *response {
	a.t.Helper()
	r, err := a.send(method, path, body, headers...)
	if err != nil {
		a.t.Fatal(err)
	}
	return r
}

// send sends a request; path is relative to /api/data/v9.2/ unless it starts
// with "http" or "/". body may be nil, a string (sent as is) or a value
// marshalled as JSON. headers are name, value pairs; an empty value removes
// the header. It does not touch the test, so goroutines may call it.
func (a *api) send(method, path string, body any, headers ...string) (*response, error) {
	url := path
	switch {
	case strings.HasPrefix(path, "http"):
	case strings.HasPrefix(path, "/"):
		url = a.root + path
	default:
		url = a.base + "/" + path
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	req.Header.Set("OData-MaxVersion", "4.0")
	req.Header.Set("If-None-Match", "null")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// must fails the test unless the response has the status.
func (r *response) must(t *testing.T, status int) *response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

var entityIDRE = regexp.MustCompile(`\(([0-9a-f-]{36})\)$`)

// create posts body to set and returns the new row's id.
func (a *api) create(set string, body any) string {
	a.t.Helper()
	r := a.do("POST", set, body).must(a.t, http.StatusNoContent)
	m := entityIDRE.FindStringSubmatch(r.header.Get("OData-EntityId"))
	if m == nil {
		a.t.Fatalf("OData-EntityId %q does not end in (<guid>)", r.header.Get("OData-EntityId"))
	}
	return m[1]
}

// get retrieves one row and returns it.
func (a *api) get(path string) map[string]any {
	a.t.Helper()
	return a.do("GET", path, nil).must(a.t, http.StatusOK).obj(a.t)
}

func wantErr(t *testing.T, r *response, status int, code, msgPart string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	gotCode, msg := r.apiErr(t)
	if gotCode != code {
		t.Errorf("error code %q, want %q (message %q)", gotCode, code, msg)
	}
	if !strings.Contains(msg, msgPart) {
		t.Errorf("error message %q does not contain %q", msg, msgPart)
	}
}

func num(t *testing.T, v any) string {
	t.Helper()
	n, ok := v.(json.Number)
	if !ok {
		t.Fatalf("%v (%T) is not a JSON number", v, v)
	}
	return string(n)
}
