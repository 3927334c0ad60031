package emulator_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/emulator"
)

// choiceSchema has a multi-select choice, a required column and one column of
// each type whose metadata carries type-specific properties.
const choiceSchema = `
tables:
  - logical_name: dvs_ticket
    entity_set: dvs_tickets
    primary_name: dvs_title
    attributes:
      - {name: dvs_title, type: string, max_length: 80, required: true}
      - {name: dvs_body, type: memo}
      - {name: dvs_tags, type: multiselectpicklist, options: [100000000, 100000001, 100000002]}
      - {name: dvs_priority, type: picklist, options: [1, 2, 3]}
      - {name: dvs_hours, type: decimal, precision: 3}
      - {name: dvs_cost, type: money}
      - {name: dvs_count, type: integer}
`

func startSchemaAPI(t *testing.T, schemaYAML string) *api {
	t.Helper()
	schema, err := emulator.ParseSchema([]byte(schemaYAML), "test.yaml")
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

func TestMultiSelectChoice(t *testing.T) {
	a := startSchemaAPI(t, choiceSchema)
	id := a.create("dvs_tickets", map[string]any{"dvs_title": "t1", "dvs_tags": "100000002, 100000000,100000002"})
	row := a.get("dvs_tickets(" + id + ")?$select=dvs_tags")
	if row["dvs_tags"] != "100000002,100000000" {
		t.Errorf("dvs_tags = %v, want canonical %q", row["dvs_tags"], "100000002,100000000")
	}
	wantErr(t, a.do("PATCH", "dvs_tickets("+id+")", map[string]any{"dvs_tags": "100000000,7"}, "If-Match", "*"),
		http.StatusBadRequest, "0x8004431a", "The value 7 of 'dvs_tags' on record of type 'dvs_ticket' is outside the valid range. Accepted Values: 100000000,100000001,100000002")
	wantErr(t, a.do("PATCH", "dvs_tickets("+id+")", map[string]any{"dvs_tags": 100000000}, "If-Match", "*"),
		http.StatusBadRequest, "0x80048d19", "Cannot convert the literal '100000000' to the expected type 'Edm.String'.")
	// An empty string clears the column.
	a.do("PATCH", "dvs_tickets("+id+")", map[string]any{"dvs_tags": ""}, "If-Match", "*").must(t, http.StatusNoContent)
	if v, ok := a.get("dvs_tickets(" + id + ")?$select=dvs_tags")["dvs_tags"]; !ok || v != nil {
		t.Errorf("cleared dvs_tags = %v", v)
	}

	// ContainValues matches rows holding any of the values.
	a.create("dvs_tickets", map[string]any{"dvs_title": "t2", "dvs_tags": "100000001"})
	a.create("dvs_tickets", map[string]any{"dvs_title": "t3", "dvs_tags": "100000000,100000002"})
	a.create("dvs_tickets", map[string]any{"dvs_title": "t4"})
	titles := func(filter string) string {
		var got []string
		for _, row := range a.do("GET", "dvs_tickets?$select=dvs_title&$orderby=dvs_title&$filter="+url.QueryEscape(filter), nil).must(t, http.StatusOK).rows(t) {
			got = append(got, row["dvs_title"].(string))
		}
		return strings.Join(got, ",")
	}
	if got := titles("Microsoft.Dynamics.CRM.ContainValues(PropertyName='dvs_tags',PropertyValues=['100000001','100000002'])"); got != "t2,t3" {
		t.Errorf("ContainValues matched %q, want t2,t3", got)
	}
	if got := titles("not Microsoft.Dynamics.CRM.ContainValues(PropertyValues=['100000000'],PropertyName='dvs_tags') and dvs_title ne 't1'"); got != "t2,t4" {
		t.Errorf("not ContainValues matched %q, want t2,t4", got)
	}
	wantErr(t, a.do("GET", "dvs_tickets?$filter="+url.QueryEscape("Microsoft.Dynamics.CRM.ContainValues(PropertyName='dvs_title',PropertyValues=['1'])"), nil),
		http.StatusBadRequest, "0x80060888", "applies only to multi-select choice columns")
	wantErr(t, a.do("GET", "dvs_tickets?$filter="+url.QueryEscape("Microsoft.Dynamics.CRM.ContainValues(PropertyName='dvs_tags')"), nil),
		http.StatusBadRequest, "0x80060888", "takes the parameters PropertyName")

	r := a.do("GET", "EntityDefinitions(LogicalName='dvs_ticket')/Attributes(LogicalName='dvs_tags')", nil).must(t, http.StatusOK).obj(t)
	typeName, _ := r["AttributeTypeName"].(map[string]any)
	if r["@odata.type"] != "#Microsoft.Dynamics.CRM.MultiSelectPicklistAttributeMetadata" || r["AttributeType"] != "Virtual" ||
		typeName["Value"] != "MultiSelectPicklistType" {
		t.Errorf("multi-select metadata %v", r)
	}
}

func TestRequiredAttribute(t *testing.T) {
	a := startSchemaAPI(t, choiceSchema)
	const msg = "Attribute 'dvs_title' cannot be NULL."
	wantErr(t, a.do("POST", "dvs_tickets", map[string]any{"dvs_count": 1}), http.StatusBadRequest, "0x80040203", msg)
	wantErr(t, a.do("POST", "dvs_tickets", map[string]any{"dvs_title": nil}), http.StatusBadRequest, "0x80040203", msg)
	// An upsert that creates needs it too; one that updates does not.
	newID := "3f1c2d4e-0000-4000-8000-000000000001"
	wantErr(t, a.do("PATCH", "dvs_tickets("+newID+")", map[string]any{"dvs_count": 1}), http.StatusBadRequest, "0x80040203", msg)
	a.do("PATCH", "dvs_tickets("+newID+")", map[string]any{"dvs_title": "x"}).must(t, http.StatusNoContent)
	a.do("PATCH", "dvs_tickets("+newID+")", map[string]any{"dvs_count": 2}).must(t, http.StatusNoContent)
	// Setting it to null (or "", which is null) fails and changes nothing.
	wantErr(t, a.do("PATCH", "dvs_tickets("+newID+")", map[string]any{"dvs_title": nil}), http.StatusBadRequest, "0x80040203", msg)
	wantErr(t, a.do("PATCH", "dvs_tickets("+newID+")", map[string]any{"dvs_title": ""}, "If-Match", "*"), http.StatusBadRequest, "0x80040203", msg)
	if got := a.get("dvs_tickets(" + newID + ")?$select=dvs_title")["dvs_title"]; got != "x" {
		t.Errorf("dvs_title after refused writes = %v", got)
	}

	r := a.do("GET", "EntityDefinitions(LogicalName='dvs_ticket')/Attributes?$select=LogicalName,RequiredLevel", nil).must(t, http.StatusOK)
	levels := map[string]string{}
	for _, attr := range r.rows(t) {
		lvl, _ := attr["RequiredLevel"].(map[string]any)
		levels[attr["LogicalName"].(string)], _ = lvl["Value"].(string)
	}
	if levels["dvs_title"] != "ApplicationRequired" || levels["dvs_count"] != "None" || levels["dvs_ticketid"] != "SystemRequired" {
		t.Errorf("required levels %v", levels)
	}
}

func TestAttributeMetadataDetails(t *testing.T) {
	a := startSchemaAPI(t, choiceSchema)
	r := a.do("GET", "EntityDefinitions(LogicalName='dvs_ticket')/Attributes?$select=LogicalName,MaxLength,Precision,MinValue,MaxValue", nil).must(t, http.StatusOK)
	got := map[string]map[string]any{}
	for _, attr := range r.rows(t) {
		got[attr["LogicalName"].(string)] = attr
	}
	checks := []struct{ attr, prop, want string }{
		{"dvs_title", "MaxLength", "80"},
		{"dvs_body", "MaxLength", "2000"},
		{"dvs_hours", "Precision", "3"},
		{"dvs_hours", "MinValue", "-100000000000"},
		{"dvs_hours", "MaxValue", "100000000000"},
		{"dvs_cost", "Precision", "2"},
		{"dvs_cost", "MaxValue", "922337203685477"},
		{"dvs_count", "MinValue", "-2147483648"},
		{"dvs_count", "MaxValue", "2147483647"},
	}
	for _, c := range checks {
		if v := got[c.attr][c.prop]; v == nil || num(t, v) != c.want {
			t.Errorf("%s.%s = %v, want %s", c.attr, c.prop, v, c.want)
		}
	}
	if _, has := got["dvs_count"]["MaxLength"]; has {
		t.Errorf("integer column has MaxLength: %v", got["dvs_count"])
	}

	// The documented cast path narrows to choice columns and expands options.
	r = a.do("GET", "EntityDefinitions(LogicalName='dvs_ticket')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet", nil).must(t, http.StatusOK)
	rows := r.rows(t)
	names := []string{}
	var priority map[string]any
	for _, row := range rows {
		names = append(names, row["LogicalName"].(string))
		if row["LogicalName"] == "dvs_priority" {
			priority = row
		}
	}
	if strings.Join(names, ",") != "dvs_priority" {
		t.Fatalf("picklist columns %v", names)
	}
	os, _ := priority["OptionSet"].(map[string]any)
	opts, _ := os["Options"].([]any)
	var values []string
	for _, o := range opts {
		values = append(values, num(t, o.(map[string]any)["Value"]))
	}
	if strings.Join(values, ",") != "1,2,3" {
		t.Errorf("OptionSet %v", os)
	}
	r = a.do("GET", "EntityDefinitions(LogicalName='dvs_ticket')/Attributes/Microsoft.Dynamics.CRM.MultiSelectPicklistAttributeMetadata?$expand=OptionSet", nil).must(t, http.StatusOK)
	if rows := r.rows(t); len(rows) != 1 || rows[0]["LogicalName"] != "dvs_tags" || rows[0]["OptionSet"] == nil {
		t.Errorf("multi-select cast %v", rows)
	}
	wantErr(t, a.do("GET", "EntityDefinitions(LogicalName='dvs_ticket')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$expand=OptionSet", nil),
		http.StatusBadRequest, "0x80060888", "Could not find a property named 'OptionSet'")
	wantErr(t, a.do("GET", "EntityDefinitions(LogicalName='dvs_ticket')/Attributes/Bogus", nil), http.StatusNotFound, "0x80060888", "'Bogus'")
}

func TestCountSegment(t *testing.T) {
	a := startSchemaAPI(t, choiceSchema)
	for i, title := range []string{"a", "b", "c"} {
		a.create("dvs_tickets", map[string]any{"dvs_title": title, "dvs_count": i})
	}
	r := a.do("GET", "dvs_tickets/$count", nil).must(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || string(r.body) != "3" {
		t.Errorf("count: %q %q", ct, r.body)
	}
	r = a.do("GET", "dvs_tickets/$count?$filter=dvs_count%20ge%201", nil).must(t, http.StatusOK)
	if string(r.body) != "2" {
		t.Errorf("filtered count %q", r.body)
	}
	wantErr(t, a.do("GET", "dvs_tickets/$count?$top=1", nil), http.StatusBadRequest, "0x80060888", "$top")
	wantErr(t, a.do("POST", "dvs_tickets/$count", "{}"), http.StatusMethodNotAllowed, "0x80060888", "POST")
}

func TestChoiceSchemaErrors(t *testing.T) {
	_, err := emulator.ParseSchema([]byte(`
tables:
  - logical_name: t
    entity_set: ts
    attributes:
      - {name: tags, type: multiselectpicklist}
      - {name: n, type: integer, options: [1]}
    keys:
      - {name: k, attributes: [tags]}
`), "bad.yaml")
	if err == nil {
		t.Fatal("invalid schema accepted")
	}
	for _, want := range []string{
		"bad.yaml:6: tables[0].attributes[0].options: a multiselectpicklist needs at least one option",
		"tables[0].attributes[1].options: only picklist and multiselectpicklist attributes have options",
		`tables[0].keys[0].attributes[0]: "tags" has type multiselectpicklist, which cannot be part of a key`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
