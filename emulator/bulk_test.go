package emulator_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dvsync/dvsync/emulator"
)

const accountType = "Microsoft.Dynamics.CRM.account"

func TestCreateMultiple(t *testing.T) {
	a := startAPI(t)
	parent := a.create("accounts", map[string]any{"name": "Parent"})
	r := a.do("POST", "accounts/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": accountType, "name": "A", "accountnumber": "A-1"},
		map[string]any{"@odata.type": accountType, "name": "B", "accountnumber": "B-1",
			"parentaccountid@odata.bind": "accounts(" + parent + ")"},
	}}).must(t, http.StatusOK)
	body := r.obj(t)
	if body["@odata.context"] != a.base+"/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse" {
		t.Errorf("@odata.context %v", body["@odata.context"])
	}
	ids, _ := body["Ids"].([]any)
	if len(ids) != 2 {
		t.Fatalf("Ids %v", body["Ids"])
	}
	if got := a.get(fmt.Sprintf("accounts(%s)", ids[0])); got["accountnumber"] != "A-1" {
		t.Errorf("first id is %v", got)
	}
	if got := a.get(fmt.Sprintf("accounts(%s)", ids[1])); got["_parentaccountid_value"] != parent {
		t.Errorf("second id is %v", got)
	}
}

func TestBulkIsAllOrNothing(t *testing.T) {
	a := startAPI(t)
	existing := a.create("accounts", map[string]any{"name": "Old", "accountnumber": "OLD-1"})
	count := func() int { return len(a.do("GET", "accounts", nil).must(t, http.StatusOK).rows(t)) }

	// The second target collides with the first on the alternate key: the
	// first is rolled back.
	r := a.do("POST", "accounts/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": accountType, "name": "A", "accountnumber": "DUP"},
		map[string]any{"@odata.type": accountType, "name": "B", "accountnumber": "DUP"},
	}})
	wantErr(t, r, http.StatusPreconditionFailed, "0x80060892", "accountnumber")
	if n := count(); n != 1 {
		t.Errorf("%d accounts after failed CreateMultiple, want 1", n)
	}

	// UpdateMultiple of a missing row undoes the update before it.
	missing := "00000000-0000-0000-0000-0000000000aa"
	r = a.do("POST", "accounts/Microsoft.Dynamics.CRM.UpdateMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": accountType, "accountid": existing, "name": "Changed"},
		map[string]any{"@odata.type": accountType, "accountid": missing, "name": "Ghost"},
	}})
	wantErr(t, r, http.StatusNotFound, "0x80040217", "Account With Ids = "+missing+" Do Not Exist")
	if got := a.get("accounts(" + existing + ")"); got["name"] != "Old" {
		t.Errorf("name %v after failed UpdateMultiple, want Old", got["name"])
	}

	// A bad value in any target fails the request before anything is written.
	r = a.do("POST", "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": accountType, "@odata.id": "accounts(accountnumber='U-1')", "name": "ok"},
		map[string]any{"@odata.type": accountType, "@odata.id": "accounts(accountnumber='U-2')", "numberofemployees": "many"},
	}})
	if r.status != http.StatusBadRequest {
		t.Errorf("bad value: status %d; %s", r.status, r.body)
	}
	if n := count(); n != 1 {
		t.Errorf("%d accounts after failed UpsertMultiple, want 1", n)
	}
}

func TestUpdateMultiple(t *testing.T) {
	a := startAPI(t)
	id1 := a.create("accounts", map[string]any{"name": "One"})
	id2 := a.create("accounts", map[string]any{"name": "Two"})
	a.do("POST", "accounts/Microsoft.Dynamics.CRM.UpdateMultiple?tag=CreateUpdateMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": accountType, "accountid": id1, "name": "One'"},
		map[string]any{"@odata.type": accountType, "accountid": id2, "numberofemployees": 7},
	}}).must(t, http.StatusNoContent)
	if got := a.get("accounts(" + id1 + ")"); got["name"] != "One'" {
		t.Errorf("row 1: %v", got)
	}
	if got := a.get("accounts(" + id2 + ")"); got["name"] != "Two" || num(t, got["numberofemployees"]) != "7" {
		t.Errorf("row 2: %v", got)
	}
	r := a.do("POST", "accounts/Microsoft.Dynamics.CRM.UpdateMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": accountType, "name": "no id"},
	}})
	wantErr(t, r, http.StatusBadRequest, "0x80048d19", "primary key")
}

func TestUpsertMultiple(t *testing.T) {
	a := startAPI(t)
	existing := a.create("accounts", map[string]any{"name": "Before", "accountnumber": "K-1"})
	byID := "11111111-2222-3333-4444-555555555555"
	a.do("POST", "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": accountType, "@odata.id": "accounts(accountnumber='K-1')", "name": "After"},
		map[string]any{"@odata.type": accountType, "@odata.id": "accounts(accountnumber='K-2')", "name": "Created"},
		map[string]any{"@odata.type": accountType, "accountid": byID, "name": "By id"},
	}}).must(t, http.StatusNoContent)
	if got := a.get("accounts(" + existing + ")"); got["name"] != "After" {
		t.Errorf("updated row: %v", got)
	}
	if got := a.get("accounts(accountnumber='K-2')"); got["name"] != "Created" || got["accountnumber"] != "K-2" {
		t.Errorf("created row: %v", got)
	}
	if got := a.get("accounts(" + byID + ")"); got["name"] != "By id" {
		t.Errorf("row by id: %v", got)
	}

	r := a.do("POST", "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.id": "accounts(accountnumber='K-3')", "name": "untyped"},
	}})
	wantErr(t, r, http.StatusBadRequest, "0x80048d19", "@odata.type")
	r = a.do("POST", "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.contact", "name": "wrong type"},
	}})
	wantErr(t, r, http.StatusBadRequest, "0x80048d19", "Microsoft.Dynamics.CRM.contact")
	r = a.do("POST", "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"targets": []any{}})
	wantErr(t, r, http.StatusBadRequest, "0x80048d19", "Targets")
}

func TestDeleteMultiple(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"name": "Standard"})
	r := a.do("POST", "accounts/Microsoft.Dynamics.CRM.DeleteMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": accountType, "accountid": id},
	}})
	wantErr(t, r, http.StatusBadRequest, "0x80040216", "DeleteMultiple has not yet been implemented.")
	a.get("accounts(" + id + ")")

	schema, err := emulator.ParseSchema([]byte(`
tables:
  - logical_name: dvs_event
    entity_set: dvs_events
    elastic: true
    attributes:
      - {name: dvs_name, type: string}
`), "elastic.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := emulator.New(schema, emulator.Options{Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	e := &api{t: t, root: hs.URL, base: hs.URL + "/api/data/v9.2"}
	keep := e.create("dvs_events", map[string]any{"dvs_name": "keep"})
	gone := e.create("dvs_events", map[string]any{"dvs_name": "gone"})
	e.do("POST", "dvs_events/Microsoft.Dynamics.CRM.DeleteMultiple", map[string]any{"Targets": []any{
		map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.dvs_event", "dvs_eventid": gone, "partitionid": nil},
	}}).must(t, http.StatusNoContent)
	e.do("GET", "dvs_events("+gone+")", nil).must(t, http.StatusNotFound)
	e.get("dvs_events(" + keep + ")")
}

func TestBulkInsideChangeset(t *testing.T) {
	a := startAPI(t)
	_, parts := a.batch(batchBody("\r\n", []batchReq{
		{method: "POST", target: "accounts/Microsoft.Dynamics.CRM.CreateMultiple", contentID: "1",
			body: `{"Targets":[{"@odata.type":"` + accountType + `","name":"bulk","accountnumber":"BULK-1"}]}`},
		{method: "POST", target: "accounts", contentID: "2", body: `{"name":"dup","accountnumber":"BULK-1"}`},
	}))
	if len(parts) != 1 || parts[0].status != http.StatusPreconditionFailed {
		t.Fatalf("parts %+v", parts)
	}
	a.do("GET", "accounts(accountnumber='BULK-1')", nil).must(t, http.StatusNotFound)
}
