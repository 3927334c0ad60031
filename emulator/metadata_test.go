package emulator_test

import (
	"net/http"
	"regexp"
	"slices"
	"testing"
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func TestEntityDefinition(t *testing.T) {
	a := startAPI(t)
	row := a.get("EntityDefinitions(LogicalName='account')?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute")
	want := map[string]any{
		"@odata.context":       a.base + "/$metadata#EntityDefinitions(LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute)/$entity",
		"LogicalName":          "account",
		"EntitySetName":        "accounts",
		"PrimaryIdAttribute":   "accountid",
		"PrimaryNameAttribute": "name",
	}
	for k, v := range want {
		if row[k] != v {
			t.Errorf("%s = %v, want %v", k, row[k], v)
		}
	}
	id, _ := row["MetadataId"].(string)
	if !guidRE.MatchString(id) {
		t.Errorf("MetadataId %q", row["MetadataId"])
	}
	if len(row) != len(want)+1 {
		t.Errorf("unselected properties returned: %v", row)
	}

	// The same definition by MetadataId, with every property.
	full := a.get("EntityDefinitions(" + id + ")")
	if full["LogicalName"] != "account" || full["ChangeTrackingEnabled"] != true || full["IsOptimisticConcurrencyEnabled"] != true {
		t.Errorf("full definition %v", full)
	}
	// A table without a primary name column reports null; primary_id defaults.
	line := a.get("EntityDefinitions(LogicalName='dvs_line')")
	if v, ok := line["PrimaryNameAttribute"]; !ok || v != nil || line["PrimaryIdAttribute"] != "dvs_lineid" {
		t.Errorf("dvs_line definition %v", line)
	}

	wantErr(t, a.do("GET", "EntityDefinitions(LogicalName='nosuch')", nil), 404, "0x80040217", "'nosuch'")
	wantErr(t, a.do("GET", "EntityDefinitions(LogicalName='account')?$select=Bogus", nil), 400, "0x80060888",
		"Could not find a property named 'Bogus' on type 'Microsoft.Dynamics.CRM.EntityMetadata'.")
	wantErr(t, a.do("POST", "EntityDefinitions", map[string]any{}), 501, "0x80040216", "not implemented")
}

func TestEntityDefinitionKeys(t *testing.T) {
	a := startAPI(t)
	r := a.do("GET", "EntityDefinitions(LogicalName='dvs_line')/Keys", nil).must(t, http.StatusOK)
	keys := r.rows(t)
	if len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	k := keys[0]
	attrs, _ := k["KeyAttributes"].([]any)
	if k["LogicalName"] != "dvs_order_line" || len(attrs) != 2 || attrs[0] != "dvs_order" || attrs[1] != "dvs_lineno" ||
		k["EntityKeyIndexStatus"] != "Active" || !guidRE.MatchString(k["MetadataId"].(string)) {
		t.Errorf("key %v", k)
	}
	if rows := a.do("GET", "EntityDefinitions(LogicalName='account')/Keys?$select=KeyAttributes", nil).must(t, 200).rows(t); len(rows) != 1 || len(rows[0]) != 2 {
		t.Errorf("account keys with $select: %v", rows)
	}
	one := a.get("EntityDefinitions(LogicalName='account')/Keys(LogicalName='accountnumber_key')")
	if one["LogicalName"] != "accountnumber_key" {
		t.Errorf("key by name %v", one)
	}
	// Keys through $expand on the definition.
	full := a.get("EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Keys($select=KeyAttributes)")
	expanded, _ := full["Keys"].([]any)
	if len(expanded) != 1 || expanded[0].(map[string]any)["KeyAttributes"].([]any)[0] != "accountnumber" {
		t.Errorf("expanded keys %v", full["Keys"])
	}
	// Nested options are separated by a raw ';', as in Microsoft's examples.
	full = a.get("EntityDefinitions(LogicalName='account')?$select=LogicalName&$expand=Attributes($select=LogicalName;$filter=IsPrimaryId%20eq%20true),Keys")
	expandedAttrs, _ := full["Attributes"].([]any)
	if len(expandedAttrs) != 1 || expandedAttrs[0].(map[string]any)["LogicalName"] != "accountid" {
		t.Errorf("expanded attributes %v", full["Attributes"])
	}
	if keys, _ := full["Keys"].([]any); len(keys) != 1 {
		t.Errorf("second expansion %v", full["Keys"])
	}
}

func TestEntityDefinitionsList(t *testing.T) {
	a := startAPI(t)
	rows := a.do("GET", "EntityDefinitions?$select=LogicalName,EntitySetName", nil).must(t, http.StatusOK).rows(t)
	if got := names(rows, "LogicalName"); !slices.Equal(got, []string{"account", "contact", "dvs_line", "dvs_membership", "systemuser"}) {
		t.Errorf("tables %v", got)
	}
	rows = a.do("GET", "EntityDefinitions?$select=EntitySetName&$filter=LogicalName%20eq%20'contact'", nil).must(t, http.StatusOK).rows(t)
	if len(rows) != 1 || rows[0]["EntitySetName"] != "contacts" {
		t.Errorf("filtered %v", rows)
	}
	rows = a.do("GET", "EntityDefinitions?$select=LogicalName&$filter=ChangeTrackingEnabled%20eq%20true", nil).must(t, http.StatusOK).rows(t)
	if got := names(rows, "LogicalName"); !slices.Equal(got, []string{"account"}) {
		t.Errorf("change-tracked tables %v", got)
	}
}

func TestEntityDefinitionAttributes(t *testing.T) {
	a := startAPI(t)
	rows := a.do("GET", "EntityDefinitions(LogicalName='contact')/Attributes?$select=LogicalName,AttributeType", nil).must(t, http.StatusOK).rows(t)
	types := map[string]any{}
	for _, r := range rows {
		types[r["LogicalName"].(string)] = r["AttributeType"]
	}
	for name, want := range map[string]string{
		"contactid": "Uniqueidentifier", "firstname": "String", "parentcustomerid": "Lookup",
		"createdon": "DateTime", "modifiedon": "DateTime", "versionnumber": "BigInt",
		"statecode": "State", "statuscode": "Status",
	} {
		if types[name] != want {
			t.Errorf("%s: AttributeType %v, want %s", name, types[name], want)
		}
	}
	lookup := a.get("EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='parentcustomerid')")
	if targets, _ := lookup["Targets"].([]any); len(targets) != 2 || lookup["@odata.type"] != "#Microsoft.Dynamics.CRM.LookupAttributeMetadata" {
		t.Errorf("lookup metadata %v", lookup)
	}
}

func TestWhoAmI(t *testing.T) {
	a := startAPI(t)
	first := a.get("WhoAmI")
	if first["@odata.context"] != a.base+"/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse" {
		t.Errorf("@odata.context %v", first["@odata.context"])
	}
	for _, k := range []string{"UserId", "BusinessUnitId", "OrganizationId"} {
		if s, _ := first[k].(string); !guidRE.MatchString(s) {
			t.Errorf("%s = %v", k, first[k])
		}
	}
	if second := a.get("WhoAmI()"); second["UserId"] != first["UserId"] {
		t.Errorf("UserId changed between calls: %v, %v", first["UserId"], second["UserId"])
	}
}
