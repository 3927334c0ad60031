package odataclient

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

func TestUpsertMultipleBody(t *testing.T) {
	s := newServer(t, jsonReply(204, ""))
	c := newClient(t, s)
	err := c.UpsertMultiple(t.Context(), "accounts", "account", []BulkTarget{
		{Key: &Key{Alternate: []KeyPart{{"accountnumber", "A'1"}}}, Body: []byte(` {"name":"x","revenue":5} `)},
		{Key: &Key{ID: "11111111-1111-1111-1111-111111111111"}, Body: []byte(`{}`)},
	}, WriteOptions{Tag: "dvsync"})
	if err != nil {
		t.Fatal(err)
	}
	r := s.only(t)
	if r.Method != "POST" || r.RequestURI != "/api/data/v9.2/accounts/Microsoft.Dynamics.CRM.UpsertMultiple?tag=dvsync" {
		t.Fatalf("%s %s", r.Method, r.RequestURI)
	}
	wantHeaders(t, r, true)
	var got map[string][]map[string]any
	if err := json.Unmarshal([]byte(r.Body), &got); err != nil {
		t.Fatalf("body %s: %v", r.Body, err)
	}
	want := map[string][]map[string]any{"Targets": {
		{"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": "accounts(accountnumber='A''1')", "name": "x", "revenue": 5.0},
		{"@odata.type": "Microsoft.Dynamics.CRM.account", "@odata.id": "accounts(11111111-1111-1111-1111-111111111111)"},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("body %s\nwant %v", r.Body, want)
	}
}

func TestCreateMultipleReturnsIDs(t *testing.T) {
	s := newServer(t, jsonReply(200, `{"@odata.context":"x","Ids":["a1","b2"]}`))
	c := newClient(t, s)
	ids, err := c.CreateMultiple(t.Context(), "accounts", "account", []BulkTarget{{Body: []byte(`{"name":"a"}`)}, {Body: []byte(`{"name":"b"}`)}}, WriteOptions{})
	if err != nil || !reflect.DeepEqual(ids, []string{"a1", "b2"}) {
		t.Fatalf("ids %v, err %v", ids, err)
	}
	if _, err := c.CreateMultiple(t.Context(), "accounts", "account", []BulkTarget{{Body: []byte(`[1]`)}}, WriteOptions{}); err == nil {
		t.Fatal("CreateMultiple accepted a non-object body")
	}
	if _, err := c.CreateMultiple(t.Context(), "accounts", "account", nil, WriteOptions{}); err == nil {
		t.Fatal("CreateMultiple accepted no targets")
	}
}

func TestIsBulkUnsupported(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   bool
	}{
		{404, `{"error":{"code":"0x8006088a","message":"Resource not found for the segment 'Microsoft.Dynamics.CRM.UpsertMultiple'."}}`, true},
		{400, `{"error":{"code":"0x80040265","message":"DeleteMultiple has not yet been implemented."}}`, true},
		{501, `{"error":{"code":"0x8006088a","message":"not served"}}`, true},
		{400, `{"error":{"code":"0x80048d19","message":"Error identified in Payload provided by the user"}}`, false},
		{429, `{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit"}}`, false},
	} {
		s := newServer(t, jsonReply(tc.status, tc.body))
		c := newClient(t, s)
		err := c.DeleteMultiple(t.Context(), "accounts", "account", []BulkTarget{{Key: &Key{ID: "11111111-1111-1111-1111-111111111111"}, Body: []byte(`{}`)}}, WriteOptions{})
		if err == nil {
			t.Fatal("DeleteMultiple succeeded against an error answer")
		}
		if got := IsBulkUnsupported(err); got != tc.want {
			t.Errorf("%d %s: IsBulkUnsupported = %v, want %v", tc.status, tc.body, got, tc.want)
		}
	}
	if IsBulkUnsupported(&Error{StatusCode: 501, URL: "http://x/api/data/v9.2/accounts"}) || IsBulkUnsupported(errors.New("x")) {
		t.Error("IsBulkUnsupported true for a non-bulk error")
	}
}

func TestDOPHint(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-dop-hint", "12")
		w.WriteHeader(204)
	})
	c := newClient(t, s)
	if c.DOPHint() != 0 {
		t.Fatal("DOPHint before any answer")
	}
	if err := c.Delete(t.Context(), "accounts", Key{ID: "11111111-1111-1111-1111-111111111111"}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if c.DOPHint() != 12 {
		t.Fatalf("DOPHint = %d, want 12", c.DOPHint())
	}
}

func TestEncodeTargetsEscapesODataID(t *testing.T) {
	for _, v := range []string{"A1", `a"b`, `a\b`, "<&>", "é", "tab\there", "\u2028"} {
		key := Key{Alternate: []KeyPart{{"accountnumber", v}}}
		b, err := encodeTargets("accounts", "account", []BulkTarget{{Key: &key, Body: []byte(`{}`)}})
		if err != nil {
			t.Fatal(err)
		}
		seg, err := key.appendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := json.Marshal("accounts(" + string(seg) + ")")
		want := `{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.account","@odata.id":` + string(id) + `}]}`
		if string(b) != want {
			t.Errorf("key %q:\n got %s\nwant %s", v, b, want)
		}
	}
}
