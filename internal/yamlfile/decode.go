package yamlfile

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Defaulter is implemented by types that have defaults. Decode calls
// SetDefaults on every map value and slice element it creates, before
// decoding into it, so that a field absent from the file keeps its default
// while one written as 0 or "" keeps what was written. Decode does not call
// it on the value it decodes into, which the caller sets up.
type Defaulter interface{ SetDefaults() }

// decoder decodes one document. A nil env leaves ${...} alone.
type decoder struct {
	file    string
	env     func(string) (string, bool)
	pos     Positions
	errs    Problems
	anchors map[string]ast.Node
}

var durationType = reflect.TypeFor[time.Duration]()

// Decode decodes the single YAML document in data into out, a pointer to a
// struct that already holds its defaults. file names the document in
// problems. env looks up variables for ${NAME} and ${NAME:-default} in
// string values (see the rules below); nil leaves ${...} as written.
//
// Decoding is strict: an unknown field, a value of the wrong type, a
// second document, a merge key (<<) or an alias to no earlier anchor is a
// problem. A null or absent value leaves the field as it was. A string
// stands for an integer, boolean or duration only when it came from a
// variable (workers: ${WORKERS:-8}); a bare 0 is a zero duration, any
// other bare number lacks its unit. Expansion applies to string values,
// never to keys, and its result is not expanded again; $${ is a literal ${.
//
// Decode returns where each field was written and every problem found,
// each with its file and line; out holds whatever did decode. The
// positions are nil when data is not YAML at all, and then the only
// problem is the syntax error. Problems name variables, never their
// values. Decode panics if out holds a field type it cannot decode, which
// is a programming error: structs, maps with string keys, slices, strings,
// integers, booleans and time.Duration are supported.
func Decode(data []byte, file string, env func(string) (string, bool), out any) (Positions, Problems) {
	d := &decoder{file: file, env: env, pos: Positions{}, anchors: map[string]ast.Node{}}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		d.syntax(err)
		return nil, d.errs
	}
	var body ast.Node
	for i, doc := range f.Docs {
		if i == 0 {
			body = doc.Body
		} else if doc.Body != nil {
			d.fail(doc.Body, "", "the file holds more than one YAML document; write one per file")
			break
		}
	}
	if body == nil {
		return d.pos, d.errs
	}
	d.pos[""] = lineOf(body)
	d.value(body, reflect.ValueOf(out).Elem(), "")
	d.pos.Locate(file, d.errs)
	return d.pos, d.errs
}

func (d *decoder) syntax(err error) {
	first, _, _ := strings.Cut(err.Error(), "\n")
	p := &Problem{File: d.file, Line: 1, Msg: "malformed YAML: " + first}
	var ye yaml.Error
	if errors.As(err, &ye) {
		p.Msg = "malformed YAML: " + ye.GetMessage()
		if tk := ye.GetToken(); tk != nil && tk.Position != nil {
			p.Line = tk.Position.Line
		}
	}
	d.errs = append(d.errs, p)
}

func lineOf(n ast.Node) int {
	if tk := n.GetToken(); tk != nil && tk.Position != nil {
		return tk.Position.Line
	}
	return 0
}

func (d *decoder) fail(n ast.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Problem{File: d.file, Line: lineOf(n), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// value decodes n into v. A null (or absent) value leaves v as it was, so
// that it keeps its default.
func (d *decoder) value(n ast.Node, v reflect.Value, path string) {
	switch x := n.(type) {
	case nil, *ast.NullNode:
		return
	case *ast.TagNode:
		d.value(x.Value, v, path)
		return
	case *ast.AnchorNode:
		d.value(x.Value, v, path)
		// Registered after its own value so that an alias inside it cannot
		// recurse forever.
		d.anchors[x.Name.GetToken().Value] = x.Value
		return
	case *ast.AliasNode:
		name := x.Value.GetToken().Value
		target, ok := d.anchors[name]
		if !ok {
			d.fail(n, path, "alias *%s refers to no anchor defined before it", name)
			return
		}
		d.value(target, v, path)
		return
	}
	if v.Type() == durationType {
		d.duration(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		// An optional value: nil when absent (or null, above), so a
		// default can tell "not given" from the zero value.
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Map:
		d.dict(n, v, path)
	case reflect.Slice:
		d.list(n, v, path)
	case reflect.String:
		d.str(n, v, path)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.integer(n, v, path)
	case reflect.Bool:
		d.boolean(n, v, path)
	default:
		panic(fmt.Sprintf("yaml decoder: %s: unsupported field type %s", path, v.Type()))
	}
}

// key returns the text of a mapping key, or false after reporting why it
// cannot be one.
func (d *decoder) key(kv *ast.MappingValueNode, path string) (string, bool) {
	switch k := kv.Key.(type) {
	case *ast.MergeKeyNode:
		d.fail(k, path, "merge keys (<<) are not supported; write the fields out")
		return "", false
	case *ast.StringNode:
		return k.Value, true
	}
	if s, _, ok := scalarText(kv.Key); ok {
		return s, true
	}
	d.fail(kv.Key, path, "a key must be a plain name")
	return "", false
}

func (d *decoder) structure(n ast.Node, v reflect.Value, path string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.mismatch(n, path, "a mapping of fields")
		return
	}
	names, index := Fields(v.Type())
	for _, kv := range m.Values {
		key, ok := d.key(kv, path)
		if !ok {
			continue
		}
		p := JoinPath(path, key)
		d.pos[p] = lineOf(kv.Key)
		i, known := index[key]
		if !known {
			d.fail(kv.Key, p, "unknown field %s", Hint(key, names))
			continue
		}
		d.value(kv.Value, v.Field(i), p)
	}
}

func (d *decoder) dict(n ast.Node, v reflect.Value, path string) {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.mismatch(n, path, "a mapping of names")
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, kv := range m.Values {
		key, ok := d.key(kv, path)
		if !ok {
			continue
		}
		p := JoinPath(path, key)
		d.pos[p] = lineOf(kv.Key)
		elem := newElem(v.Type().Elem())
		d.value(kv.Value, elem, p)
		v.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
	}
}

func (d *decoder) list(n ast.Node, v reflect.Value, path string) {
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		d.mismatch(n, path, "a list")
		return
	}
	out := reflect.MakeSlice(v.Type(), 0, len(s.Values))
	for i, item := range s.Values {
		p := path + "[" + strconv.Itoa(i) + "]"
		if item != nil {
			d.pos[p] = lineOf(item)
		}
		elem := newElem(v.Type().Elem())
		d.value(item, elem, p)
		out = reflect.Append(out, elem)
	}
	v.Set(out)
}

// newElem returns a settable zero value of t with t's defaults applied.
func newElem(t reflect.Type) reflect.Value {
	p := reflect.New(t)
	if df, ok := p.Interface().(Defaulter); ok {
		df.SetDefaults()
	}
	return p.Elem()
}

func (d *decoder) str(n ast.Node, v reflect.Value, path string) {
	s, isString, ok := scalarText(n)
	if !ok {
		d.mismatch(n, path, "a string")
		return
	}
	if isString {
		if s, _, ok = d.expand(n, s, path); !ok {
			return
		}
	}
	v.SetString(s)
}

func (d *decoder) integer(n ast.Node, v reflect.Value, path string) {
	var i int64
	switch x := n.(type) {
	case *ast.IntegerNode:
		switch u := x.Value.(type) {
		case int64:
			i = u
		case uint64:
			if u > 1<<63-1 {
				d.fail(n, path, "%s is out of range", x.GetToken().Value)
				return
			}
			i = int64(u)
		default:
			d.fail(n, path, "%s is out of range", x.GetToken().Value)
			return
		}
	default:
		s, env, ok := d.fromEnv(n, path, "an integer")
		if !ok {
			return
		}
		var err error
		if i, err = strconv.ParseInt(strings.TrimSpace(s), 10, 64); err != nil {
			d.fail(n, path, "expected an integer, but %s does not hold one", env)
			return
		}
	}
	if v.OverflowInt(i) {
		d.fail(n, path, "%d is out of range", i)
		return
	}
	v.SetInt(i)
}

func (d *decoder) boolean(n ast.Node, v reflect.Value, path string) {
	if b, ok := n.(*ast.BoolNode); ok {
		v.SetBool(b.Value)
		return
	}
	s, env, ok := d.fromEnv(n, path, "true or false")
	if !ok {
		return
	}
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		d.fail(n, path, "expected true or false, but %s holds neither", env)
		return
	}
	v.SetBool(b)
}

func (d *decoder) duration(n ast.Node, v reflect.Value, path string) {
	const want = `a duration such as "10s" or "250ms"`
	if x, ok := n.(*ast.IntegerNode); ok {
		// A bare 0 is unambiguous; any other bare number lacks its unit.
		if x.GetToken().Value == "0" {
			v.SetInt(0)
			return
		}
		d.fail(n, path, "expected %s, got %s (add a unit)", want, x.GetToken().Value)
		return
	}
	s, isString, ok := scalarText(n)
	if !ok || !isString {
		d.mismatch(n, path, want)
		return
	}
	s, fromEnv, ok := d.expand(n, s, path)
	if !ok {
		return
	}
	t, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		if fromEnv {
			d.fail(n, path, "expected %s, but the expanded value is not one", want)
		} else {
			d.fail(n, path, "expected %s, got %s", want, quote(s))
		}
		return
	}
	v.SetInt(int64(t))
}

// fromEnv returns the text of a string node whose value came from an
// environment variable, which is the only way a quoted or plain string may
// stand for a number or a boolean: `workers: ${WORKERS:-8}`. A string
// written literally is a type mismatch, as in any strict decoder. The
// second result describes the origin for messages, without the value.
func (d *decoder) fromEnv(n ast.Node, path, want string) (string, string, bool) {
	s, isString, ok := scalarText(n)
	if !ok || !isString {
		d.mismatch(n, path, want)
		return "", "", false
	}
	out, expanded, ok := d.expand(n, s, path)
	if !ok {
		return "", "", false
	}
	if !expanded {
		d.mismatch(n, path, want)
		return "", "", false
	}
	return out, "the value of " + strings.TrimSpace(s), true
}

// expand applies ${NAME} expansion when the decoder has an environment.
func (d *decoder) expand(n ast.Node, s, path string) (string, bool, bool) {
	if d.env == nil {
		return s, false, true
	}
	out, expanded, errs := expandEnv(s, d.env)
	for _, err := range errs {
		d.fail(n, path, "%s", err)
	}
	return out, expanded, len(errs) == 0
}

func (d *decoder) mismatch(n ast.Node, path, want string) {
	d.fail(n, path, "expected %s, got %s", want, describe(n))
}

// describe names what a node holds, quoting a scalar's text as written in
// the file (never an expanded value).
func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	if s, _, ok := scalarText(n); ok {
		return quote(s)
	}
	return "a " + n.Type().String()
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	return strconv.Quote(s)
}

// scalarText returns a scalar's text and whether YAML typed it as a string
// (rather than a number or boolean); ok is false for collections.
func scalarText(n ast.Node) (s string, isString, ok bool) {
	switch x := n.(type) {
	case *ast.StringNode:
		return x.Value, true, true
	case *ast.LiteralNode:
		return x.Value.Value, true, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, false, true
	}
	return "", false, false
}

// Fields lists the yaml names of struct type t's fields, in declaration
// order, and maps each to its field index: the fields Decode accepts.
// Fields tagged "-" or untagged are not part of the file format.
func Fields(t reflect.Type) ([]string, map[string]int) {
	var names []string
	index := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		names = append(names, name)
		index[name] = i
	}
	return names, index
}
