package emulator

import (
	"net/url"
	"strings"
)

// formattedValue is the annotation term of a value's display form.
const formattedValue = "OData.Community.Display.V1.FormattedValue"

// rowExpansion is one $expand item: a single-valued navigation property and
// the columns of the related row to return.
type rowExpansion struct {
	name string
	nav  navProp
	sel  selection
}

// parseExpand parses $expand for table d. Only single-valued navigation
// properties (lookups) can be expanded, each optionally with a nested
// $select: "parentaccountid($select=name,accountnumber)".
func parseExpand(d *tableDef, raw string) ([]rowExpansion, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, nil
	}
	var out []rowExpansion
	for _, item := range splitTopLevel(raw, ',') {
		item = strings.TrimSpace(item)
		name, opts := item, ""
		if open := strings.IndexByte(item, '('); open >= 0 {
			if !strings.HasSuffix(item, ")") {
				return nil, errBadQuery("Syntax error in $expand '%s'.", raw)
			}
			name, opts = strings.TrimSpace(item[:open]), item[open+1:len(item)-1]
		}
		nav, ok := d.navs[name]
		if !ok {
			return nil, errNoProperty(name, d.typeName())
		}
		nested := url.Values{}
		for _, o := range splitTopLevel(opts, ';') {
			if strings.TrimSpace(o) == "" {
				continue
			}
			k, v, _ := strings.Cut(o, "=")
			switch k = strings.TrimSpace(k); k {
			case "$select":
				nested.Set("$select", v)
			case "$expand", "$filter", "$orderby", "$top":
				return nil, errNotImplemented("The nested query option " + k + " in $expand")
			default:
				return nil, errBadQuery("The query option '%s' is not supported inside $expand.", k)
			}
		}
		sel, err := parseSelect(nav.target, nested)
		if err != nil {
			return nil, err
		}
		out = append(out, rowExpansion{name: name, nav: nav, sel: sel})
	}
	return out, nil
}

// withExpand adds the expansions to sel and to its context fragment:
// accounts(name,parentaccountid(name)) or accounts(*,parentaccountid()).
func withExpand(sel selection, exp []rowExpansion) selection {
	if len(exp) == 0 {
		return sel
	}
	sel.expand = exp
	inner := strings.TrimSuffix(strings.TrimPrefix(sel.context, "("), ")")
	if inner == "" {
		inner = "*"
	}
	for _, e := range exp {
		inner += "," + e.name + "(" + strings.TrimSuffix(strings.TrimPrefix(e.sel.context, "("), ")") + ")"
	}
	sel.context = "(" + inner + ")"
	return sel
}

// splitTopLevel splits s on sep outside parentheses and quotes.
func splitTopLevel(s string, sep byte) []string {
	var parts []string
	depth, inQuote, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\'':
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == sep && depth == 0:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// appendExpanded appends the expanded related rows of r: the row with its
// @odata.etag and selected columns, or null when the lookup is empty or
// points at another table of a polymorphic lookup.
func (s *Server) appendExpanded(buf []byte, r *row, exp []rowExpansion, prefs preferences) []byte {
	for _, e := range exp {
		buf = append(buf, ',')
		buf = appendJSONString(buf, e.name)
		buf = append(buf, ':')
		ref, ok := r.get(e.nav.attr).(lookupRef)
		var target *row
		if ok && ref.table == e.nav.target {
			target = s.byLogical[ref.table.logical].lookup(recordKey{id: ref.id})
		}
		if target == nil {
			buf = append(buf, "null"...)
			continue
		}
		buf = s.appendRow(buf, "", target, e.sel, prefs)
	}
	return buf
}

// lookupName is the formatted value of a lookup: the primary name of the
// row it points at, or "" when the table has none or the row is gone.
func (s *Server) lookupName(ref lookupRef) string {
	if ref.table == nil || ref.table.primaryName == "" {
		return ""
	}
	target := s.byLogical[ref.table.logical].lookup(recordKey{id: ref.id})
	if target == nil {
		return ""
	}
	a := ref.table.byName[ref.table.primaryName]
	if a == nil {
		return ""
	}
	name, _ := target.get(a).(string)
	return name
}
