package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/valyala/fastjson"
)

// changeSet is a decoded request body: the columns it sets, in stored form.
type changeSet struct {
	cols  []colVal   // each column once, in the order the body first sets it
	id    *uuid.UUID // primary id, when the body carries one
	binds []pendingBind
}

// colVal is one column a write sets; a nil v clears it.
type colVal struct {
	attr *attrDef
	v    any
}

// set sets column a to v; a column set twice keeps the later value, as a
// JSON object's duplicate member does. A body sets a handful of columns,
// so a scan beats a map.
func (cs *changeSet) set(a *attrDef, v any) {
	for i := range cs.cols {
		if cs.cols[i].attr == a {
			cs.cols[i].v = v
			return
		}
	}
	cs.cols = append(cs.cols, colVal{a, v})
}

// has reports whether the body sets column a.
func (cs *changeSet) has(a *attrDef) bool { return cs.col(a) != nil }

// col returns the body's setting of column a, or nil.
func (cs *changeSet) col(a *attrDef) *colVal {
	for i := range cs.cols {
		if cs.cols[i].attr == a {
			return &cs.cols[i]
		}
	}
	return nil
}

// pendingBind is a "<nav>@odata.bind" whose target row is resolved before
// the write takes its table lock.
type pendingBind struct {
	nav navProp
	uri string
}

// readChanges decodes a create/update body for table d. Like Dataverse it
// rejects unknown properties, values of the wrong type and out-of-range
// values; it ignores read-only system columns and instance annotations.
func readChanges(w http.ResponseWriter, r *http.Request, d *tableDef) (*changeSet, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, &apiError{http.StatusUnsupportedMediaType, codePayload,
				fmt.Sprintf("The content type '%s' is not supported; use application/json.", ct)}
		}
	}
	data, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	members, err := decodeObject(data, d)
	if err != nil {
		return nil, err
	}
	cs := &changeSet{cols: make([]colVal, 0, len(members))}
	for i := range members {
		if err := cs.add(d, &members[i]); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// member is one member of a request body's object. The direct decoder
// leaves a string without escapes and a number undecoded, in raw, so that
// a column's value is converted from the bytes once, to its stored type;
// decoded gives any member's value as encoding/json (with UseNumber) would.
type member struct {
	name  string
	value any    // the value, unless kind says it is in raw
	raw   []byte // a string's contents or a number's literal
	kind  byte   // '"' (string) or '0' (number) when the value is in raw; else 0
	// attr, when set, is the column the name denotes (see attrDef.plain),
	// found by the direct decoder.
	attr *attrDef
}

// decoded returns the member's value: string, json.Number, bool, nil,
// map[string]any or []any.
func (m *member) decoded() any {
	switch m.kind {
	case '"':
		return string(m.raw)
	case '0':
		return json.Number(m.raw)
	}
	return m.value
}

// decodeObject decodes a JSON object keeping member order, so that the first
// problem in document order is the one reported. Numbers stay json.Number
// (see member).
// Bulk messages decode thousands of objects per request, so valid input
// takes a direct path over the bytes; invalid input goes to
// decodeObjectSlow for the error message.
func decodeObject(data []byte, d *tableDef) ([]member, error) {
	if !validJSON(data) {
		return decodeObjectSlow(data, d.set)
	}
	return decodeValidObject(data, d, nil)
}

// validJSON reports whether data is valid JSON, exactly as json.Valid does.
// fastjson's validator accepts the same grammar (whitespace, escapes,
// numbers) several times faster, with two gaps that are left to
// json.Valid: it has no limit on nesting, where encoding/json refuses more
// than 10,000 levels, and in a string with escapes it misses a control
// character before the last escape.
func validJSON(data []byte) bool {
	if bytes.Count(data, []byte("{"))+bytes.Count(data, []byte("[")) > maxJSONDepth ||
		bytes.IndexByte(data, '\\') >= 0 && hasControl(data) {
		return json.Valid(data)
	}
	return fastjson.ValidateBytes(data) == nil
}

// hasControl reports whether data holds a byte below 0x20: whitespace
// between tokens, or an invalid character in a string.
func hasControl(data []byte) bool {
	for _, c := range data {
		if c < 0x20 {
			return true
		}
	}
	return false
}

// maxJSONDepth is encoding/json's limit on nesting.
const maxJSONDepth = 10000

// decodeValidObject is decodeObject for data already known to be valid JSON.
// It appends the members to buf[:0], so that a bulk message can decode all
// its targets into one buffer.
func decodeValidObject(data []byte, d *tableDef, buf []member) ([]member, error) {
	set := d.set
	p := jsonScan{data: data}
	p.skipSpace()
	if p.peek() != '{' {
		return decodeObjectSlow(data, set)
	}
	p.i++
	members := buf[:0]
	if members == nil {
		members = make([]member, 0, 8)
	}
	for {
		p.skipSpace()
		if p.peek() == '}' {
			return members, nil
		}
		if p.peek() == ',' {
			p.i++
			p.skipSpace()
		}
		name, attr, err := p.name(d)
		if err != nil {
			return nil, errPayload(set, fmt.Sprintf("Invalid JSON. %v", err))
		}
		p.skipSpace()
		p.i++ // ':'
		p.skipSpace()
		if raw, kind := p.rawValue(); kind != 0 {
			members = append(members, member{name: name, raw: raw, kind: kind, attr: attr})
			continue
		}
		v, err := p.value()
		if err != nil {
			return nil, errPayload(set, fmt.Sprintf("Invalid JSON. %v", err))
		}
		members = append(members, member{name: name, value: v, attr: attr})
	}
}

// jsonScan walks a document that json.Valid accepted.
type jsonScan struct {
	data []byte
	i    int
}

func (p *jsonScan) peek() byte {
	if p.i < len(p.data) {
		return p.data[p.i]
	}
	return 0
}

func (p *jsonScan) skipSpace() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

// str reads a string literal; only strings with escapes are unquoted by
// encoding/json.
func (p *jsonScan) str() (string, error) {
	start := p.i
	escaped := false
	for p.i++; p.i < len(p.data); p.i++ {
		switch p.data[p.i] {
		case '\\':
			escaped = true
			p.i++
		case '"':
			p.i++
			if !escaped {
				return string(p.data[start+1 : p.i-1]), nil
			}
			var s string
			err := json.Unmarshal(p.data[start:p.i], &s)
			return s, err
		}
	}
	return "", io.ErrUnexpectedEOF
}

// name reads a member name. The names of d's columns and the annotations
// every bulk target carries are returned as the strings d already holds,
// since a bulk message would otherwise allocate each of them once per row;
// attr is the column a plain column name denotes, so that the change set
// need not look it up again.
func (p *jsonScan) name(d *tableDef) (name string, attr *attrDef, err error) {
	start := p.i
	for p.i++; p.i < len(p.data); p.i++ {
		switch p.data[p.i] {
		case '\\':
			p.i = start
			name, err := p.str()
			return name, nil, err
		case '"':
			p.i++
			b := p.data[start+1 : p.i-1]
			if a, ok := d.byProp[string(b)]; ok && a.prop == string(b) {
				if a.plain {
					return a.prop, a, nil
				}
				return a.prop, nil, nil
			}
			switch string(b) {
			case "@odata.type":
				return "@odata.type", nil, nil
			case "@odata.id":
				return "@odata.id", nil, nil
			}
			return string(b), nil, nil
		}
	}
	return "", nil, io.ErrUnexpectedEOF
}

// rawValue reads a string without escapes (its contents, kind '"') or a
// number (its literal, kind '0') without converting it; for any other
// value it reads nothing and returns kind 0.
func (p *jsonScan) rawValue() ([]byte, byte) {
	switch c := p.peek(); {
	case c == '"':
		for i := p.i + 1; i < len(p.data); i++ {
			switch p.data[i] {
			case '\\':
				return nil, 0
			case '"':
				raw := p.data[p.i+1 : i]
				p.i = i + 1
				return raw, '"'
			}
		}
		return nil, 0
	case c == '-' || c >= '0' && c <= '9':
		start := p.i
		for p.i < len(p.data) && strings.IndexByte("+-0123456789.eE", p.data[p.i]) >= 0 {
			p.i++
		}
		return p.data[start:p.i], '0'
	}
	return nil, 0
}

// value reads any value: primitives directly, objects and arrays through
// encoding/json (they are rare in row bodies and only ever rejected).
func (p *jsonScan) value() (any, error) {
	switch c := p.peek(); c {
	case '"':
		return p.str()
	case 't':
		p.i += 4
		return true, nil
	case 'f':
		p.i += 5
		return false, nil
	case 'n':
		p.i += 4
		return nil, nil
	case '{', '[':
		start := p.i
		if err := p.skipComposite(); err != nil {
			return nil, err
		}
		dec := json.NewDecoder(bytes.NewReader(p.data[start:p.i]))
		dec.UseNumber()
		var v any
		err := dec.Decode(&v)
		return v, err
	default:
		start := p.i
		for p.i < len(p.data) && strings.IndexByte("+-0123456789.eE", p.data[p.i]) >= 0 {
			p.i++
		}
		return json.Number(p.data[start:p.i]), nil
	}
}

// skipComposite moves past the object or array that starts at p.i.
func (p *jsonScan) skipComposite() error {
	depth := 0
	for ; p.i < len(p.data); p.i++ {
		switch p.data[p.i] {
		case '"':
			// Skipped without building the string: bulkTargets skips
			// every target this way.
			for p.i++; p.i < len(p.data) && p.data[p.i] != '"'; p.i++ {
				if p.data[p.i] == '\\' {
					p.i++
				}
			}
			if p.i >= len(p.data) {
				return io.ErrUnexpectedEOF
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		if depth == 0 {
			p.i++
			return nil
		}
	}
	return io.ErrUnexpectedEOF
}

// decodeObjectSlow decodes with encoding/json's token API; it is the
// reference decoder, used to word the error for invalid JSON.
func decodeObjectSlow(data []byte, set string) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	bad := func(err error) *apiError {
		return errPayload(set, fmt.Sprintf("Invalid JSON. %v", err))
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, bad(err)
	}
	if tok != json.Delim('{') {
		return nil, errPayload(set, "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. A 'StartObject' node was expected.")
	}
	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		name, _ := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, bad(err)
		}
		members = append(members, member{name: name, value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad(fmt.Errorf("unexpected data after the JSON object"))
	}
	return members, nil
}

// add decodes member m of a body for table d into the change set.
func (cs *changeSet) add(d *tableDef, m *member) error {
	if m.attr != nil {
		return cs.addColumn(d, m.attr, m)
	}
	name := m.name
	if name == "@odata.type" && m.kind == '"' {
		// On every target of a bulk message: compared without building
		// the string.
		typ := m.raw
		if len(typ) > 0 && typ[0] == '#' {
			typ = typ[1:]
		}
		if string(typ) != d.typeName() {
			return errPayload(d.set, fmt.Sprintf("A type named '%v' could not be resolved by the model. When a model is available, each type name must resolve to a valid type.", m.decoded()))
		}
		return nil
	}
	prop, annotation, annotated := strings.Cut(name, "@")
	switch {
	case annotated && prop == "":
		// An instance annotation on the record itself.
		if annotation == "odata.type" {
			raw := m.decoded()
			typ, _ := raw.(string)
			if strings.TrimPrefix(typ, "#") != d.typeName() {
				return errPayload(d.set, fmt.Sprintf("A type named '%v' could not be resolved by the model. When a model is available, each type name must resolve to a valid type.", raw))
			}
		}
		return nil

	case annotated && annotation == "odata.bind":
		nav, ok := d.navs[prop]
		if ok && nav.attr.readOnly {
			return nil // createdby and modifiedby are the service's to set
		}
		if !ok {
			return errPayload(d.set, fmt.Sprintf("An undeclared property '%s' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values.", prop))
		}
		switch v := m.decoded().(type) {
		case nil:
			cs.set(nav.attr, nil)
		case string:
			cs.binds = append(cs.binds, pendingBind{nav: nav, uri: v})
		default:
			return errPayload(d.set, fmt.Sprintf("The value of the '%s' annotation must be a record URI.", name))
		}
		return nil

	case annotated:
		// Other property annotations (formatted values and the like) are
		// informational and ignored, as the service does.
		return nil
	}

	if nav, ok := d.navs[name]; ok {
		if nav.attr.readOnly {
			return nil
		}
		switch m.decoded().(type) {
		case nil:
			cs.set(nav.attr, nil)
			return nil
		case map[string]any, []any:
			return errNotImplemented("Deep insert")
		}
		return errPayload(d.set, fmt.Sprintf("A navigation property '%s' must be set with '%s@odata.bind'.", name, name))
	}
	a, ok := d.byProp[name]
	if !ok {
		return errPayload(d.set, fmt.Sprintf("The property '%s' does not exist on type '%s'. Make sure to only use property names that are defined by the type or mark the type as open type.", name, d.typeName()))
	}
	return cs.addColumn(d, a, m)
}

// addColumn decodes member m, which names column a, into the change set.
func (cs *changeSet) addColumn(d *tableDef, a *attrDef, m *member) error {
	switch {
	case a.typ == tLookup:
		return errPayload(d.set, "CRM do not support direct update of Entity Reference properties, Use Navigation properties instead.")
	case a.readOnly:
		// createdon, modifiedon and versionnumber are maintained by the
		// service; Dataverse ignores them in a request body.
		return nil
	}
	v, err := decodeMember(d, a, m)
	if err != nil {
		return err
	}
	if a.primaryID {
		if v == nil {
			return errPayload(d.set, fmt.Sprintf("The primary key '%s' cannot be null.", a.name))
		}
		id := v.(uuid.UUID)
		cs.id = &id
		return nil
	}
	cs.set(a, v)
	return nil
}

// resolveBinds turns each pending @odata.bind into a lookup value. It reads
// the target tables under their own locks before the caller locks the table
// it writes, so no goroutine ever holds two table locks.
func (s *Server) resolveBinds(d *tableDef, cs *changeSet) error {
	for _, b := range cs.binds {
		set, pred, ok := parseRecordURI(b.uri)
		if !ok {
			return errPayload(d.set, fmt.Sprintf("The URI '%s' in '%s@odata.bind' is not a valid record URI.", b.uri, navName(b.nav)))
		}
		if set != b.nav.target.set {
			return errPayload(d.set, fmt.Sprintf("The navigation property '%s' points at '%s', not at '%s'.", navName(b.nav), b.nav.target.set, set))
		}
		ts := s.byLogical[b.nav.target.logical]
		key, err := parseRecordKey(ts.def, pred)
		if err != nil {
			return err
		}
		target := ts.lookup(key)
		if target == nil {
			if key.key == nil {
				return errNotFoundByID(ts.def.logical, key.id.String())
			}
			return errNotFoundByKey(ts.def.logical)
		}
		cs.set(b.nav.attr, lookupRef{table: ts.def, id: target.id})
	}
	return nil
}

// resolveKeyLookups finds the table each lookup value of an alternate key in
// a URL points at, so that an upsert creating the row can store it. A value
// whose row exists in none of the targets stays unresolved; insert refuses it.
func (s *Server) resolveKeyLookups(key recordKey) {
	if key.key == nil {
		return
	}
	for i, a := range key.key.attrs {
		ref, ok := key.vals[i].(lookupRef)
		if !ok {
			continue
		}
		for _, target := range a.targets {
			if s.byLogical[target.logical].lookup(recordKey{id: ref.id}) != nil {
				key.vals[i] = lookupRef{table: target, id: ref.id}
				break
			}
		}
	}
}

func navName(n navProp) string {
	for i, t := range n.attr.targets {
		if t == n.target {
			return n.attr.navs[i]
		}
	}
	return n.attr.name
}
