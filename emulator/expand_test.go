package emulator_test

import (
	"net/http"
	"testing"
)

func TestExpandLookup(t *testing.T) {
	a := startAPI(t)
	parent := a.create("accounts", map[string]any{"name": "Parent", "accountnumber": "P-1"})
	child := a.create("accounts", map[string]any{"name": "Child", "parentaccountid@odata.bind": "accounts(" + parent + ")"})
	a.create("accounts", map[string]any{"name": "Orphan"})

	r := a.do("GET", "accounts("+child+")?$select=name&$expand=parentaccountid($select=name,accountnumber)", nil).must(t, http.StatusOK)
	row := r.obj(t)
	if row["@odata.context"] != a.base+"/$metadata#accounts(name,parentaccountid(name,accountnumber))/$entity" {
		t.Errorf("@odata.context %v", row["@odata.context"])
	}
	exp, ok := row["parentaccountid"].(map[string]any)
	if !ok {
		t.Fatalf("no expanded parent in %s", r.body)
	}
	if exp["name"] != "Parent" || exp["accountnumber"] != "P-1" || exp["accountid"] != parent || exp["@odata.etag"] == nil {
		t.Errorf("expanded parent %v", exp)
	}
	if _, has := exp["numberofemployees"]; has {
		t.Errorf("nested $select ignored: %v", exp)
	}

	rows := a.do("GET", "accounts?$select=name&$expand=parentaccountid($select=name)&$orderby=name", nil).must(t, http.StatusOK).rows(t)
	if len(rows) != 3 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, row := range rows {
		p, has := row["parentaccountid"]
		switch row["name"] {
		case "Child":
			if p.(map[string]any)["name"] != "Parent" {
				t.Errorf("child's parent %v", p)
			}
		default:
			if !has || p != nil {
				t.Errorf("%v: parent %v, want null", row["name"], p)
			}
		}
	}

	// A polymorphic lookup expands through the navigation property of the
	// table it points at; the other one is null.
	contact := a.create("contacts", map[string]any{"lastname": "Silva", "parentcustomerid_account@odata.bind": "accounts(" + parent + ")"})
	c := a.get("contacts(" + contact + ")?$select=lastname&$expand=parentcustomerid_account($select=name),parentcustomerid_contact")
	if c["parentcustomerid_account"].(map[string]any)["name"] != "Parent" || c["parentcustomerid_contact"] != nil {
		t.Errorf("polymorphic expansion %v", c)
	}

	wantErr(t, a.do("GET", "accounts?$expand=nosuchnav", nil), http.StatusBadRequest, "0x80060888", "nosuchnav")
	wantErr(t, a.do("GET", "accounts?$expand=parentaccountid($select=bogus)", nil), http.StatusBadRequest, "0x80060888", "bogus")
	wantErr(t, a.do("GET", "accounts?$expand=parentaccountid($filter=name%20eq%20'x')", nil), http.StatusNotImplemented, "0x80040216", "$filter")
}

func TestLookupFormattedValue(t *testing.T) {
	a := startAPI(t)
	parent := a.create("accounts", map[string]any{"name": "Parent"})
	child := a.create("accounts", map[string]any{"name": "Child", "parentaccountid@odata.bind": "accounts(" + parent + ")"})
	row := a.do("GET", "accounts("+child+")?$select=_parentaccountid_value", nil,
		"Prefer", `odata.include-annotations="*"`).must(t, http.StatusOK).obj(t)
	for term, want := range map[string]string{
		"OData.Community.Display.V1.FormattedValue":           "Parent",
		"Microsoft.Dynamics.CRM.lookuplogicalname":            "account",
		"Microsoft.Dynamics.CRM.associatednavigationproperty": "parentaccountid",
	} {
		if got := row["_parentaccountid_value@"+term]; got != want {
			t.Errorf("%s = %v, want %s", term, got, want)
		}
	}
	row = a.do("GET", "accounts("+child+")?$select=_parentaccountid_value", nil,
		"Prefer", `odata.include-annotations="Microsoft.Dynamics.CRM.lookuplogicalname"`).must(t, http.StatusOK).obj(t)
	if _, has := row["_parentaccountid_value@OData.Community.Display.V1.FormattedValue"]; has {
		t.Error("formatted value sent though not asked for")
	}
}
