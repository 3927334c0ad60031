package mapping

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/yamlfile"
)

// value turns a source value, or an expression's result, into the value
// written to Dataverse: a NULL becomes the default, then choices map it to
// an option value, or the type converts it, and a lookup makes it the
// parent's address. skip is true when an unmapped choice value leaves the
// column out. Unchanged passes untouched, and NULL does unless there is a
// default.
func (c *colPlan) value(v change.Value) (out change.Value, skip bool, err error) {
	if v.IsUnchanged() {
		return v, false, nil
	}
	if v.IsNull() {
		if c.def == nil {
			return v, false, nil
		}
		v = *c.def
	}
	if c.choice != nil {
		return c.choice.toOption(v)
	}
	if v, err = c.convert(v); err != nil {
		return v, false, err
	}
	if c.lookup != nil {
		v, err = c.lookup.bind(v)
	}
	return v, false, err
}

// choicePlan is a compiled Choices.
type choicePlan struct {
	options  map[string]int64 // source value text → option value
	back     map[int64]string // option value → source value text
	unmapped Unmapped
	def      int64
	multi    bool
	sep      string
}

func newChoicePlan(c *Choices) *choicePlan {
	p := &choicePlan{
		options:  make(map[string]int64, len(c.Values)),
		back:     make(map[int64]string, len(c.Values)),
		unmapped: c.Unmapped,
		multi:    c.Multi,
		sep:      c.Separator,
	}
	if p.unmapped == "" {
		p.unmapped = UnmappedError
	}
	if p.sep == "" {
		p.sep = ","
	}
	p.def, _ = strconv.ParseInt(c.Default, 10, 32)
	// Sorted, so that of two source values with one option the first in
	// order maps back; validation refuses that for mappings that do.
	for _, k := range sortedKeys(c.Values) {
		n := int64(c.Values[k])
		p.options[k] = n
		if _, dup := p.back[n]; !dup {
			p.back[n] = k
		}
	}
	return p
}

var errUnmapped = errors.New("the value is not one of the choices' values")

// toOption maps a source value to its option value, or for a multi-select
// column a list of source values to the option values' text, "1,2".
func (p *choicePlan) toOption(v change.Value) (change.Value, bool, error) {
	if !p.multi {
		n, ok := p.options[choiceText(v)]
		if ok {
			return change.Int(n), false, nil
		}
		switch p.unmapped {
		case UnmappedDefault:
			return change.Int(p.def), false, nil
		case UnmappedSkip:
			return v, true, nil
		}
		return v, false, errUnmapped
	}
	items, err := p.split(v)
	if err != nil {
		return v, false, err
	}
	if len(items) == 0 {
		return change.Null(), false, nil
	}
	var b strings.Builder
	for i, item := range items {
		n, ok := p.options[item]
		if !ok {
			switch p.unmapped {
			case UnmappedDefault:
				n = p.def
			case UnmappedSkip:
				return v, true, nil
			default:
				return v, false, errUnmapped
			}
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(n, 10))
	}
	return change.Text(b.String()), false, nil
}

// split lists a multi-select value's items: a JSON array's elements, or a
// text split at the separator, each trimmed of spaces.
func (p *choicePlan) split(v change.Value) ([]string, error) {
	switch v.Kind() {
	case change.KindText:
		if strings.TrimSpace(v.Str()) == "" {
			return nil, nil
		}
		items := strings.Split(v.Str(), p.sep)
		for i := range items {
			items[i] = strings.TrimSpace(items[i])
		}
		return items, nil
	case change.KindJSON:
		var list []any
		if err := json.Unmarshal(v.JSON(), &list); err != nil {
			return nil, errors.New("the value is not a JSON array")
		}
		items := make([]string, len(list))
		for i, x := range list {
			switch y := x.(type) {
			case string:
				items[i] = y
			case float64:
				items[i] = strconv.FormatFloat(y, 'f', -1, 64)
			default:
				return nil, errors.New("the JSON array holds something other than strings and numbers")
			}
		}
		return items, nil
	}
	return nil, fmt.Errorf("a multi-select column needs text or a JSON array, not %s", v.Kind())
}

// fromOption maps an option value (or a multi-select's "1,2") back to the
// source value text; skip is true for an unmapped value under unmapped:
// skip.
func (p *choicePlan) fromOption(v change.Value) (change.Value, bool, error) {
	if v.IsNull() || v.IsUnchanged() {
		return v, false, nil
	}
	one := func(n int64) (string, bool) { s, ok := p.back[n]; return s, ok }
	unmapped := func() (change.Value, bool, error) {
		if p.unmapped == UnmappedSkip {
			return v, true, nil
		}
		return v, false, errors.New("the option value is not one of the choices' values")
	}
	if !p.multi {
		if v.Kind() != change.KindInt {
			return v, false, fmt.Errorf("an option value is an integer, not %s", v.Kind())
		}
		s, ok := one(v.Int())
		if !ok {
			return unmapped()
		}
		return change.Text(s), false, nil
	}
	if v.Kind() != change.KindText {
		return v, false, fmt.Errorf("a multi-select value is text such as \"1,2\", not %s", v.Kind())
	}
	if v.Str() == "" {
		return change.Null(), false, nil
	}
	var b strings.Builder
	for i, item := range strings.Split(v.Str(), ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(item), 10, 64)
		if err != nil {
			return v, false, errors.New("a multi-select value holds something other than option values")
		}
		s, ok := one(n)
		if !ok {
			return unmapped()
		}
		if i > 0 {
			b.WriteString(p.sep)
		}
		b.WriteString(s)
	}
	return change.Text(b.String()), false, nil
}

// choiceText is the text a source value is looked up by in Values.
func choiceText(v change.Value) string {
	if v.Kind() == change.KindText {
		return v.Str()
	}
	return v.String()
}

// lookupPlan addresses a parent row by its alternate key or its id.
type lookupPlan struct {
	prefix    string // "/accounts(accountnumber=", or "/accounts(" for ids
	id        LookupID
	namespace uuid.UUID // for LookupUUID5
}

func newLookupPlan(l *Lookup, path string, parents parentIndex, ps *yamlfile.Problems) *lookupPlan {
	set := cmp.Or(l.EntitySet, parents.sets[l.Table])
	if set == "" {
		ps.Add(path+".entity_set", "required: no mapping gives the entity set of %s; write it here or in that mapping's dataverse.entity_set", l.Table)
	}
	p := &lookupPlan{prefix: "/" + set + "(", id: l.ID}
	switch l.ID {
	case "":
		p.prefix += l.Key + "="
	case LookupUUID5:
		ns, known := parents.namespaces[l.Table]
		switch {
		case !known:
			ps.Add(path+".id", "uuid5 needs a mapping of %s whose key is id.uuid5, to take its namespace from", l.Table)
		case ns == "":
			ps.Add(path+".id", "the mappings of %s derive ids in different namespaces; a lookup cannot tell which", l.Table)
		default:
			u, _ := change.ParseUUID(ns)
			p.namespace = u.UUID()
		}
	}
	return p
}

// keyLiteral writes text as the inside of an OData string literal in a
// URI: quotes doubled, and the characters that would end the URI's path
// percent-encoded.
var keyLiteral = strings.NewReplacer("'", "''", "%", "%25", "/", "%2F", "?", "%3F", "#", "%23")

// bind returns the parent's address for an @odata.bind column:
// /accounts(accountnumber='42') by alternate key, /accounts(<id>) by id.
func (l *lookupPlan) bind(v change.Value) (change.Value, error) {
	var lit string
	switch {
	case l.id == LookupUUID5:
		// The parent's id is the UUID5 of its key's text, which the
		// foreign key holds.
		lit = uuid.NewSHA1(l.namespace, v.AppendText(nil)).String()
	case l.id == LookupColumn:
		u, err := toUUID(v)
		if err != nil {
			return v, conversionError(v, TypeUniqueIdentifier, err)
		}
		lit = u.String()
	case v.Kind() == change.KindText:
		// One concatenation, one allocation.
		return change.Text(l.prefix + "'" + keyLiteral.Replace(v.Str()) + "')"), nil
	case v.Kind() == change.KindInt, v.Kind() == change.KindDecimal, v.Kind() == change.KindBool, v.Kind() == change.KindUUID:
		lit = v.String()
	default:
		return v, fmt.Errorf("a %s value cannot be an alternate key value; give the column a type", v.Kind())
	}
	return change.Text(l.prefix + lit + ")"), nil
}
