package emulator_test

import (
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
)

func TestMetadataDocument(t *testing.T) {
	a := startAPI(t)
	r := a.do("GET", "$metadata", nil).must(t, http.StatusOK)
	if ct := r.header.Get("Content-Type"); ct != "application/xml" {
		t.Errorf("Content-Type %q", ct)
	}
	var doc struct {
		Schema struct {
			Namespace   string `xml:"Namespace,attr"`
			EntityTypes []struct {
				Name string `xml:"Name,attr"`
				Key  struct {
					Ref struct {
						Name string `xml:"Name,attr"`
					} `xml:"PropertyRef"`
				} `xml:"Key"`
				Props []struct {
					Name string `xml:"Name,attr"`
					Type string `xml:"Type,attr"`
				} `xml:"Property"`
				Navs []struct {
					Name string `xml:"Name,attr"`
					Type string `xml:"Type,attr"`
				} `xml:"NavigationProperty"`
			} `xml:"EntityType"`
			Sets []struct {
				Name       string `xml:"Name,attr"`
				EntityType string `xml:"EntityType,attr"`
			} `xml:"EntityContainer>EntitySet"`
		} `xml:"DataServices>Schema"`
	}
	if err := xml.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("CSDL does not parse: %v\n%s", err, r.body)
	}
	if doc.Schema.Namespace != "Microsoft.Dynamics.CRM" {
		t.Errorf("namespace %q", doc.Schema.Namespace)
	}
	found := false
	for _, et := range doc.Schema.EntityTypes {
		if et.Name != "contact" {
			continue
		}
		found = true
		if et.Key.Ref.Name != "contactid" {
			t.Errorf("contact key %q", et.Key.Ref.Name)
		}
		props := map[string]string{}
		for _, p := range et.Props {
			props[p.Name] = p.Type
		}
		if props["lastname"] != "Edm.String" || props["_parentcustomerid_value"] != "Edm.Guid" || props["versionnumber"] != "Edm.Int64" {
			t.Errorf("contact properties %v", props)
		}
		navs := map[string]string{}
		for _, n := range et.Navs {
			navs[n.Name] = n.Type
		}
		if navs["parentcustomerid_account"] != "mscrm.account" || navs["parentcustomerid_contact"] != "mscrm.contact" || navs["createdby"] != "mscrm.systemuser" {
			t.Errorf("contact navigation properties %v", navs)
		}
	}
	if !found {
		t.Fatal("no contact entity type")
	}
	sets := map[string]string{}
	for _, s := range doc.Schema.Sets {
		sets[s.Name] = s.EntityType
	}
	if sets["accounts"] != "Microsoft.Dynamics.CRM.account" || sets["systemusers"] != "Microsoft.Dynamics.CRM.systemuser" {
		t.Errorf("entity sets %v", sets)
	}

	annotated := a.do("GET", "$metadata?annotations=true", nil).must(t, http.StatusOK)
	if n := strings.Count(string(annotated.body), "Org.OData.Capabilities.V1.ChangeTracking"); n != 1 {
		t.Errorf("%d change tracking annotations, want 1 (accounts)", n)
	}
	if strings.Contains(string(r.body), "Org.OData.Capabilities.V1.ChangeTracking") {
		t.Error("annotation without ?annotations=true")
	}
}
