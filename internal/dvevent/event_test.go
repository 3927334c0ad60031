package dvevent

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func uuidValue(t *testing.T, s string) change.Value {
	t.Helper()
	v, err := change.ParseUUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantRow compares a row column by column, in order.
func wantRow(t *testing.T, what string, got change.Row, want change.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s has %d columns, want %d: %v", what, len(got), len(want), got)
		return
	}
	for i := range want {
		if got[i].Name != want[i].Name || !got[i].Value.Equal(want[i].Value) {
			t.Errorf("%s column %d = %s:%s %s, want %s:%s %s", what, i,
				got[i].Name, got[i].Value.Kind(), got[i].Value, want[i].Name, want[i].Value.Kind(), want[i].Value)
		}
	}
}

// The documented update example: a post-operation Update of a contact
// with pre- and post-images and a stage 30 parent context.
func TestDecodeDocumentedUpdate(t *testing.T) {
	ev, err := Decode(readFile(t, "remote-execution-context-update.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.MessageName != "Update" || ev.PrimaryEntityName != "contact" || ev.Stage != 40 || ev.Mode != 1 || ev.Depth != 1 {
		t.Errorf("event = %s %s stage %d mode %d depth %d", ev.MessageName, ev.PrimaryEntityName, ev.Stage, ev.Mode, ev.Depth)
	}
	if ev.PrimaryEntityID != "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e" || ev.UserID != "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d" ||
		ev.InitiatingUserID != ev.UserID || ev.RequestID != "" || ev.CorrelationID != "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d" {
		t.Errorf("ids = %+v", ev)
	}
	if !ev.OperationCreatedOn.Equal(time.UnixMilli(1732449601000)) || ev.OperationCreatedOn.Location() != time.UTC {
		t.Errorf("OperationCreatedOn = %v", ev.OperationCreatedOn)
	}
	if ev.ParentContext == nil || ev.ParentContext.Stage != 30 || ev.ParentContext.ParentContext != nil {
		t.Fatalf("ParentContext = %+v", ev.ParentContext)
	}
	if _, ok := ev.ParentContext.InputParameters.Get("SuppressDuplicateDetection"); !ok {
		t.Error("parent's SuppressDuplicateDetection parameter lost")
	}
	rec, err := ev.Record()
	if err != nil {
		t.Fatal(err)
	}
	id := uuidValue(t, "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e")
	account := uuidValue(t, "5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f")
	user := uuidValue(t, "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")
	if rec.Op != change.OpUpdate || rec.Table != "contact" || !rec.Key.Equal(change.Key{{Name: "contactid", Value: id}}) {
		t.Errorf("record = %s", rec.String())
	}
	wantRow(t, "Before", rec.Before, change.Row{
		{Name: "firstname", Value: change.Text("Nancy")},
		{Name: "jobtitle", Value: change.Text("Buyer")},
		{Name: "preferredcontactmethodcode", Value: change.Int(1)},
		{Name: "creditlimit", Value: change.MustDecimal("10000.0000")},
		{Name: "parentcustomerid", Value: uuidValue(t, "6d7e8f9a-0b1c-4d2e-9f3a-4b5c6d7e8f9a")},
		{Name: "parentcustomerid" + LookupNameSuffix, Value: change.Text("account")},
		{Name: "modifiedon", Value: change.Timestamp(time.UnixMilli(1732363200000).UTC())},
		{Name: "contactid", Value: id},
	})
	// The post-image, with the target's columns laid over it.
	wantRow(t, "After", rec.After, change.Row{
		{Name: "firstname", Value: change.Text("Nancy")},
		{Name: "jobtitle", Value: change.Text("Purchasing Manager")},
		{Name: "preferredcontactmethodcode", Value: change.Int(2)},
		{Name: "creditlimit", Value: change.MustDecimal("25000.0000")},
		{Name: "parentcustomerid", Value: account},
		{Name: "parentcustomerid" + LookupNameSuffix, Value: change.Text("account")},
		{Name: "modifiedon", Value: change.Timestamp(time.UnixMilli(1732449600000).UTC())},
		{Name: "contactid", Value: id},
		{Name: "modifiedby", Value: user},
		{Name: "modifiedby" + LookupNameSuffix, Value: change.Text("systemuser")},
		{Name: "modifiedonbehalfby", Value: change.Null()},
	})
	if rec.Origin != (change.Origin{System: "dataverse", Name: "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"}) {
		t.Errorf("Origin = %+v", rec.Origin)
	}
	if !rec.CommitTime.Equal(ev.OperationCreatedOn) || rec.Meta["message"] != "Update" ||
		rec.Meta["correlation_id"] != ev.CorrelationID || rec.Meta["operation_id"] != "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a" {
		t.Errorf("CommitTime %v, Meta %v", rec.CommitTime, rec.Meta)
	}
	if _, ok := rec.Meta["request_id"]; ok {
		t.Error("a null RequestId made a request_id")
	}
}

func TestDecodeDocumentedDelete(t *testing.T) {
	ev, err := Decode(readFile(t, "remote-execution-context-delete.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Target == nil || !ev.Target.Reference || ev.Target.LogicalName != "contact" || ev.Target.ID != ev.PrimaryEntityID {
		t.Errorf("Target = %+v", ev.Target)
	}
	rec, err := ev.Record()
	if err != nil {
		t.Fatal(err)
	}
	id := uuidValue(t, "7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e")
	if rec.Op != change.OpDelete || rec.After != nil || !rec.Key.Equal(change.Key{{Name: "contactid", Value: id}}) {
		t.Errorf("record = %s, After %v", rec.String(), rec.After)
	}
	wantRow(t, "Before", rec.Before, change.Row{
		{Name: "firstname", Value: change.Text("Nancy")},
		{Name: "lastname", Value: change.Text("Anderson")},
		{Name: "contactid", Value: id},
	})
}

// minimal builds a context around the given members, the rest as
// Dataverse always sends them.
func minimal(message, target string, extra ...string) string {
	members := []string{
		`"CorrelationId":"9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"`,
		`"Depth":1`,
		`"InitiatingUserId":"1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5D"`,
		`"InputParameters":[{"key":"Target","value":` + target + `}]`,
		`"MessageName":"` + message + `"`,
		`"OperationCreatedOn":"\/Date(1732449601000+0100)\/"`,
		`"OperationId":"2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"`,
		`"PrimaryEntityId":"{11111111-2222-4333-8444-555555555555}"`,
		`"PrimaryEntityName":"account"`,
		`"RequestId":"aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"`,
		`"UserId":"1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"`,
	}
	return "{" + strings.Join(append(members, extra...), ",") + "}"
}

func entity(attrs string) string {
	return `{"__type":"Entity:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","Attributes":[` + attrs +
		`],"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"account"}`
}

func TestDecodeValues(t *testing.T) {
	const osv = `"__type":"OptionSetValue:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts"`
	big := "123456789012345678901234567890.123456789012"
	for _, tc := range []struct {
		name, value string
		want        change.Value
	}{
		{"text", `"plain"`, change.Text("plain")},
		{"null", `null`, change.Null()},
		{"bool", `true`, change.Bool(true)},
		{"int", `42`, change.Int(42)},
		{"bigint beyond int64", `92233720368547758070`, change.MustDecimal("92233720368547758070")},
		{"decimal keeps digits", big, change.MustDecimal(big)},
		{"double", `1.5E-3`, change.MustDecimal("1.5E-3")},
		{"date", `"\/Date(1700000000123)\/"`, change.Timestamp(time.UnixMilli(1700000000123).UTC())},
		{"date before 1970", `"\/Date(-86400000)\/"`, change.Timestamp(time.UnixMilli(-86400000).UTC())},
		{"guid", `"6F9619FF-8B86-4011-B42D-00C04FC964FF"`, uuidValue(t, "6f9619ff-8b86-4011-b42d-00c04fc964ff")},
		{"32 hex digits stay text", `"6F9619FF8B864011B42D00C04FC964FF"`, change.Text("6F9619FF8B864011B42D00C04FC964FF")},
		{"option set", `{` + osv + `,"Value":3}`, change.Int(3)},
		{"money", `{"__type":"Money:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","Value":12.5000}`, change.MustDecimal("12.5000")},
		{"money integral", `{"__type":"Money:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","Value":12}`, change.MustDecimal("12")},
		{"option set collection", `[{` + osv + `,"Value":100000000},{` + osv + `,"Value":100000002}]`, change.Text("100000000,100000002")},
		{"empty option set collection", `[]`, change.Null()},
		{"aliased", `{"__type":"AliasedValue:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","AttributeLogicalName":"name","EntityLogicalName":"account","NeedFormatting":true,"ReturnType":8,"Value":{` + osv + `,"Value":7}}`, change.Int(7)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Decode([]byte(minimal("Update", entity(`{"key":"x","value":`+tc.value+`}`))))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := ev.Target.Attributes.Get("x")
			if !ok || !got.Equal(tc.want) {
				t.Errorf("x = %s %s, want %s %s", got.Kind(), got, tc.want.Kind(), tc.want)
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	good := minimal("Update", entity(`{"key":"name","value":"n"}`))
	if _, err := Decode([]byte(good)); err != nil {
		t.Fatalf("the base context does not decode: %v", err)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"not JSON", `{"MessageName":`, "not a RemoteExecutionContext"},
		{"an array", `[]`, "not a RemoteExecutionContext"},
		{"two objects", good + good, "data after"},
		{"no message", strings.Replace(good, `"MessageName":"Update"`, `"MessageName":""`, 1), "MessageName is missing"},
		{"no table", strings.Replace(good, `"PrimaryEntityName":"account"`, `"X":1`, 1), "PrimaryEntityName is missing"},
		{"bad id", strings.Replace(good, `{11111111-2222-4333-8444-555555555555}`, `1234`, 1), "PrimaryEntityId: not a GUID"},
		{"bad user", strings.Replace(good, `"UserId":"1a2b`, `"UserId":"zz2b`, 1), "UserId: not a GUID"},
		{"bad date", strings.Replace(good, `1732449601000+0100`, `17324x`, 1), "OperationCreatedOn"},
		{"no parameters", strings.Replace(good, `"InputParameters"`, `"Other"`, 1), "InputParameters is missing"},
		{"unknown type", minimal("Update", entity(`{"key":"x","value":{"__type":"EntityCollection:http:\/\/x","Entities":[]}}`)), "EntityCollection are not supported"},
		{"untyped object", minimal("Update", entity(`{"key":"x","value":{"a":1}}`)), "without a __type"},
		{"option set not integer", minimal("Update", entity(`{"key":"x","value":{"__type":"OptionSetValue:x","Value":"1"}}`)), "not an integer"},
		{"reference without id", minimal("Update", entity(`{"key":"x","value":{"__type":"EntityReference:x","LogicalName":"account"}}`)), "without Id"},
		{"duplicate attribute", minimal("Update", entity(`{"key":"x","value":1},{"key":"x","value":2}`)), "appears twice"},
		{"bad target", minimal("Update", `{"__type":"Money:x","Value":1}`), "not an entity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRecordMessages(t *testing.T) {
	id := uuidValue(t, "11111111-2222-4333-8444-555555555555")
	team := uuidValue(t, "99999999-2222-4333-8444-555555555555")
	ref := `{"__type":"EntityReference:http:\/\/schemas.microsoft.com\/xrm\/2011\/Contracts","Id":"11111111-2222-4333-8444-555555555555","LogicalName":"account"}`
	osv := func(n string) string { return `{"__type":"OptionSetValue:x","Value":` + n + `}` }
	post := `"PostEntityImages":[{"key":"PostImage","value":{"Attributes":[{"key":"name","value":"n"},{"key":"versionnumber","value":77}],"Id":"11111111-2222-4333-8444-555555555555","LogicalName":"account"}}]`
	for _, tc := range []struct {
		name  string
		body  string
		op    change.Op
		after change.Row
	}{
		{"create", minimal("Create", entity(`{"key":"name","value":"n"},{"key":"accountid","value":"11111111-2222-4333-8444-555555555555"}`)),
			change.OpInsert, change.Row{{Name: "name", Value: change.Text("n")}, {Name: "accountid", Value: id}}},
		{"assign", strings.Replace(minimal("Assign", ref, post), `"InputParameters":[`,
			`"InputParameters":[{"key":"Assignee","value":{"__type":"EntityReference:x","Id":"99999999-2222-4333-8444-555555555555","LogicalName":"team"}},`, 1),
			change.OpUpdate, change.Row{{Name: "name", Value: change.Text("n")}, {Name: "versionnumber", Value: change.Int(77)},
				{Name: "ownerid", Value: team}, {Name: "ownerid" + LookupNameSuffix, Value: change.Text("team")}, {Name: "accountid", Value: id}}},
		{"set state", strings.Replace(minimal("SetState", ref), `"InputParameters":[{"key":"Target","value":`,
			`"InputParameters":[{"key":"State","value":`+osv("1")+`},{"key":"Status","value":`+osv("2")+`},{"key":"EntityMoniker","value":`, 1),
			change.OpUpdate, change.Row{{Name: "statecode", Value: change.Int(1)}, {Name: "statuscode", Value: change.Int(2)}, {Name: "accountid", Value: id}}},
		{"merge", strings.Replace(minimal("Merge", ref), `"InputParameters":[`,
			`"InputParameters":[{"key":"UpdateContent","value":`+entity(`{"key":"name","value":"merged"}`)+`},`, 1),
			change.OpUpdate, change.Row{{Name: "name", Value: change.Text("merged")}, {Name: "accountid", Value: id}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := Decode([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			rec, err := ev.Record()
			if err != nil {
				t.Fatal(err)
			}
			if rec.Op != tc.op || !rec.Key.Equal(change.Key{{Name: "accountid", Value: id}}) {
				t.Errorf("record = %s", rec.String())
			}
			wantRow(t, "After", rec.After, tc.after)
			if rec.Meta["request_id"] != "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee" {
				t.Errorf("Meta = %v", rec.Meta)
			}
		})
	}
	ev, err := Decode([]byte(minimal("Retrieve", ref)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ev.Record(); err == nil || !strings.Contains(err.Error(), "does not change a row") {
		t.Errorf("Record of Retrieve: %v", err)
	}
}

func TestVersionAndTag(t *testing.T) {
	body := minimal("Update", entity(`{"key":"versionnumber","value":5}`),
		`"PostEntityImages":[{"key":"PostImage","value":{"Attributes":[{"key":"versionnumber","value":9}],"LogicalName":"account"}}]`,
		`"SharedVariables":[{"key":"tag","value":"dvsync"},{"key":"other","value":1}]`)
	ev, err := Decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := ev.Version(); !ok || v != 9 {
		t.Errorf("Version() = %d, %v; want the post-image's 9", v, ok)
	}
	if ev.Tag() != "dvsync" {
		t.Errorf("Tag() = %q", ev.Tag())
	}
	rec, err := ev.Record()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Meta["versionnumber"] != "9" || rec.Meta["tag"] != "dvsync" {
		t.Errorf("Meta = %v", rec.Meta)
	}
	if v, _ := rec.After.Get("versionnumber"); v.Int() != 5 {
		t.Errorf("After versionnumber = %s; the target's value wins over the image's", v)
	}
	noVersion, err := Decode([]byte(minimal("Update", entity(`{"key":"name","value":"n"}`))))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := noVersion.Version(); ok {
		t.Error("Version() found one in a context without versionnumber")
	}
}

func TestParseDate(t *testing.T) {
	for _, s := range []string{"/Date(1732449601000)/", "/Date(1732449601000-0000)/", "/Date(1732449601000+0530)/"} {
		got, err := ParseDate(s)
		if err != nil || !got.Equal(time.UnixMilli(1732449601000)) {
			t.Errorf("ParseDate(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "/Date()/", "/Date(12a)/", "/Date(1+05)/", "Date(1)", "/Date(1)"} {
		if _, err := ParseDate(s); err == nil {
			t.Errorf("ParseDate(%q) accepted", s)
		}
	}
}
