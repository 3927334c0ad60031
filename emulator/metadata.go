package emulator

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"
)

// The metadata endpoints expose the schema as Dataverse's EntityMetadata,
// EntityKeyMetadata and AttributeMetadata records, with the properties a
// client needs to address tables and rows. Metadata queries are not paged.

// metaProp is one property of a metadata record: string, bool, nil,
// int64, float64, uuid.UUID, []string, a nested metaRecord (a complex value)
// or []metaRecord.
type metaProp struct {
	name string
	val  any
}

type metaRecord []metaProp

// metaType describes a metadata record type for $select and $filter.
type metaType struct {
	name   string              // qualified type name
	fields map[string]*attrDef // filterable primitive properties
	props  map[string]bool     // every property
}

func (m *metaType) field(prop string) (*attrDef, bool) {
	a, ok := m.fields[prop]
	return a, ok
}

func (m *metaType) typeName() string { return m.name }

func newMetaType(name string, sample metaRecord) *metaType {
	mt := &metaType{name: name, fields: map[string]*attrDef{}, props: map[string]bool{}}
	for _, p := range sample {
		mt.props[p.name] = true
		var typ attrType
		switch p.val.(type) {
		case bool:
			typ = tBoolean
		case uuid.UUID:
			typ = tGUID
		case int64:
			typ = tBigInt
		case float64:
			typ = tDouble
		case []string, metaRecord, []metaRecord:
			continue
		default:
			typ = tString
		}
		mt.fields[p.name] = &attrDef{name: p.name, prop: p.name, typ: typ}
	}
	return mt
}

var (
	entityMetaType = newMetaType("Microsoft.Dynamics.CRM.EntityMetadata", entityRecord(&tableDef{}))
	keyMetaType    = newMetaType("Microsoft.Dynamics.CRM.EntityKeyMetadata", keyRecord(&tableDef{}, &keyDef{}))
	attrMetaType   = newMetaType("Microsoft.Dynamics.CRM.AttributeMetadata", attrMetaSamples())
)

func entityRecord(d *tableDef) metaRecord {
	var primaryName any
	if d.primaryName != "" {
		primaryName = d.primaryName
	}
	return metaRecord{
		{"MetadataId", d.metadataID},
		{"LogicalName", d.logical},
		{"SchemaName", d.logical},
		{"EntitySetName", d.set},
		{"LogicalCollectionName", d.set},
		{"PrimaryIdAttribute", d.primaryID},
		{"PrimaryNameAttribute", primaryName},
		{"ChangeTrackingEnabled", d.changeTracking},
		{"IsOptimisticConcurrencyEnabled", true},
	}
}

func keyRecord(d *tableDef, k *keyDef) metaRecord {
	attrs := make([]string, len(k.attrs))
	for i, a := range k.attrs {
		attrs[i] = a.name
	}
	return metaRecord{
		{"MetadataId", k.metadataID},
		{"LogicalName", k.name},
		{"SchemaName", k.name},
		{"EntityLogicalName", d.logical},
		{"KeyAttributes", attrs},
		{"EntityKeyIndexStatus", "Active"},
	}
}

func attributeRecord(d *tableDef, a *attrDef) metaRecord {
	var targets any
	if a.typ == tLookup {
		names := make([]string, len(a.targets))
		for i, t := range a.targets {
			names[i] = t.logical
		}
		targets = names
	}
	rec := metaRecord{
		{"@odata.type", "#Microsoft.Dynamics.CRM." + a.metadataTypeName()},
		{"MetadataId", uuid.NewSHA1(metadataNamespace, []byte("attribute/"+d.logical+"/"+a.name))},
		{"LogicalName", a.name},
		{"SchemaName", a.name},
		{"EntityLogicalName", d.logical},
		{"AttributeType", a.typ.metadataName()},
		{"AttributeTypeName", metaRecord{{"Value", a.attributeTypeName()}}},
		{"RequiredLevel", metaRecord{{"Value", a.requiredLevel()}, {"CanBeChanged", !a.system}, {"ManagedPropertyLogicalName", "canmodifyrequirementlevelsettings"}}},
		{"IsPrimaryId", a.primaryID},
		{"IsPrimaryName", a.name == d.primaryName},
		{"IsValidForCreate", !a.readOnly},
		{"IsValidForUpdate", !a.readOnly && !a.primaryID},
		{"IsValidForRead", true},
		{"Targets", targets},
	}
	return append(rec, typedMetaProps(a)...)
}

func (m metaRecord) values() map[string]any {
	vals := make(map[string]any, len(m))
	for _, p := range m {
		vals[p.name] = p.val
	}
	return vals
}

// metaSelect is a parsed $select over a metadata type; nil means all.
type metaSelect map[string]bool

func parseMetaSelect(mt *metaType, raw string) (metaSelect, string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" || raw == "*" {
		return nil, "", nil
	}
	sel := metaSelect{"MetadataId": true, "@odata.type": true}
	var names []string
	for _, name := range strings.Split(raw, ",") {
		name = strings.TrimSpace(name)
		if !mt.props[name] || strings.HasPrefix(name, "@") {
			return nil, "", errNoProperty(name, mt.name)
		}
		sel[name] = true
		names = append(names, name)
	}
	return sel, "(" + strings.Join(names, ",") + ")", nil
}

// expansion is one $expand item of an EntityDefinitions query.
type expansion struct {
	name   string // Keys or Attributes
	sel    metaSelect
	filter filterNode
}

func parseMetaExpand(raw string) ([]expansion, error) {
	var out []expansion
	for _, item := range splitOutsideParens(raw, ',') {
		item = strings.TrimSpace(item)
		name, opts, hasOpts := strings.Cut(item, "(")
		var mt *metaType
		switch name {
		case "Keys":
			mt = keyMetaType
		case "Attributes":
			mt = attrMetaType
		default:
			return nil, errBadQuery("Could not find a property named '%s' on type '%s'.", name, entityMetaType.name)
		}
		e := expansion{name: name}
		if hasOpts {
			if !strings.HasSuffix(opts, ")") {
				return nil, errBadQuery("Syntax error in $expand '%s'.", raw)
			}
			for _, opt := range strings.Split(strings.TrimSuffix(opts, ")"), ";") {
				key, val, _ := strings.Cut(strings.TrimSpace(opt), "=")
				var err error
				switch key {
				case "$select":
					e.sel, _, err = parseMetaSelect(mt, val)
				case "$filter":
					e.filter, err = parseFilter(mt, val, nil)
				default:
					err = errNotImplemented("The nested query option " + key + " in $expand")
				}
				if err != nil {
					return nil, err
				}
			}
		}
		out = append(out, e)
	}
	return out, nil
}

func splitOutsideParens(s string, sep byte) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case sep:
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

func appendMetaRecord(buf []byte, ctx string, m metaRecord, sel metaSelect) []byte {
	buf = append(buf, '{')
	first := true
	sep := func() {
		if !first {
			buf = append(buf, ',')
		}
		first = false
	}
	if ctx != "" {
		sep()
		buf = append(buf, `"@odata.context":`...)
		buf = appendJSONString(buf, ctx)
	}
	for _, p := range m {
		if sel != nil && !sel[p.name] {
			continue
		}
		sep()
		buf = appendJSONString(buf, p.name)
		buf = append(buf, ':')
		buf = appendMetaValue(buf, p.val)
	}
	return buf
}

func appendMetaValue(buf []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case string:
		return appendJSONString(buf, x)
	case bool:
		return fmt.Append(buf, x)
	case uuid.UUID:
		return appendJSONString(buf, x.String())
	case int64, float64:
		return appendMetaNumber(buf, x)
	case []string:
		buf = append(buf, '[')
		for i, s := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, s)
		}
		return append(buf, ']')
	case metaRecord:
		return append(appendMetaRecord(buf, "", x, nil), '}')
	case []metaRecord:
		buf = append(buf, '[')
		for i, m := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(appendMetaRecord(buf, "", m, nil), '}')
		}
		return append(buf, ']')
	}
	return append(buf, "null"...)
}

// serveEntityDefinitions answers EntityDefinitions, EntityDefinitions(<key>),
// and its Keys and Attributes collections.
func (s *Server) serveEntityDefinitions(w http.ResponseWriter, req *request, segs []segment) error {
	if req.Method != http.MethodGet {
		return errNotImplemented("Changing table definitions")
	}
	if len(segs) > 3 {
		return errSegmentNotFound(segs[3].name)
	}
	if !segs[0].hasArg {
		if len(segs) > 1 {
			return errSegmentNotFound(segs[1].name)
		}
		return s.listEntityDefinitions(w, req)
	}
	d, err := s.findTableDef(segs[0].args)
	if err != nil {
		return err
	}
	if len(segs) == 1 {
		return s.getEntityDefinition(w, req, d)
	}
	switch segs[1].name {
	case "Keys":
		recs := make([]metaRecord, len(d.keys))
		for i, k := range d.keys {
			recs[i] = keyRecord(d, k)
		}
		return serveMetaCollection(w, req, keyMetaType, recs, segs[1:], fmt.Sprintf("EntityDefinitions(%s)/Keys", d.metadataID))
	case "Attributes":
		ctx := fmt.Sprintf("EntityDefinitions(%s)/Attributes", d.metadataID)
		if len(segs) == 3 && !segs[1].hasArg {
			return serveAttributeCast(w, req, d, segs[2], ctx)
		}
		recs := make([]metaRecord, len(d.attrs))
		for i, a := range d.attrs {
			recs[i] = attributeRecord(d, a)
		}
		return serveMetaCollection(w, req, attrMetaType, recs, segs[1:], ctx)
	}
	return errSegmentNotFound(segs[1].name)
}

// findTableDef resolves "LogicalName='account'" or a MetadataId.
func (s *Server) findTableDef(args string) (*tableDef, error) {
	name, id, err := parseMetaKey(args)
	if err != nil {
		return nil, err
	}
	for _, ts := range s.tables {
		if (name != "" && ts.def.logical == name) || (name == "" && ts.def.metadataID == id) {
			return ts.def, nil
		}
	}
	if name == "" {
		name = id.String()
	}
	return nil, &apiError{http.StatusNotFound, codeObjectDoesNotExist,
		fmt.Sprintf("The entity with a name = '%s' with namemapping = 'Logical' was not found in the MetadataCache.", name)}
}

// parseMetaKey parses a metadata key predicate: LogicalName='x' or a GUID.
func parseMetaKey(args string) (string, uuid.UUID, error) {
	toks, err := lex(args)
	if err != nil {
		return "", uuid.Nil, err
	}
	switch {
	case len(toks) == 2 && toks[0].kind == tokGUID:
		return "", uuid.MustParse(toks[0].text), nil
	case len(toks) == 4 && toks[0].isKeyword("LogicalName") && toks[1].kind == tokEquals && toks[2].kind == tokString:
		return toks[2].text, uuid.Nil, nil
	}
	return "", uuid.Nil, errBadQuery("The key in the request URI is not valid for resource '%s'. Use MetadataId or LogicalName.", entityMetaType.name)
}

func (s *Server) listEntityDefinitions(w http.ResponseWriter, req *request) error {
	if err := checkOptions(req.query, "$select", "$filter", "$expand"); err != nil {
		return err
	}
	sel, selCtx, err := parseMetaSelect(entityMetaType, req.query.Get("$select"))
	if err != nil {
		return err
	}
	var expand []expansion
	if req.query.Has("$expand") {
		if expand, err = parseMetaExpand(req.query.Get("$expand")); err != nil {
			return err
		}
	}
	var filter filterNode
	if req.query.Has("$filter") {
		if filter, err = parseFilter(entityMetaType, req.query.Get("$filter"), req.query); err != nil {
			return err
		}
	}
	buf := []byte(`{"@odata.context":`)
	buf = appendJSONString(buf, req.base+"/$metadata#EntityDefinitions"+selCtx)
	buf = append(buf, `,"value":[`...)
	n := 0
	for _, ts := range s.tables {
		rec := entityRecord(ts.def)
		if filter != nil && !filter.eval(valueMap(rec.values())) {
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = appendMetaRecord(buf, "", rec, sel)
		buf = appendExpansions(buf, ts.def, expand)
		buf = append(buf, '}')
	}
	buf = append(buf, "]}"...)
	writeJSON(w, http.StatusOK, buf)
	return nil
}

func (s *Server) getEntityDefinition(w http.ResponseWriter, req *request, d *tableDef) error {
	if err := checkOptions(req.query, "$select", "$expand"); err != nil {
		return err
	}
	sel, selCtx, err := parseMetaSelect(entityMetaType, req.query.Get("$select"))
	if err != nil {
		return err
	}
	var expand []expansion
	if req.query.Has("$expand") {
		if expand, err = parseMetaExpand(req.query.Get("$expand")); err != nil {
			return err
		}
	}
	buf := appendMetaRecord(nil, req.base+"/$metadata#EntityDefinitions"+selCtx+"/$entity", entityRecord(d), sel)
	buf = appendExpansions(buf, d, expand)
	buf = append(buf, '}')
	writeJSON(w, http.StatusOK, buf)
	return nil
}

func appendExpansions(buf []byte, d *tableDef, expand []expansion) []byte {
	for _, e := range expand {
		buf = append(buf, ',')
		buf = appendJSONString(buf, e.name)
		buf = append(buf, ":["...)
		var recs []metaRecord
		switch e.name {
		case "Keys":
			for _, k := range d.keys {
				recs = append(recs, keyRecord(d, k))
			}
		case "Attributes":
			for _, a := range d.attrs {
				recs = append(recs, attributeRecord(d, a))
			}
		}
		n := 0
		for _, rec := range recs {
			if e.filter != nil && !e.filter.eval(valueMap(rec.values())) {
				continue
			}
			if n > 0 {
				buf = append(buf, ',')
			}
			n++
			buf = append(appendMetaRecord(buf, "", rec, e.sel), '}')
		}
		buf = append(buf, ']')
	}
	return buf
}

// serveMetaCollection answers a Keys or Attributes collection, or one member
// of it by LogicalName or MetadataId.
func serveMetaCollection(w http.ResponseWriter, req *request, mt *metaType, recs []metaRecord, segs []segment, ctx string) error {
	if len(segs) > 1 {
		return errSegmentNotFound(segs[1].name)
	}
	allowed := []string{"$select", "$filter"}
	if segs[0].hasArg {
		allowed = allowed[:1]
	}
	if err := checkOptions(req.query, allowed...); err != nil {
		return err
	}
	sel, selCtx, err := parseMetaSelect(mt, req.query.Get("$select"))
	if err != nil {
		return err
	}
	if segs[0].hasArg {
		name, id, err := parseMetaKey(segs[0].args)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			vals := rec.values()
			if (name != "" && vals["LogicalName"] == name) || (name == "" && vals["MetadataId"] == id) {
				buf := appendMetaRecord(nil, req.base+"/$metadata#"+ctx+selCtx+"/$entity", rec, sel)
				writeJSON(w, http.StatusOK, append(buf, '}'))
				return nil
			}
		}
		return &apiError{http.StatusNotFound, codeObjectDoesNotExist, fmt.Sprintf("No %s with key %s was found.", mt.name, segs[0].args)}
	}
	var filter filterNode
	if req.query.Has("$filter") {
		if filter, err = parseFilter(mt, req.query.Get("$filter"), req.query); err != nil {
			return err
		}
	}
	buf := []byte(`{"@odata.context":`)
	buf = appendJSONString(buf, req.base+"/$metadata#"+ctx+selCtx)
	buf = append(buf, `,"value":[`...)
	n := 0
	for _, rec := range recs {
		if filter != nil && !filter.eval(valueMap(rec.values())) {
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = append(appendMetaRecord(buf, "", rec, sel), '}')
	}
	writeJSON(w, http.StatusOK, append(buf, "]}"...))
	return nil
}

// serveWhoAmI answers the WhoAmI function with the emulator's fixed
// identities.
func (s *Server) serveWhoAmI(w http.ResponseWriter, req *request) error {
	if req.Method != http.MethodGet {
		return errMethodNotAllowed(req.Method)
	}
	buf := []byte(`{"@odata.context":`)
	buf = appendJSONString(buf, req.base+"/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
	buf = fmt.Appendf(buf, `,"BusinessUnitId":"%s","UserId":"%s","OrganizationId":"%s"}`,
		s.businessUnitID, userOf(req.Context()), s.organizationID)
	writeJSON(w, http.StatusOK, buf)
	return nil
}
