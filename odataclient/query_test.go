package odataclient

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestRetrieve(t *testing.T) {
	const row = `{"@odata.context":"x","@odata.etag":"W/\"468026\"","accountid":"` + accountID + `","name":"A"}`
	s := newServer(t, jsonReply(200, row))
	c := newClient(t, s)
	body, etag, err := c.Retrieve(t.Context(), "accounts", Key{Alternate: []KeyPart{{"accountnumber", "A1"}}},
		Query{Select: []string{"name", "revenue"}, IncludeAnnotations: "*"})
	if err != nil {
		t.Fatal(err)
	}
	r := s.only(t)
	if r.Method != http.MethodGet || r.RequestURI != "/api/data/v9.2/accounts(accountnumber='A1')?$select=name,revenue" {
		t.Fatalf("request = %s %s", r.Method, r.RequestURI)
	}
	wantHeaders(t, r, false)
	if got := r.Header.Get("Prefer"); got != `odata.include-annotations="*"` {
		t.Errorf("Prefer = %q", got)
	}
	if string(body) != row || etag != `W/"468026"` {
		t.Fatalf("Retrieve = %s, %q", body, etag)
	}
}

func TestRetrieveMissingRow(t *testing.T) {
	s := newServer(t, jsonReply(404, `{"error":{"code":"0x80040217","message":"account With Id = `+accountID+` Does Not Exist"}}`))
	c := newClient(t, s)
	_, _, err := c.Retrieve(t.Context(), "accounts", Key{ID: accountID}, Query{})
	if !IsNotFound(err) {
		t.Fatalf("err = %v, want 404", err)
	}
}

func TestQueryEncoding(t *testing.T) {
	s := newServer(t, jsonReply(200, `{"value":[]}`))
	c := newClient(t, s)
	_, err := c.List(t.Context(), "accounts", Query{
		Select:  []string{"name", "accountnumber"},
		Filter:  "name eq 'A&B=C+D#1' and revenue gt 5",
		OrderBy: "name desc,createdon asc",
		Top:     3,
		Count:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "/api/data/v9.2/accounts?$select=name,accountnumber" +
		"&$filter=name%20eq%20'A%26B%3DC%2BD%231'%20and%20revenue%20gt%205" +
		"&$orderby=name%20desc,createdon%20asc&$top=3&$count=true"
	r := s.only(t)
	if r.RequestURI != want {
		t.Fatalf("RequestURI = %s\nwant         %s", r.RequestURI, want)
	}
	if r.Header.Get("Prefer") != "" {
		t.Errorf("Prefer = %q, want none", r.Header.Get("Prefer"))
	}
}

// pagedServer serves rows 0..n-1 of "accounts" in pages of the size the
// client asks for, with absolute next links carrying an opaque skip token.
func pagedServer(t *testing.T, n int) *server {
	var s *server
	s = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		size := 5000
		if p := r.Header.Get("Prefer"); p != "" {
			if _, err := fmt.Sscanf(p, "odata.maxpagesize=%d", &size); err != nil {
				t.Errorf("Prefer %q: %v", p, err)
			}
			w.Header().Set("Preference-Applied", p)
		}
		start := 0
		if tok := r.URL.Query().Get("$skiptoken"); tok != "" {
			if _, err := fmt.Sscanf(tok, `<cookie page="%d" />`, &start); err != nil {
				t.Errorf("skip token %q: %v", tok, err)
			}
		}
		var b strings.Builder
		b.WriteString(`{"@odata.context":"x"`)
		if r.URL.Query().Get("$count") == "true" {
			fmt.Fprintf(&b, `,"@odata.count":%d`, n)
		}
		b.WriteString(`,"value":[`)
		end := min(start+size, n)
		for i := start; i < end; i++ {
			if i > start {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"n":%d}`, i)
		}
		b.WriteByte(']')
		if end < n {
			fmt.Fprintf(&b, `,"@odata.nextLink":"%s/api/data/v9.2/accounts?$select=n&$skiptoken=%%3Ccookie%%20page=%%22%d%%22%%20/%%3E"`, s.URL, end)
		}
		b.WriteByte('}')
		jsonReply(200, b.String())(w, r)
	})
	return s
}

func TestListFollowsNextLinks(t *testing.T) {
	s := pagedServer(t, 5)
	c := newClient(t, s)
	p, err := c.List(t.Context(), "accounts", Query{Select: []string{"n"}, MaxPageSize: 2, Count: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Count != 5 || p.MaxPageSize != 2 {
		t.Fatalf("first page Count %d, MaxPageSize %d", p.Count, p.MaxPageSize)
	}
	var got []string
	pages := 0
	for {
		pages++
		for _, r := range p.Rows {
			got = append(got, string(r))
		}
		if p.NextLink == "" {
			break
		}
		if p, err = c.Next(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		if p.Count != -1 {
			t.Errorf("later page Count = %d, want -1 (not asked)", p.Count)
		}
	}
	if want := `{"n":0} {"n":1} {"n":2} {"n":3} {"n":4}`; strings.Join(got, " ") != want || pages != 3 {
		t.Fatalf("%d pages, rows %s", pages, strings.Join(got, " "))
	}
	reqs := s.requests()
	if reqs[0].RequestURI != "/api/data/v9.2/accounts?$select=n&$count=true" {
		t.Errorf("first request %s", reqs[0].RequestURI)
	}
	for i, r := range reqs {
		if got := r.Header.Get("Prefer"); got != "odata.maxpagesize=2" {
			t.Errorf("request %d Prefer = %q", i, got)
		}
		wantHeaders(t, r, false)
	}
	// The link is followed verbatim: the skip token keeps its encoding.
	if want := "/api/data/v9.2/accounts?$select=n&$skiptoken=%3Ccookie%20page=%222%22%20/%3E"; reqs[1].RequestURI != want {
		t.Errorf("second request %s\nwant %s", reqs[1].RequestURI, want)
	}
	if _, err := c.Next(t.Context(), p); err == nil {
		t.Error("Next after the last page succeeded")
	}
}

func TestNextPageWithoutPreference(t *testing.T) {
	s := pagedServer(t, 3)
	c := newClient(t, s)
	p, err := c.List(t.Context(), "accounts", Query{MaxPageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err = c.NextPage(t.Context(), p.NextLink)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 2 || p.NextLink != "" || p.Count != -1 {
		t.Fatalf("page = %+v", p)
	}
	if got := s.requests()[1].Header.Get("Prefer"); got != "" {
		t.Fatalf("NextPage sent Prefer %q", got)
	}
}

func TestNextPageStaysOnTheOrganization(t *testing.T) {
	s := pagedServer(t, 3)
	other := newServer(t, jsonReply(200, `{"value":[]}`))
	c := newClient(t, s)
	for _, link := range []string{
		other.URL + "/api/data/v9.2/accounts?$skiptoken=x",
		strings.Replace(s.URL, "http://", "https://", 1) + "/api/data/v9.2/accounts",
		"//evil.example/api/data/v9.2/accounts",
	} {
		if _, err := c.NextPage(t.Context(), link); err == nil {
			t.Errorf("NextPage(%q) succeeded", link)
		}
	}
	if n := len(other.requests()); n != 0 {
		t.Fatalf("foreign host saw %d requests (and the token)", n)
	}
	// A relative link resolves against the API root.
	if _, err := c.NextPage(t.Context(), "accounts?$skiptoken=%3Ccookie%20page=%221%22%20/%3E"); err != nil {
		t.Fatal(err)
	}
	if got := s.only(t).RequestURI; got != "/api/data/v9.2/accounts?$skiptoken=%3Ccookie%20page=%221%22%20/%3E" {
		t.Fatalf("relative link fetched %s", got)
	}
}

func TestListDecodingError(t *testing.T) {
	s := newServer(t, jsonReply(200, `{"value":[`))
	c := newClient(t, s)
	if _, err := c.List(t.Context(), "accounts", Query{}); err == nil || !strings.Contains(err.Error(), "GET /api/data/v9.2/accounts") {
		t.Fatalf("err = %v", err)
	}
}

func TestEntityDefinition(t *testing.T) {
	const def = `"LogicalName":"account","EntitySetName":"accounts","PrimaryIdAttribute":"accountid","PrimaryNameAttribute":"name","MetadataId":"70816501-edb9-4740-a16c-6a5efbc05d84"`
	want := EntityDefinition{"account", "accounts", "accountid", "name"}
	for name, body := range map[string]string{
		"entity":  `{"@odata.context":"x",` + def + `}`,
		"wrapped": `{"@odata.context":"x","value":[{` + def + `}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, jsonReply(200, body))
			c := newClient(t, s)
			got, err := c.EntityDefinition(t.Context(), "account")
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("got %+v", got)
			}
			r := s.only(t)
			if r.RequestURI != "/api/data/v9.2/EntityDefinitions(LogicalName='account')?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute" {
				t.Fatalf("RequestURI = %s", r.RequestURI)
			}
			wantHeaders(t, r, false)
		})
	}
	t.Run("unknown", func(t *testing.T) {
		s := newServer(t, jsonReply(404, `{"error":{"code":"0x80040217","message":"Could not find entity"}}`))
		c := newClient(t, s)
		if _, err := c.EntityDefinition(t.Context(), "nosuch"); !IsNotFound(err) {
			t.Fatalf("err = %v, want 404", err)
		}
	})
	t.Run("empty", func(t *testing.T) {
		s := newServer(t, jsonReply(200, `{"value":[]}`))
		c := newClient(t, s)
		if _, err := c.EntityDefinition(t.Context(), "nosuch"); err == nil {
			t.Fatal("no error for an empty answer")
		}
	})
}
