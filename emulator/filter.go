package emulator

import (
	"net/url"
	"strings"
)

// fieldSet resolves the property names a query may use. Table rows and the
// metadata collections both implement it, so they share one $filter parser.
type fieldSet interface {
	// field returns the column behind a Web API property name.
	field(prop string) (*attrDef, bool)
	// typeName is the entity type named in "Could not find a property" errors.
	typeName() string
}

func (d *tableDef) field(prop string) (*attrDef, bool) {
	a, ok := d.byProp[prop]
	return a, ok
}

// record is what a $filter is evaluated against: a table row, or a
// metadata record's values.
type record interface {
	// get returns the value of column a; nil when null.
	get(a *attrDef) any
}

// valueMap is a record whose values are keyed by column logical name, as
// the metadata collections build them.
type valueMap map[string]any

func (m valueMap) get(a *attrDef) any { return m[a.name] }

// filterNode is a compiled $filter expression, evaluated against a record.
// Evaluation is read-only and safe for concurrent use.
type filterNode interface {
	eval(rec record) bool
}

type andNode struct{ l, r filterNode }
type orNode struct{ l, r filterNode }
type notNode struct{ x filterNode }

func (n andNode) eval(rec record) bool { return n.l.eval(rec) && n.r.eval(rec) }
func (n orNode) eval(rec record) bool  { return n.l.eval(rec) || n.r.eval(rec) }
func (n notNode) eval(rec record) bool { return !n.x.eval(rec) }

// cmpNode compares a column with a literal. A comparison involving a null
// column value is false except "eq null" / "ne null", as in SQL, which is
// what Dataverse translates the query to.
type cmpNode struct {
	attr *attrDef
	op   string
	lit  any
}

func (n cmpNode) eval(rec record) bool {
	v := rec.get(n.attr)
	if n.lit == nil {
		switch n.op {
		case "eq":
			return v == nil
		case "ne":
			return v != nil
		}
		return false
	}
	if v == nil {
		return false
	}
	c := compareLiteral(n.attr, v, n.lit)
	switch n.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	}
	return false
}

// stringFuncNode is contains/startswith/endswith, case-insensitive like every
// Dataverse string comparison.
type stringFuncNode struct {
	fn   string
	attr *attrDef
	arg  string
}

func (n stringFuncNode) eval(rec record) bool {
	s, ok := rec.get(n.attr).(string)
	if !ok {
		return false
	}
	s, arg := strings.ToLower(s), strings.ToLower(n.arg)
	switch n.fn {
	case "contains":
		return strings.Contains(s, arg)
	case "startswith":
		return strings.HasPrefix(s, arg)
	default:
		return strings.HasSuffix(s, arg)
	}
}

var opKinds = map[string]string{
	"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual",
	"lt": "LessThan", "le": "LessThanOrEqual",
}

// parseFilter compiles a $filter expression. Parameter aliases (@p1) are
// resolved from query; an unassigned alias is null, as documented.
func parseFilter(fs fieldSet, expr string, query url.Values) (filterNode, error) {
	toks, err := lex(expr)
	if err != nil {
		return nil, err
	}
	p := &filterParser{fs: fs, expr: expr, query: query}
	if p.toks, err = p.resolveAliases(toks); err != nil {
		return nil, err
	}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.syntaxError(t)
	}
	return n, nil
}

type filterParser struct {
	fs    fieldSet
	expr  string
	query url.Values
	toks  []token
	pos   int
}

func (p *filterParser) peek() token { return p.toks[p.pos] }
func (p *filterParser) next() token {
	t := p.toks[p.pos]
	if t.kind != tokEOF {
		p.pos++
	}
	return t
}

func (p *filterParser) syntaxError(t token) *apiError {
	return errBadQuery("Syntax error at position %d in '%s'.", t.pos, p.expr)
}

func (p *filterParser) resolveAliases(toks []token) ([]token, error) {
	out := make([]token, 0, len(toks))
	for _, t := range toks {
		if t.kind != tokIdent || !strings.HasPrefix(t.text, "@") {
			out = append(out, t)
			continue
		}
		val := p.query.Get(t.text)
		if val == "" {
			out = append(out, token{tokIdent, "null", t.pos})
			continue
		}
		sub, err := lex(val)
		if err != nil {
			return nil, err
		}
		if len(sub) != 2 || !sub[0].isLiteral() {
			return nil, errBadQuery("The parameter alias '%s' must be assigned a literal value.", t.text)
		}
		sub[0].pos = t.pos
		out = append(out, sub[0])
	}
	return out, nil
}

func (p *filterParser) parseOr() (filterNode, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.peek().isKeyword("or") {
		p.next()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *filterParser) parseAnd() (filterNode, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.peek().isKeyword("and") {
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *filterParser) parseUnary() (filterNode, error) {
	if p.peek().isKeyword("not") {
		p.next()
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	}
	return p.parsePrimary()
}

func (p *filterParser) parsePrimary() (filterNode, error) {
	t := p.peek()
	if t.kind == tokLParen {
		p.next()
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.next().kind != tokRParen {
			return nil, p.syntaxError(p.toks[p.pos-1])
		}
		return n, nil
	}
	if t.kind == tokIdent && p.toks[p.pos+1].kind == tokLParen {
		return p.parseFunc()
	}
	return p.parseComparison()
}

func (p *filterParser) parseFunc() (filterNode, error) {
	name := p.next()
	switch name.text {
	case "contains", "startswith", "endswith":
	case containValuesFunc:
		return p.parseContainValues()
	default:
		return nil, errBadQuery("An unknown function with name '%s' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.", name.text)
	}
	p.next() // (
	prop := p.next()
	a, err := p.property(prop)
	if err != nil {
		return nil, err
	}
	if p.next().kind != tokComma {
		return nil, p.syntaxError(p.toks[p.pos-1])
	}
	arg := p.next()
	if p.next().kind != tokRParen {
		return nil, p.syntaxError(p.toks[p.pos-1])
	}
	if (a.typ != tString && a.typ != tMemo) || arg.kind != tokString {
		return nil, errBadQuery("No function signature for the function with name '%s' matches the specified arguments. The function signatures considered are: %s(Edm.String Nullable=true, Edm.String Nullable=true).", name.text, name.text)
	}
	return stringFuncNode{fn: name.text, attr: a, arg: arg.text}, nil
}

func (p *filterParser) parseComparison() (filterNode, error) {
	left := p.next()
	opTok := p.next()
	right := p.next()
	kind, isOp := opKinds[opTok.text]
	if opTok.kind != tokIdent || !isOp {
		return nil, p.syntaxError(opTok)
	}
	// Either side may hold the property; "5 lt x" is "x gt 5".
	propTok, litTok, op := left, right, opTok.text
	if left.isLiteral() && !right.isLiteral() {
		propTok, litTok, op = right, left, mirror(op)
	}
	a, err := p.property(propTok)
	if err != nil {
		return nil, err
	}
	if !litTok.isLiteral() {
		if litTok.kind == tokIdent {
			if _, isProp := p.fs.field(litTok.text); isProp {
				return nil, errBadQuery("Comparing two properties ('%s' and '%s') is not supported.", propTok.text, litTok.text)
			}
		}
		return nil, p.syntaxError(litTok)
	}
	lit, ok := literalValue(a, litTok)
	if !ok {
		return nil, errBadQuery("A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.",
			a.typ.edmType(), litTok.edmType(), kind)
	}
	return cmpNode{attr: a, op: op, lit: lit}, nil
}

func (p *filterParser) property(t token) (*attrDef, error) {
	if t.kind != tokIdent {
		return nil, p.syntaxError(t)
	}
	a, ok := p.fs.field(t.text)
	if !ok {
		return nil, errNoProperty(t.text, p.fs.typeName())
	}
	return a, nil
}

func mirror(op string) string {
	switch op {
	case "gt":
		return "lt"
	case "ge":
		return "le"
	case "lt":
		return "gt"
	case "le":
		return "ge"
	}
	return op
}
