package emulator_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var etagRE = regexp.MustCompile(`^W/"(\d+)"$`)

func etagOf(t *testing.T, row map[string]any) string {
	t.Helper()
	e, _ := row["@odata.etag"].(string)
	if !etagRE.MatchString(e) {
		t.Fatalf(`@odata.etag %q is not W/"<n>"`, e)
	}
	return e
}

func TestCreateAndRetrieve(t *testing.T) {
	a := startAPI(t)
	r := a.do("POST", "accounts", map[string]any{"name": "Contoso", "accountnumber": "A1"}).must(t, http.StatusNoContent)
	if len(r.body) != 0 {
		t.Errorf("204 with a body: %s", r.body)
	}
	loc := r.header.Get("OData-EntityId")
	m := entityIDRE.FindStringSubmatch(loc)
	if m == nil || !strings.HasPrefix(loc, a.base+"/accounts(") {
		t.Fatalf("OData-EntityId %q", loc)
	}
	id := m[1]

	got := a.do("GET", "accounts("+id+")", nil).must(t, http.StatusOK)
	row := got.obj(t)
	if row["@odata.context"] != a.base+"/$metadata#accounts/$entity" {
		t.Errorf("@odata.context %v", row["@odata.context"])
	}
	etag := etagOf(t, row)
	if got.header.Get("ETag") != etag {
		t.Errorf("ETag header %q, body etag %q", got.header.Get("ETag"), etag)
	}
	if row["accountid"] != id || row["name"] != "Contoso" || row["accountnumber"] != "A1" {
		t.Errorf("row %v", row)
	}
	// Unset columns come back as null; system columns are present.
	for _, col := range []string{"description", "creditlimit", "_parentaccountid_value"} {
		if v, ok := row[col]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", col, v, ok)
		}
	}
	if num(t, row["statecode"]) != "0" || num(t, row["statuscode"]) != "1" {
		t.Errorf("statecode %v statuscode %v", row["statecode"], row["statuscode"])
	}
	if `W/"`+num(t, row["versionnumber"])+`"` != etag {
		t.Errorf("versionnumber %v does not match etag %s", row["versionnumber"], etag)
	}
	created, err := time.Parse("2006-01-02T15:04:05Z", row["createdon"].(string))
	if err != nil || time.Since(created) > time.Minute || row["modifiedon"] != row["createdon"] {
		t.Errorf("createdon %v modifiedon %v (%v)", row["createdon"], row["modifiedon"], err)
	}
}

func TestCreateReturnRepresentation(t *testing.T) {
	a := startAPI(t)
	r := a.do("POST", "accounts?$select=name", map[string]any{"name": "Fabrikam", "accountnumber": "F1"},
		"Prefer", "return=representation").must(t, http.StatusCreated)
	if got := r.header.Get("Preference-Applied"); got != "return=representation" {
		t.Errorf("Preference-Applied %q", got)
	}
	if r.header.Get("OData-EntityId") != "" {
		t.Errorf("OData-EntityId sent with return=representation")
	}
	row := r.obj(t)
	if row["@odata.context"] != a.base+"/$metadata#accounts(name)/$entity" {
		t.Errorf("@odata.context %v", row["@odata.context"])
	}
	if r.header.Get("ETag") != etagOf(t, row) {
		t.Errorf("ETag header %q", r.header.Get("ETag"))
	}
	if row["name"] != "Fabrikam" || row["accountid"] == nil {
		t.Errorf("row %v", row)
	}
	if _, ok := row["accountnumber"]; ok {
		t.Errorf("$select ignored: %v", row)
	}
}

func TestCreateWithID(t *testing.T) {
	a := startAPI(t)
	const id = "9b2c3d4e-0000-4000-8000-00000000abcd"
	if got := a.create("accounts", map[string]any{"accountid": strings.ToUpper(id), "name": "x"}); got != id {
		t.Fatalf("created id %s, want %s", got, id)
	}
	wantErr(t, a.do("POST", "accounts", map[string]any{"accountid": id}), 412, "0x80040237", "duplicate key")
}

func TestRetrieveSelect(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"name": "Contoso", "accountnumber": "A1", "numberofemployees": 5})
	row := a.get("accounts(" + id + ")?$select=name,numberofemployees")
	if row["@odata.context"] != a.base+"/$metadata#accounts(name,numberofemployees)/$entity" {
		t.Errorf("@odata.context %v", row["@odata.context"])
	}
	want := map[string]bool{"@odata.context": true, "@odata.etag": true, "accountid": true, "name": true, "numberofemployees": true}
	for k := range row {
		if !want[k] {
			t.Errorf("unselected property %q returned", k)
		}
	}
	if len(row) != len(want) {
		t.Errorf("row %v, want keys %v", row, want)
	}
	wantErr(t, a.do("GET", "accounts("+id+")?$select=name,nosuchcolumn", nil),
		400, "0x80060888", "Could not find a property named 'nosuchcolumn' on type 'Microsoft.Dynamics.CRM.account'.")
}

func TestRetrieveByKey(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"name": "x", "accountnumber": "O'Neil-1"})
	lineID := a.create("dvs_lines", map[string]any{"dvs_order": "SO-1", "dvs_lineno": 5, "dvs_qty": 2})
	for _, tc := range []struct{ path, wantID string }{
		{"accounts(accountnumber='O''Neil-1')", id},
		{"accounts(accountnumber='o''neil-1')", id}, // string keys compare case-insensitively
		{"accounts(accountid=" + id + ")", id},
		{"dvs_lines(dvs_order='SO-1',dvs_lineno=5)", lineID},
		{"dvs_lines(dvs_lineno=5,dvs_order='SO-1')", lineID},
		{"dvs_lines(dvs_order='SO-1', dvs_lineno=5)", lineID},
	} {
		t.Run(tc.path, func(t *testing.T) {
			row := a.get(tc.path)
			pk := "accountid"
			if strings.HasPrefix(tc.path, "dvs_lines") {
				pk = "dvs_lineid"
			}
			if row[pk] != tc.wantID {
				t.Errorf("%s = %v, want %s", pk, row[pk], tc.wantID)
			}
		})
	}
	const badKey = "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.account'."
	for _, tc := range []struct {
		path, code, msg string
		status          int
	}{
		{"accounts(name='x')", "0x80060888", badKey, 400},
		{"accounts(accountnumber='A',name='x')", "0x80060888", badKey, 400},
		{"dvs_lines(dvs_order='SO-1')", "0x80060888", "Microsoft.Dynamics.CRM.dvs_line", 400},
		{"accounts(accountnumber=5)", "0x80060888", "not a valid Edm.String literal", 400},
		{"accounts(not-a-guid)", "0x80060888", "Unrecognized 'Edm.Guid' literal", 400},
		{"accounts(accountnumber='unterminated)", "0x80060888", "unterminated string literal", 400},
		{"accounts(accountnumber='nobody')", "0x80060891", "A record with the specified key values does not exist in account entity", 404},
		{"accounts(00000000-0000-0000-0000-000000000001)", "0x80040217", "account With Id = 00000000-0000-0000-0000-000000000001 Does Not Exist", 404},
	} {
		t.Run(tc.path, func(t *testing.T) {
			wantErr(t, a.do("GET", tc.path, nil), tc.status, tc.code, tc.msg)
		})
	}
}

func TestConditionalGet(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"name": "x"})
	etag := etagOf(t, a.get("accounts("+id+")"))
	r := a.do("GET", "accounts("+id+")", nil, "If-None-Match", etag).must(t, http.StatusNotModified)
	if r.header.Get("ETag") != etag || len(r.body) != 0 {
		t.Errorf("304 ETag %q body %q", r.header.Get("ETag"), r.body)
	}
	// Clients send If-None-Match: null on every request; it is no condition.
	a.do("GET", "accounts("+id+")", nil, "If-None-Match", "null").must(t, http.StatusOK)
	a.do("GET", "accounts("+id+")", nil, "If-None-Match", `W/"1"`+etag).must(t, http.StatusOK)
}

func TestUpdate(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"name": "before", "accountnumber": "A1", "description": "keep"})
	before := a.get("accounts(" + id + ")")

	r := a.do("PATCH", "accounts("+id+")", map[string]any{"name": "after"}, "If-Match", "*").must(t, http.StatusNoContent)
	if r.header.Get("OData-EntityId") != a.base+"/accounts("+id+")" {
		t.Errorf("OData-EntityId %q", r.header.Get("OData-EntityId"))
	}
	after := a.get("accounts(" + id + ")")
	if after["name"] != "after" || after["description"] != "keep" {
		t.Errorf("after update %v", after)
	}
	if etagOf(t, after) == etagOf(t, before) || num(t, after["versionnumber"]) <= num(t, before["versionnumber"]) {
		t.Errorf("versionnumber %v -> %v", before["versionnumber"], after["versionnumber"])
	}
	if after["createdon"] != before["createdon"] || after["modifiedon"].(string) < before["modifiedon"].(string) {
		t.Errorf("createdon %v -> %v, modifiedon %v -> %v", before["createdon"], after["createdon"], before["modifiedon"], after["modifiedon"])
	}

	// null clears a column.
	a.do("PATCH", "accounts("+id+")", map[string]any{"description": nil}, "If-Match", "*").must(t, http.StatusNoContent)
	if v := a.get("accounts(" + id + ")")["description"]; v != nil {
		t.Errorf("description %v after setting null", v)
	}

	// return=representation answers 200 with the row.
	r = a.do("PATCH", "accounts("+id+")?$select=name", map[string]any{"name": "again"},
		"If-Match", "*", "Prefer", "return=representation").must(t, http.StatusOK)
	if row := r.obj(t); row["name"] != "again" || r.header.Get("ETag") != etagOf(t, row) {
		t.Errorf("representation %v, ETag %q", row, r.header.Get("ETag"))
	}

	// If-Match: * never creates.
	const missing = "00000000-0000-0000-0000-0000000000aa"
	wantErr(t, a.do("PATCH", "accounts("+missing+")", map[string]any{"name": "x"}, "If-Match", "*"),
		404, "0x80040217", "account With Id = "+missing+" Does Not Exist")
	a.do("GET", "accounts("+missing+")", nil).must(t, http.StatusNotFound)
	wantErr(t, a.do("PATCH", "accounts(accountnumber='nope')", map[string]any{"name": "x"}, "If-Match", "*"),
		404, "0x80060891", "does not exist in account entity")
}

func TestOptimisticConcurrency(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"name": "v1"})
	etag1 := etagOf(t, a.get("accounts("+id+")"))
	a.do("PATCH", "accounts("+id+")", map[string]any{"name": "v2"}, "If-Match", etag1).must(t, http.StatusNoContent)
	etag2 := etagOf(t, a.get("accounts("+id+")"))

	const mismatch = "The version of the existing record doesn't match the RowVersion property provided."
	wantErr(t, a.do("PATCH", "accounts("+id+")", map[string]any{"name": "v3"}, "If-Match", etag1), 412, "0x80060882", mismatch)
	if got := a.get("accounts(" + id + ")")["name"]; got != "v2" {
		t.Errorf("stale update applied: name %v", got)
	}
	wantErr(t, a.do("DELETE", "accounts("+id+")", nil, "If-Match", etag1), 412, "0x80060882", mismatch)
	a.do("DELETE", "accounts("+id+")", nil, "If-Match", etag2).must(t, http.StatusNoContent)
	a.do("GET", "accounts("+id+")", nil).must(t, http.StatusNotFound)
}

func TestUpsert(t *testing.T) {
	a := startAPI(t)
	const id = "11111111-2222-4333-8444-555555555555"

	// Absent: PATCH creates the row with the id in the URL.
	r := a.do("PATCH", "accounts("+id+")", map[string]any{"name": "created"}).must(t, http.StatusNoContent)
	if r.header.Get("OData-EntityId") != a.base+"/accounts("+id+")" {
		t.Errorf("OData-EntityId %q", r.header.Get("OData-EntityId"))
	}
	if got := a.get("accounts(" + id + ")")["name"]; got != "created" {
		t.Errorf("name %v", got)
	}
	// Present: the same request updates, with the same answer.
	r = a.do("PATCH", "accounts("+id+")", map[string]any{"name": "updated"}).must(t, http.StatusNoContent)
	if r.header.Get("OData-EntityId") != a.base+"/accounts("+id+")" {
		t.Errorf("OData-EntityId %q", r.header.Get("OData-EntityId"))
	}
	if got := a.get("accounts(" + id + ")")["name"]; got != "updated" {
		t.Errorf("name %v", got)
	}

	// With return=representation: 201 when created, 200 when updated.
	const id2 = "11111111-2222-4333-8444-666666666666"
	a.do("PATCH", "accounts("+id2+")", map[string]any{"name": "n"}, "Prefer", "return=representation").must(t, http.StatusCreated)
	a.do("PATCH", "accounts("+id2+")", map[string]any{"name": "n"}, "Prefer", "return=representation").must(t, http.StatusOK)

	// A body id that contradicts the URL is refused.
	wantErr(t, a.do("PATCH", "accounts("+id+")", map[string]any{"accountid": id2}), 400, "0x80048d19", "does not match")
}

func TestUpsertByAlternateKey(t *testing.T) {
	a := startAPI(t)
	r := a.do("PATCH", "accounts(accountnumber='K-1')", map[string]any{"name": "by key"}).must(t, http.StatusNoContent)
	id := entityIDRE.FindStringSubmatch(r.header.Get("OData-EntityId"))
	if id == nil {
		t.Fatalf("OData-EntityId %q", r.header.Get("OData-EntityId"))
	}
	row := a.get("accounts(" + id[1] + ")")
	if row["accountnumber"] != "K-1" || row["name"] != "by key" {
		t.Errorf("created by key: %v", row)
	}

	// Update through the key: the URL's key value wins over the body's.
	a.do("PATCH", "accounts(accountnumber='K-1')", map[string]any{"name": "again", "accountnumber": "K-2"}).must(t, http.StatusNoContent)
	row = a.get("accounts(accountnumber='K-1')")
	if row["accountid"] != id[1] || row["name"] != "again" {
		t.Errorf("updated by key: %v", row)
	}

	// Composite key with a number.
	a.do("PATCH", "dvs_lines(dvs_order='SO-9',dvs_lineno=1)", map[string]any{"dvs_qty": 3}).must(t, http.StatusNoContent)
	line := a.get("dvs_lines(dvs_order='SO-9',dvs_lineno=1)")
	if line["dvs_order"] != "SO-9" || num(t, line["dvs_lineno"]) != "1" || num(t, line["dvs_qty"]) != "3" {
		t.Errorf("line %v", line)
	}

	// Create-only upsert.
	wantErr(t, a.do("PATCH", "accounts(accountnumber='K-1')", map[string]any{"name": "x"}, "If-None-Match", "*"),
		412, "0x80040237", "A record with matching key values already exists.")
	a.do("PATCH", "accounts(accountnumber='K-3')", map[string]any{"name": "x"}, "If-None-Match", "*").must(t, http.StatusNoContent)
	a.get("accounts(accountnumber='K-3')")
}

func TestDelete(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"accountnumber": "D1"})
	a.do("DELETE", "accounts("+id+")", nil).must(t, http.StatusNoContent)
	wantErr(t, a.do("DELETE", "accounts("+id+")", nil), 404, "0x80040217", "Does Not Exist")
	wantErr(t, a.do("GET", "accounts(accountnumber='D1')", nil), 404, "0x80060891", "does not exist")

	// By key; the key is free again afterwards.
	a.create("accounts", map[string]any{"accountnumber": "D1"})
	a.do("DELETE", "accounts(accountnumber='D1')", nil).must(t, http.StatusNoContent)
	wantErr(t, a.do("DELETE", "accounts(accountnumber='D1')", nil), 404, "0x80060891", "does not exist")
	a.create("accounts", map[string]any{"accountnumber": "D1"})
}

func TestDuplicateAlternateKey(t *testing.T) {
	a := startAPI(t)
	a.create("accounts", map[string]any{"accountnumber": "DUP"})
	const msg = "Entity Key accountnumber_key violated. A record with the same value for accountnumber already exists."
	wantErr(t, a.do("POST", "accounts", map[string]any{"accountnumber": "DUP"}), 412, "0x80060892", msg)
	wantErr(t, a.do("POST", "accounts", map[string]any{"accountnumber": "dup"}), 412, "0x80060892", msg)

	other := a.create("accounts", map[string]any{"accountnumber": "OTHER"})
	wantErr(t, a.do("PATCH", "accounts("+other+")", map[string]any{"accountnumber": "DUP"}, "If-Match", "*"), 412, "0x80060892", msg)
	if got := a.get("accounts(" + other + ")")["accountnumber"]; got != "OTHER" {
		t.Errorf("failed update changed the row: %v", got)
	}
	// Rows whose key is null do not collide.
	a.create("accounts", map[string]any{"name": "no number 1"})
	a.create("accounts", map[string]any{"name": "no number 2"})
	// Changing a row's own key value keeps it addressable by the new value only.
	a.do("PATCH", "accounts("+other+")", map[string]any{"accountnumber": "NEW"}, "If-Match", "*").must(t, http.StatusNoContent)
	a.get("accounts(accountnumber='NEW')")
	a.do("GET", "accounts(accountnumber='OTHER')", nil).must(t, http.StatusNotFound)
	a.create("accounts", map[string]any{"accountnumber": "OTHER"})
}

func TestBodyValidation(t *testing.T) {
	a := startAPI(t)
	const payload = "0x80048d19"
	for _, tc := range []struct {
		name   string
		body   any
		status int
		code   string
		msg    string
	}{
		{"unknown property", map[string]any{"name": "x", "nosuchcolumn": 1}, 400, payload,
			"The property 'nosuchcolumn' does not exist on type 'Microsoft.Dynamics.CRM.account'. Make sure to only use property names that are defined by the type or mark the type as open type."},
		{"string too long", map[string]any{"accountnumber": strings.Repeat("x", 21)}, 400, "0x80044331",
			"A validation error occurred.  The length of the 'accountnumber' attribute of the 'account' entity exceeded the maximum allowed length of '20'."},
		{"length counts UTF-16 units", map[string]any{"accountnumber": strings.Repeat("😀", 11)}, 400, "0x80044331", "'20'"},
		{"number for a string", map[string]any{"name": 5}, 400, payload, "Cannot convert the literal '5' to the expected type 'Edm.String'."},
		{"string for an integer", map[string]any{"numberofemployees": "12"}, 400, payload, "Cannot convert the literal '12' to the expected type 'Edm.Int32'."},
		{"fraction for an integer", map[string]any{"numberofemployees": 1.5}, 400, payload, "'Edm.Int32'"},
		{"integer overflow", map[string]any{"numberofemployees": 3000000000}, 400, payload, "'Edm.Int32'"},
		{"string for a boolean", map[string]any{"donotemail": "true"}, 400, payload, "'Edm.Boolean'"},
		{"bad datetime", map[string]any{"lastcontacted": "yesterday"}, 400, payload, "'Edm.DateTimeOffset'"},
		{"datetime before 1753", map[string]any{"lastcontacted": "1700-01-01T00:00:00Z"}, 400, "0x8004431a", "outside the valid range"},
		{"time for a dateonly", map[string]any{"foundedon": "2024-01-02T03:04:05Z"}, 400, payload, "'Edm.Date'"},
		{"bad guid", map[string]any{"externalid": "not-a-guid"}, 400, payload, "'Edm.Guid'"},
		{"picklist out of range", map[string]any{"industrycode": 7}, 400, "0x8004431a",
			"A validation error occurred. The value 7 of 'industrycode' on record of type 'account' is outside the valid range. Accepted Values: 1,2,3"},
		{"statecode out of range", map[string]any{"statecode": 5}, 400, "0x8004431a", "'statecode'"},
		{"money too large", map[string]any{"creditlimit": 1e15}, 400, "0x80040317", "Supplied value exceeded the MIN/MAX value of Money Type field."},
		{"decimal too large", map[string]any{"revenue": 1e12}, 400, "0x8004431a", "outside the valid range"},
		{"object for a column", map[string]any{"name": map[string]any{}}, 400, payload, "'StartObject'"},
		{"lookup property written directly", map[string]any{"_parentaccountid_value": "00000000-0000-0000-0000-000000000001"}, 400, payload,
			"CRM do not support direct update of Entity Reference properties, Use Navigation properties instead."},
		{"bind to an undeclared navigation property", map[string]any{"nosuchnav@odata.bind": "/accounts(00000000-0000-0000-0000-000000000001)"}, 400, payload,
			"An undeclared property 'nosuchnav' which only has property annotations"},
		{"wrong @odata.type", map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.contact"}, 400, payload, "could not be resolved"},
		{"not JSON", "{name", 400, payload, "Invalid JSON"},
		{"not an object", "[1]", 400, payload, "'StartObject' node was expected"},
		{"two objects", `{"name":"a"}{"name":"b"}`, 400, payload, "Invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, a.do("POST", "accounts", tc.body), tc.status, tc.code, tc.msg)
		})
	}
	t.Run("nothing was created", func(t *testing.T) {
		if rows := a.do("GET", "accounts", nil).must(t, 200).rows(t); len(rows) != 0 {
			t.Errorf("%d rows created by invalid requests", len(rows))
		}
	})
	t.Run("wrong content type", func(t *testing.T) {
		wantErr(t, a.do("POST", "accounts", `{"name":"x"}`, "Content-Type", "text/plain"), 415, payload, "text/plain")
	})
}

func TestValueForms(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{
		"@odata.type":       "Microsoft.Dynamics.CRM.account",
		"name":              "Wide Ünïcode <&> name",
		"creditlimit":       1000.5,
		"revenue":           1.005,
		"latitude":          47.6395831,
		"numberofemployees": -12,
		"bigcount":          9007199254740993,
		"donotemail":        true,
		"lastcontacted":     "2024-01-02T05:04:05.789+02:00",
		"foundedon":         "2020-10-01",
		"externalid":        "D6F193FC-CE85-E611-80D8-00155D2A68DE",
		"industrycode":      2,
		"description":       "",
		"createdon":         "2001-01-01T00:00:00Z", // read-only: ignored
		"versionnumber":     1,                      // read-only: ignored
	})
	r := a.do("GET", "accounts("+id+")", nil).must(t, http.StatusOK)
	row := r.obj(t)
	for col, want := range map[string]string{
		"creditlimit":       "1000.5000", // money: rounded to precision 2, written with 4 places
		"revenue":           "1.01",      // decimal: rounded half away from zero to precision 2
		"latitude":          "47.63958",  // double: precision 5
		"numberofemployees": "-12",
		"bigcount":          "9007199254740993",
		"industrycode":      "2",
	} {
		if got := num(t, row[col]); got != want {
			t.Errorf("%s = %s, want %s", col, got, want)
		}
	}
	for col, want := range map[string]any{
		"name":          "Wide Ünïcode <&> name",
		"donotemail":    true,
		"lastcontacted": "2024-01-02T03:04:05Z",
		"foundedon":     "2020-10-01",
		"externalid":    "d6f193fc-ce85-e611-80d8-00155d2a68de",
		"description":   nil, // the empty string is stored as null
	} {
		if row[col] != want {
			t.Errorf("%s = %#v, want %#v", col, row[col], want)
		}
	}
	if !strings.Contains(string(r.body), `"Wide Ünïcode <&> name"`) {
		t.Errorf("text is HTML-escaped: %s", r.body)
	}
	if row["createdon"] == "2001-01-01T00:00:00Z" || `W/"`+num(t, row["versionnumber"])+`"` != etagOf(t, row) {
		t.Errorf("read-only columns taken from the body: createdon %v versionnumber %v", row["createdon"], row["versionnumber"])
	}
}

func TestLookups(t *testing.T) {
	a := startAPI(t)
	parent := a.create("accounts", map[string]any{"name": "parent", "accountnumber": "P1"})
	child := a.create("accounts", map[string]any{
		"name":                       "child",
		"parentaccountid@odata.bind": "/accounts(" + parent + ")",
	})
	row := a.get("accounts(" + child + ")?$select=_parentaccountid_value")
	if row["_parentaccountid_value"] != parent {
		t.Errorf("_parentaccountid_value %v, want %s", row["_parentaccountid_value"], parent)
	}

	// Bind by alternate key, relative without a slash, and absolute.
	for i, uri := range []string{
		"accounts(accountnumber='P1')",
		a.base + "/accounts(" + parent + ")",
	} {
		c := a.create("contacts", map[string]any{
			"lastname":                            fmt.Sprint("c", i),
			"parentcustomerid_account@odata.bind": uri,
		})
		got := a.get("contacts(" + c + ")")
		if got["_parentcustomerid_value"] != parent {
			t.Errorf("bind %q: _parentcustomerid_value %v", uri, got["_parentcustomerid_value"])
		}
	}

	// Polymorphic lookup to the other target, with annotations.
	other := a.create("contacts", map[string]any{"lastname": "other"})
	c := a.create("contacts", map[string]any{"lastname": "x", "parentcustomerid_contact@odata.bind": "/contacts(" + other + ")"})
	r := a.do("GET", "contacts("+c+")?$select=_parentcustomerid_value", nil,
		"Prefer", `odata.include-annotations="*"`).must(t, http.StatusOK)
	got := r.obj(t)
	if got["_parentcustomerid_value"] != other ||
		got["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] != "contact" ||
		got["_parentcustomerid_value@Microsoft.Dynamics.CRM.associatednavigationproperty"] != "parentcustomerid_contact" {
		t.Errorf("annotated lookup %v", got)
	}
	if r.header.Get("Preference-Applied") != `odata.include-annotations="*"` {
		t.Errorf("Preference-Applied %q", r.header.Get("Preference-Applied"))
	}
	// Without the preference there are no annotations.
	for k := range a.get("contacts(" + c + ")") {
		if strings.Contains(k, "@Microsoft") {
			t.Errorf("annotation %s without the preference", k)
		}
	}

	// Clearing with a null bind.
	a.do("PATCH", "contacts("+c+")", map[string]any{"parentcustomerid_contact@odata.bind": nil}, "If-Match", "*").must(t, http.StatusNoContent)
	if v := a.get("contacts(" + c + ")")["_parentcustomerid_value"]; v != nil {
		t.Errorf("lookup not cleared: %v", v)
	}

	const missing = "00000000-0000-0000-0000-00000000beef"
	for _, tc := range []struct {
		name string
		body map[string]any
		code string
		msg  string
	}{
		{"missing target row", map[string]any{"parentcustomerid_account@odata.bind": "/accounts(" + missing + ")"}, "0x80040217", "account With Id = " + missing + " Does Not Exist"},
		{"missing target key", map[string]any{"parentcustomerid_account@odata.bind": "/accounts(accountnumber='none')"}, "0x80060891", "does not exist in account entity"},
		{"wrong entity set", map[string]any{"parentcustomerid_account@odata.bind": "/contacts(" + other + ")"}, "0x80048d19", "points at 'accounts'"},
		{"not a record URI", map[string]any{"parentcustomerid_account@odata.bind": "accounts"}, "0x80048d19", "not a valid record URI"},
		{"single-target name on a polymorphic lookup", map[string]any{"parentcustomerid@odata.bind": "/accounts(" + parent + ")"}, "0x80048d19", "undeclared property 'parentcustomerid'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := 400
			if tc.code != "0x80048d19" {
				status = 404
			}
			wantErr(t, a.do("POST", "contacts", tc.body), status, tc.code, tc.msg)
		})
	}
}

func TestKeyWithLookup(t *testing.T) {
	a := startAPI(t)
	acc := a.create("accounts", map[string]any{"name": "member"})
	key := "dvs_memberships(_dvs_accountid_value=" + acc + ",dvs_role=1)"

	// An upsert through the key creates the row with the key's lookup value.
	a.do("PATCH", key, map[string]any{"dvs_note": "first"}).must(t, http.StatusNoContent)
	r := a.do("GET", key, nil, "Prefer", `odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"`).must(t, http.StatusOK)
	row := r.obj(t)
	if row["_dvs_accountid_value"] != acc || num(t, row["dvs_role"]) != "1" || row["dvs_note"] != "first" ||
		row["_dvs_accountid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] != "account" {
		t.Errorf("row %v", row)
	}
	a.do("PATCH", key, map[string]any{"dvs_note": "second"}).must(t, http.StatusNoContent)
	if got := a.get(key)["dvs_note"]; got != "second" {
		t.Errorf("dvs_note %v", got)
	}

	// The same key values through @odata.bind collide.
	wantErr(t, a.do("POST", "dvs_memberships", map[string]any{"dvs_accountid@odata.bind": "/accounts(" + acc + ")", "dvs_role": 1}),
		412, "0x80060892", "Entity Key dvs_account_role violated")
	a.do("POST", "dvs_memberships", map[string]any{"dvs_accountid@odata.bind": "/accounts(" + acc + ")", "dvs_role": 2}).must(t, http.StatusNoContent)

	// A key naming a row that does not exist cannot create one.
	const missing = "00000000-0000-0000-0000-0000000000cc"
	wantErr(t, a.do("PATCH", "dvs_memberships(_dvs_accountid_value="+missing+",dvs_role=1)", map[string]any{"dvs_note": "x"}),
		404, "0x80040217", "account With Id = "+missing+" Does Not Exist")
	wantErr(t, a.do("GET", "dvs_memberships(dvs_accountid="+acc+",dvs_role=1)", nil),
		400, "0x80060888", "The key in the request URI is not valid")
}
