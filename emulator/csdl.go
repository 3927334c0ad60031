package emulator

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
)

// serveMetadata answers GET $metadata with a CSDL document for the served
// tables: an entity type per table (columns as properties, lookups as
// _<name>_value properties with single-valued navigation properties), an
// entity set per table, the WhoAmI function and the bulk actions. With
// ?annotations=true each change-tracked entity set carries the
// Org.OData.Capabilities.V1.ChangeTracking annotation, as in Dataverse.
func (s *Server) serveMetadata(w http.ResponseWriter, req *request) error {
	if req.Method != http.MethodGet {
		return errMethodNotAllowed(req.Method)
	}
	annotations := req.query.Get("annotations") == "true"
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">` + "\n")
	b.WriteString(`<edmx:DataServices>` + "\n")
	b.WriteString(`<Schema Namespace="Microsoft.Dynamics.CRM" Alias="mscrm" xmlns="http://docs.oasis-open.org/odata/ns/edm">` + "\n")
	b.WriteString(`<EntityType Name="crmbaseentity" Abstract="true"/>` + "\n")
	for _, ts := range s.tables {
		writeEntityType(&b, ts.def)
	}
	b.WriteString(`<ComplexType Name="WhoAmIResponse">` +
		`<Property Name="BusinessUnitId" Type="Edm.Guid" Nullable="false"/>` +
		`<Property Name="UserId" Type="Edm.Guid" Nullable="false"/>` +
		`<Property Name="OrganizationId" Type="Edm.Guid" Nullable="false"/></ComplexType>` + "\n")
	b.WriteString(`<ComplexType Name="CreateMultipleResponse"><Property Name="Ids" Type="Collection(Edm.Guid)" Nullable="false"/></ComplexType>` + "\n")
	b.WriteString(`<Function Name="WhoAmI"><ReturnType Type="mscrm.WhoAmIResponse" Nullable="false"/></Function>` + "\n")
	for _, a := range []bulkAction{bulkCreate, bulkUpdate, bulkUpsert, bulkDelete} {
		fmt.Fprintf(&b, `<Action Name="%s" IsBound="true">`+
			`<Parameter Name="entityset" Type="Collection(mscrm.crmbaseentity)" Nullable="false"/>`+
			`<Parameter Name="Targets" Type="Collection(mscrm.crmbaseentity)" Nullable="false"/>`, a)
		if a == bulkCreate {
			b.WriteString(`<ReturnType Type="mscrm.CreateMultipleResponse" Nullable="false"/>`)
		}
		b.WriteString("</Action>\n")
	}
	b.WriteString(`<EntityContainer Name="System">` + "\n")
	for _, ts := range s.tables {
		d := ts.def
		fmt.Fprintf(&b, `<EntitySet Name="%s" EntityType="Microsoft.Dynamics.CRM.%s">`, d.set, d.logical)
		for _, a := range d.attrs {
			for i, nav := range a.navs {
				fmt.Fprintf(&b, `<NavigationPropertyBinding Path="%s" Target="%s"/>`, nav, a.targets[i].set)
			}
		}
		if annotations && d.changeTracking {
			b.WriteString(`<Annotation Term="Org.OData.Capabilities.V1.ChangeTracking"><Record>` +
				`<PropertyValue Property="Supported" Bool="true"/></Record></Annotation>`)
		}
		b.WriteString("</EntitySet>\n")
	}
	b.WriteString(`<FunctionImport Name="WhoAmI" Function="mscrm.WhoAmI"/>` + "\n")
	b.WriteString("</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n")

	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Bytes())
	return nil
}

func writeEntityType(b *bytes.Buffer, d *tableDef) {
	fmt.Fprintf(b, `<EntityType Name="%s" BaseType="mscrm.crmbaseentity">`, d.logical)
	fmt.Fprintf(b, `<Key><PropertyRef Name="%s"/></Key>`, d.primaryID)
	for _, a := range d.attrs {
		fmt.Fprintf(b, `<Property Name="%s" Type="%s"`, a.prop, a.typ.edmType())
		switch {
		case a.primaryID:
			b.WriteString(` Nullable="false"`)
		case a.typ == tString || a.typ == tMemo:
			fmt.Fprintf(b, ` MaxLength="%d"`, a.maxLength)
		case a.typ == tDecimal || a.typ == tMoney:
			fmt.Fprintf(b, ` Scale="%d"`, a.precision)
		}
		b.WriteString("/>")
	}
	for _, a := range d.attrs {
		for i, nav := range a.navs {
			fmt.Fprintf(b, `<NavigationProperty Name="%s" Type="mscrm.%s"/>`, nav, a.targets[i].logical)
		}
	}
	b.WriteString("</EntityType>\n")
}
