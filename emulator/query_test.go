package emulator_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// seedAccounts creates n accounts A00..A<n-1> with numberofemployees = i and
// returns their ids in creation order.
func seedAccounts(a *api, n int) []string {
	ids := make([]string, n)
	for i := range n {
		ids[i] = a.create("accounts", map[string]any{
			"name":              fmt.Sprintf("Account %02d", i),
			"accountnumber":     fmt.Sprintf("A%02d", i),
			"numberofemployees": i,
		})
	}
	return ids
}

func names(rows []map[string]any, col string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprint(r[col])
	}
	return out
}

func TestListShape(t *testing.T) {
	a := startAPI(t)
	seedAccounts(a, 3)
	r := a.do("GET", "accounts?$select=name,accountnumber", nil).must(t, http.StatusOK)
	body := r.obj(t)
	if body["@odata.context"] != a.base+"/$metadata#accounts(name,accountnumber)" {
		t.Errorf("@odata.context %v", body["@odata.context"])
	}
	if _, ok := body["@odata.nextLink"]; ok {
		t.Errorf("nextLink on a complete result")
	}
	rows := r.rows(t)
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, row := range rows {
		etagOf(t, row)
		if len(row) != 4 || row["accountid"] == nil {
			t.Errorf("row %v: want @odata.etag, accountid, name, accountnumber", row)
		}
	}
	// Without $orderby rows come in creation order.
	if got := names(rows, "accountnumber"); !slices.Equal(got, []string{"A00", "A01", "A02"}) {
		t.Errorf("order %v", got)
	}
	if body := a.do("GET", "accounts", nil).must(t, 200).obj(t); body["@odata.context"] != a.base+"/$metadata#accounts" {
		t.Errorf("@odata.context without $select: %v", body["@odata.context"])
	}
}

func TestFilter(t *testing.T) {
	a := startAPI(t)
	parent := a.create("accounts", map[string]any{"name": "Parent", "accountnumber": "P"})
	a.create("accounts", map[string]any{"name": "Alpha", "accountnumber": "X1", "numberofemployees": 10, "donotemail": true,
		"creditlimit": 100.25, "lastcontacted": "2024-01-02T03:04:05Z", "foundedon": "2020-01-01",
		"externalid": "aaaaaaaa-0000-4000-8000-000000000001", "parentaccountid@odata.bind": "/accounts(" + parent + ")"})
	a.create("accounts", map[string]any{"name": "beta", "accountnumber": "X2", "numberofemployees": 20, "donotemail": false,
		"creditlimit": 200, "lastcontacted": "2025-01-02T03:04:05Z", "foundedon": "2021-06-30"})
	a.create("accounts", map[string]any{"name": "Gamma O'Hara", "accountnumber": "X3", "numberofemployees": 30})

	for _, tc := range []struct {
		filter string
		want   []string // accountnumbers, in creation order
	}{
		{"name eq 'alpha'", []string{"X1"}}, // case-insensitive
		{"name eq 'Gamma O''Hara'", []string{"X3"}},
		{"accountnumber eq 'X2' and name eq 'beta'", []string{"X2"}},
		{"accountnumber eq 'X2' and name eq 'Alpha'", nil},
		{"numberofemployees eq 20", []string{"X2"}},
		{"numberofemployees gt 10", []string{"X2", "X3"}},
		{"numberofemployees ge 10 and numberofemployees le 20", []string{"X1", "X2"}},
		{"15 lt numberofemployees", []string{"X2", "X3"}},
		{"numberofemployees eq null", []string{"P"}},
		{"numberofemployees ne null", []string{"X1", "X2", "X3"}},
		{"numberofemployees ne 10", []string{"X2", "X3"}}, // null is not "not equal"
		{"donotemail eq true", []string{"X1"}},
		{"donotemail eq false", []string{"X2"}},
		{"creditlimit eq 100.25", []string{"X1"}},
		{"creditlimit gt 150", []string{"X2"}},
		{"externalid eq aaaaaaaa-0000-4000-8000-000000000001", []string{"X1"}},
		{"_parentaccountid_value eq " + parent, []string{"X1"}},
		{"accountid eq " + parent, []string{"P"}},
		{"lastcontacted gt 2024-06-01T00:00:00Z", []string{"X2"}},
		{"foundedon lt 2021-01-01", []string{"X1"}},
		{"name eq 'beta' or numberofemployees eq 30", []string{"X2", "X3"}},
		{"not (name eq 'beta') and accountnumber ne 'P'", []string{"X1", "X3"}},
		{"(name eq 'beta' or name eq 'alpha') and donotemail eq true", []string{"X1"}},
		{"contains(name,'AMM')", []string{"X3"}},
		{"startswith(name, 'al')", []string{"X1"}},
		{"endswith(name,'ta')", []string{"X2"}},
		{"statecode eq 0 and numberofemployees eq @p1", []string{"X3"}},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			q := url.Values{"$filter": {tc.filter}, "$select": {"accountnumber"}, "@p1": {"30"}}
			rows := a.do("GET", "accounts?"+q.Encode(), nil).must(t, http.StatusOK).rows(t)
			got := names(rows, "accountnumber")
			if len(got) == 0 {
				got = nil
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	for _, tc := range []struct{ filter, msg string }{
		{"nosuchcolumn eq 1", "Could not find a property named 'nosuchcolumn' on type 'Microsoft.Dynamics.CRM.account'."},
		{"name eq 5", "A binary operator with incompatible types was detected. Found operand types 'Edm.String' and 'Edm.Int32' for operator kind 'Equal'."},
		{"numberofemployees gt 'x'", "Found operand types 'Edm.Int32' and 'Edm.String' for operator kind 'GreaterThan'."},
		{"accountid eq 'not-a-guid'", "'Edm.Guid'"},
		{"name eq", "Syntax error"},
		{"name eq 'a' and", "Syntax error"},
		{"name eq 'a')", "Syntax error"},
		{"name like 'a'", "Syntax error"},
		{"name eq accountnumber", "Comparing two properties"},
		{"substringof('a',name)", "An unknown function with name 'substringof'"},
		{"contains(numberofemployees,'1')", "No function signature"},
	} {
		t.Run("error "+tc.filter, func(t *testing.T) {
			q := url.Values{"$filter": {tc.filter}}
			wantErr(t, a.do("GET", "accounts?"+q.Encode(), nil), 400, "0x80060888", tc.msg)
		})
	}
}

func TestOrderByAndTop(t *testing.T) {
	a := startAPI(t)
	for i, name := range []string{"delta", "Alpha", "charlie", "bravo"} {
		a.create("accounts", map[string]any{"name": name, "accountnumber": fmt.Sprint("N", i), "numberofemployees": i % 2})
	}
	a.create("accounts", map[string]any{"accountnumber": "NULL"})
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"$orderby=name", []string{"<nil>", "Alpha", "bravo", "charlie", "delta"}}, // null first, case-insensitive
		{"$orderby=name asc", []string{"<nil>", "Alpha", "bravo", "charlie", "delta"}},
		{"$orderby=name desc", []string{"delta", "charlie", "bravo", "Alpha", "<nil>"}},
		{"$orderby=numberofemployees desc,name", []string{"Alpha", "bravo", "charlie", "delta", "<nil>"}},
		{"$orderby=name&$top=2", []string{"<nil>", "Alpha"}},
		{"$top=0", []string{}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			q, _ := url.ParseQuery(tc.query)
			rows := a.do("GET", "accounts?"+q.Encode(), nil).must(t, http.StatusOK).rows(t)
			if got := names(rows, "name"); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	wantErr(t, a.do("GET", "accounts?$orderby=nosuch", nil), 400, "0x80060888", "Could not find a property named 'nosuch'")
	wantErr(t, a.do("GET", "accounts?$orderby=name%20sideways", nil), 400, "0x80060888", "asc or desc")
	wantErr(t, a.do("GET", "accounts?$top=-1", nil), 400, "0x80060888", "$top")
	wantErr(t, a.do("GET", "accounts?$top=1&$top=2", nil), 400, "0x80060888", "more than once")
}

func TestPaging(t *testing.T) {
	a := startAPI(t)
	ids := seedAccounts(a, 12)

	var got []string
	next := "accounts?$select=accountnumber"
	pages := 0
	for next != "" {
		r := a.do("GET", next, nil, "Prefer", "odata.maxpagesize=5").must(t, http.StatusOK)
		if r.header.Get("Preference-Applied") != "odata.maxpagesize=5" {
			t.Errorf("Preference-Applied %q", r.header.Get("Preference-Applied"))
		}
		body := r.obj(t)
		rows := r.rows(t)
		pages++
		if len(rows) > 5 {
			t.Fatalf("page of %d rows", len(rows))
		}
		got = append(got, names(rows, "accountid")...)
		next, _ = body["@odata.nextLink"].(string)
		if next != "" {
			if !strings.HasPrefix(next, a.base+"/accounts?$select=accountnumber&$skiptoken=") {
				t.Errorf("nextLink %q does not repeat the query", next)
			}
			if strings.ContainsAny(next, " <>\"") {
				t.Errorf("nextLink %q is not URL-encoded", next)
			}
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if pages != 3 || !slices.Equal(got, ids) {
		t.Errorf("%d pages, rows %v, want %v", pages, got, ids)
	}
}

func TestPagingOrderedWhileWriting(t *testing.T) {
	a := startAPI(t)
	seedAccounts(a, 10)
	q := url.Values{"$select": {"numberofemployees"}, "$orderby": {"numberofemployees desc"}, "$filter": {"numberofemployees ge 2"}}
	r := a.do("GET", "accounts?"+q.Encode(), nil, "Prefer", "odata.maxpagesize=3").must(t, http.StatusOK)
	first := names(r.rows(t), "numberofemployees")
	next, _ := r.obj(t)["@odata.nextLink"].(string)
	if !slices.Equal(first, []string{"9", "8", "7"}) || next == "" {
		t.Fatalf("first page %v, next %q", first, next)
	}
	// Rows written between pages neither repeat nor shift the next page.
	a.create("accounts", map[string]any{"numberofemployees": 100})
	a.create("accounts", map[string]any{"numberofemployees": 6})
	var rest []string
	for next != "" {
		r = a.do("GET", next, nil, "Prefer", "odata.maxpagesize=3").must(t, http.StatusOK)
		rest = append(rest, names(r.rows(t), "numberofemployees")...)
		next, _ = r.obj(t)["@odata.nextLink"].(string)
	}
	if !slices.Equal(rest, []string{"6", "6", "5", "4", "3", "2"}) {
		t.Errorf("remaining pages %v", rest)
	}
}

func TestPagingEdges(t *testing.T) {
	a := startAPI(t)
	seedAccounts(a, 4)
	// $top disables the page-size preference and paging.
	r := a.do("GET", "accounts?$top=3", nil, "Prefer", "odata.maxpagesize=2").must(t, http.StatusOK)
	if n := len(r.rows(t)); n != 3 || r.obj(t)["@odata.nextLink"] != nil || r.header.Get("Preference-Applied") != "" {
		t.Errorf("$top with maxpagesize: %d rows, body %s, Preference-Applied %q", n, r.body, r.header.Get("Preference-Applied"))
	}
	// A page that ends exactly at the last row has no nextLink.
	r = a.do("GET", "accounts", nil, "Prefer", "odata.maxpagesize=4").must(t, http.StatusOK)
	if r.obj(t)["@odata.nextLink"] != nil {
		t.Errorf("nextLink after the last row")
	}
	wantErr(t, a.do("GET", "accounts?$skiptoken=garbage", nil), 400, "0x80060888", "$skiptoken")
}

func TestCount(t *testing.T) {
	a := startAPI(t)
	seedAccounts(a, 7)
	r := a.do("GET", "accounts?$count=true&$filter=numberofemployees%20ge%202", nil, "Prefer", "odata.maxpagesize=2").must(t, http.StatusOK)
	if body := r.obj(t); num(t, body["@odata.count"]) != "5" {
		t.Errorf("@odata.count %v", body["@odata.count"])
	}
	if len(r.rows(t)) != 2 {
		t.Errorf("page size ignored with $count")
	}
}

func TestUnsupportedQueryOptions(t *testing.T) {
	a := startAPI(t)
	wantErr(t, a.do("GET", "accounts?$search=x", nil), 501, "0x80040216", "$search")
	wantErr(t, a.do("GET", "accounts?$skip=2", nil), 400, "0x80060888", "$skip")
	wantErr(t, a.do("GET", "accounts?$bogus=1", nil), 400, "0x80060888", "$bogus")
	// Options a collection takes are refused on a single record.
	id := a.create("accounts", map[string]any{"name": "x"})
	wantErr(t, a.do("GET", "accounts("+id+")?$top=1", nil), 400, "0x80060888", "$top")
	// Custom parameters such as tag pass.
	a.do("POST", "accounts?tag=dvsync", map[string]any{"name": "tagged"}).must(t, http.StatusNoContent)
}

// TestPagingOrderedByStampColumns: createdon and modifiedon, which rows
// share with every write of the same second, order and page like any
// column: every row once, in the order of a single page, and an update
// moves modifiedon but not createdon.
func TestPagingOrderedByStampColumns(t *testing.T) {
	a := startAPI(t)
	ids := seedAccounts(a, 7)
	before := a.get("accounts(" + ids[3] + ")?$select=createdon,modifiedon")
	a.do("PATCH", "accounts("+ids[3]+")", map[string]any{"name": "changed"}).must(t, http.StatusNoContent)
	after := a.get("accounts(" + ids[3] + ")?$select=createdon,modifiedon,_createdby_value,_modifiedby_value")
	if after["createdon"] != before["createdon"] || after["createdon"] == nil || after["modifiedon"] == nil {
		t.Errorf("createdon %v → %v, modifiedon %v", before["createdon"], after["createdon"], after["modifiedon"])
	}
	if after["_createdby_value"] == nil || after["_createdby_value"] != after["_modifiedby_value"] {
		t.Errorf("createdby %v, modifiedby %v", after["_createdby_value"], after["_modifiedby_value"])
	}
	for _, order := range []string{"modifiedon desc,createdon", "createdon,modifiedon desc"} {
		q := url.Values{"$select": {"name"}, "$orderby": {order}}
		want := names(a.do("GET", "accounts?"+q.Encode(), nil).must(t, http.StatusOK).rows(t), "accountid")
		var got []string
		next := "accounts?" + q.Encode()
		for pages := 0; next != ""; pages++ {
			if pages > 7 {
				t.Fatal("paging does not end")
			}
			r := a.do("GET", next, nil, "Prefer", "odata.maxpagesize=2").must(t, http.StatusOK)
			got = append(got, names(r.rows(t), "accountid")...)
			next, _ = r.obj(t)["@odata.nextLink"].(string)
		}
		if !slices.Equal(got, want) || len(got) != 7 {
			t.Errorf("$orderby=%s: pages give %v, one page %v", order, got, want)
		}
	}
}

func TestPagingByIDWhileWriting(t *testing.T) {
	a := startAPI(t)
	ids := seedAccounts(a, 12)
	q := url.Values{"$select": {"numberofemployees"}, "$filter": {"numberofemployees ne 3"}, "$count": {"true"}}
	r := a.do("GET", "accounts?"+q.Encode(), nil, "Prefer", "odata.maxpagesize=4").must(t, http.StatusOK)
	first := names(r.rows(t), "numberofemployees")
	next, _ := r.obj(t)["@odata.nextLink"].(string)
	if !slices.Equal(first, []string{"0", "1", "2", "4"}) || next == "" || num(t, r.obj(t)["@odata.count"]) != "11" {
		t.Fatalf("first page %v, count %v, next %q", first, r.obj(t)["@odata.count"], next)
	}
	// The next page starts after the last row even once that row is gone;
	// a row created meanwhile has a later id, so it comes last.
	a.do("DELETE", "accounts("+ids[4]+")", nil).must(t, http.StatusNoContent)
	a.do("DELETE", "accounts("+ids[5]+")", nil).must(t, http.StatusNoContent)
	a.create("accounts", map[string]any{"numberofemployees": 50})
	var rest []string
	for next != "" {
		r = a.do("GET", next, nil, "Prefer", "odata.maxpagesize=4").must(t, http.StatusOK)
		rest = append(rest, names(r.rows(t), "numberofemployees")...)
		if c := num(t, r.obj(t)["@odata.count"]); c != "10" {
			t.Errorf("@odata.count %s on a later page, want 10", c)
		}
		next, _ = r.obj(t)["@odata.nextLink"].(string)
	}
	if !slices.Equal(rest, []string{"6", "7", "8", "9", "10", "11", "50"}) {
		t.Errorf("remaining pages %v", rest)
	}
}

func TestCountStopsAt5000(t *testing.T) {
	a := startAPI(t)
	targets := make([]any, 0, 1000)
	for n := 0; n < 5001; n += cap(targets) {
		targets = targets[:0]
		for i := n; i < min(n+cap(targets), 5001); i++ {
			targets = append(targets, map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.account", "numberofemployees": i})
		}
		a.do("POST", "accounts/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": targets}).must(t, http.StatusOK)
	}
	for _, q := range []string{"$count=true&$top=1", "$count=true&$filter=numberofemployees%20ge%200&$top=1"} {
		if c := num(t, a.do("GET", "accounts?"+q, nil).must(t, http.StatusOK).obj(t)["@odata.count"]); c != "5000" {
			t.Errorf("%s: @odata.count %s, want 5000", q, c)
		}
	}
	if r := a.do("GET", "accounts/$count", nil).must(t, http.StatusOK); string(r.body) != "5000" {
		t.Errorf("$count %s, want 5000", r.body)
	}
	if c := num(t, a.do("GET", "accounts?$count=true&$filter=numberofemployees%20ge%204990", nil).must(t, http.StatusOK).obj(t)["@odata.count"]); c != "11" {
		t.Errorf("filtered @odata.count %s, want 11", c)
	}
}
