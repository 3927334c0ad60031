package odataclient

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dvsync/dvsync/internal/testenv"
)

const metadataSchema = `
tables:
  - logical_name: contact
    entity_set: contacts
    primary_id: contactid
    primary_name: fullname
    attributes:
      - {name: fullname, type: string}
  - logical_name: new_shipment
    entity_set: new_shipments
    primary_id: new_shipmentid
    primary_name: new_name
    attributes:
      - {name: new_name, type: string, max_length: 200}
      - {name: new_tenant, type: integer}
      - {name: new_code, type: string, max_length: 40}
      - {name: new_weight, type: decimal, precision: 4}
      - {name: new_status, type: picklist, options: [1, 2, 3]}
      - {name: new_contact, type: lookup, targets: [contact]}
    keys:
      - {name: tenant_code_key, attributes: [new_tenant, new_code]}
`

// countingTransport counts the requests per path that reach the server.
type countingTransport struct {
	mu    sync.Mutex
	paths map[string]int
	total atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.paths[r.URL.Path]++
	c.mu.Unlock()
	c.total.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestEmulatorMetadataCache(t *testing.T) {
	emu := testenv.StartEmulator(t, metadataSchema)
	counter := &countingTransport{paths: make(map[string]int)}
	c, err := New(Options{BaseURL: emu.URL, Tokens: StaticToken(emu.Token), HTTPClient: &http.Client{Transport: counter}})
	if err != nil {
		t.Fatal(err)
	}
	cache := NewMetadataCache(c)

	const callers = 20
	results := make([]*TableMetadata, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() { results[i], errs[i] = cache.Table(t.Context(), "new_shipment") })
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i] != results[0] {
			t.Fatal("concurrent callers got different metadata values")
		}
	}
	if n := counter.total.Load(); n != 3 {
		t.Fatalf("%d requests for one table read by %d callers, want 3 (definition, attributes, keys)", n, callers)
	}

	md := results[0]
	if md.EntitySetName != "new_shipments" || md.PrimaryIdAttribute != "new_shipmentid" {
		t.Errorf("definition %+v", md.EntityDefinition)
	}
	for name, typ := range map[string]string{
		"new_name": "String", "new_tenant": "Integer", "new_weight": "Decimal",
		"new_status": "Picklist", "new_contact": "Lookup", "new_shipmentid": "Uniqueidentifier",
	} {
		if got := md.Attributes[name].Type; got != typ {
			t.Errorf("%s: type %q, want %q", name, got, typ)
		}
	}
	if a := md.Attributes["new_contact"]; len(a.Targets) != 1 || a.Targets[0] != "contact" {
		t.Errorf("lookup targets %v", a.Targets)
	}
	if !md.Attributes["new_shipmentid"].PrimaryID || md.Attributes["new_name"].PrimaryID {
		t.Error("primary id attribute not marked, or another one marked")
	}
	if len(md.Keys) != 1 || md.Keys[0].Name != "tenant_code_key" || md.Keys[0].Status != "Active" ||
		len(md.Keys[0].Attributes) != 2 || md.Keys[0].Attributes[0] != "new_tenant" || md.Keys[0].Attributes[1] != "new_code" {
		t.Errorf("keys %+v", md.Keys)
	}

	// Cached: no more requests. Unknown tables are errors, not cached.
	if _, err := cache.Table(t.Context(), "new_shipment"); err != nil || counter.total.Load() != 3 {
		t.Fatalf("second read: %v, %d requests", err, counter.total.Load())
	}
	for range 2 {
		if _, err := cache.Table(t.Context(), "nosuch"); !IsNotFound(err) {
			t.Fatalf("unknown table: %v, want 404", err)
		}
	}
	if n := counter.total.Load(); n != 5 {
		t.Fatalf("%d requests, want 5: failed reads are asked again", n)
	}
	cache.Forget("new_shipment")
	if _, err := cache.Table(t.Context(), "new_shipment"); err != nil || counter.total.Load() != 8 {
		t.Fatalf("after Forget: %v, %d requests, want 8", err, counter.total.Load())
	}
}

// TestAttributesTypeSpecificProperties reads the derived AttributeMetadata
// properties Dataverse sends (the emulator sends only the base ones).
func TestAttributesTypeSpecificProperties(t *testing.T) {
	s := newServer(t, jsonReply(200, `{"@odata.context":"x","value":[
	 {"@odata.type":"#Microsoft.Dynamics.CRM.StringAttributeMetadata","LogicalName":"name","AttributeType":"String","MaxLength":160,"IsPrimaryId":false,"IsValidForCreate":true,"IsValidForUpdate":true},
	 {"@odata.type":"#Microsoft.Dynamics.CRM.MoneyAttributeMetadata","LogicalName":"revenue","AttributeType":"Money","Precision":2,"MinValue":-922337203685477,"MaxValue":922337203685477},
	 {"@odata.type":"#Microsoft.Dynamics.CRM.PicklistAttributeMetadata","LogicalName":"industrycode","AttributeType":"Picklist","OptionSet":{"Options":[{"Value":1},{"Value":2}]}},
	 {"LogicalName":"createdon","AttributeType":"DateTime","IsValidForCreate":false,"IsValidForUpdate":false}]}`))
	c := newClient(t, s)
	attrs, err := c.Attributes(t.Context(), "account")
	if err != nil {
		t.Fatal(err)
	}
	if r := s.only(t); r.RequestURI != "/api/data/v9.2/EntityDefinitions(LogicalName='account')/Attributes" {
		t.Fatalf("request URI %s", r.RequestURI)
	}
	if len(attrs) != 4 {
		t.Fatalf("%d attributes", len(attrs))
	}
	if a := attrs[0]; a.MaxLength != 160 || !a.ValidForCreate || !a.ValidForUpdate {
		t.Errorf("string: %+v", a)
	}
	if a := attrs[1]; a.Precision == nil || *a.Precision != 2 || a.MinValue == nil || a.MaxValue == nil || *a.MaxValue != 922337203685477 {
		t.Errorf("money: %+v", a)
	}
	if a := attrs[2]; len(a.Options) != 2 || a.Options[0] != 1 || a.Options[1] != 2 {
		t.Errorf("picklist: %+v", a)
	}
	if a := attrs[3]; a.ValidForCreate || a.ValidForUpdate {
		t.Errorf("read-only column: %+v", a)
	}
}
