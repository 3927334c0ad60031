package emulator

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// segment is one path segment of a resource path: a name and, when the
// segment has parentheses, the text between them (a key predicate or function
// parameters).
type segment struct {
	name   string
	args   string
	hasArg bool
}

// splitSegments splits a decoded resource path ("accounts(name='a/b')/Keys")
// into segments. Slashes inside single-quoted literals do not split.
func splitSegments(path string) ([]segment, error) {
	var segs []segment
	inQuote := false
	start := 0
	for i := 0; i <= len(path); i++ {
		if i < len(path) {
			if path[i] == '\'' {
				inQuote = !inQuote
			}
			if path[i] != '/' || inQuote {
				continue
			}
		}
		raw := path[start:i]
		start = i + 1
		if raw == "" {
			continue
		}
		seg := segment{name: raw}
		if open := strings.IndexByte(raw, '('); open >= 0 {
			if !strings.HasSuffix(raw, ")") {
				return nil, errBadQuery("Bad Request - Error in query syntax: the segment '%s' is not closed.", raw)
			}
			seg = segment{name: raw[:open], args: raw[open+1 : len(raw)-1], hasArg: true}
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// recordKey addresses one row: by primary key, or by the values of one
// alternate key (stored forms, parallel to key.attrs: a slice rather than a
// map, since a bulk upsert by key parses one per row).
type recordKey struct {
	id   uuid.UUID
	key  *keyDef
	vals []any
}

// parseRecordKey parses the key predicate of an entity-set segment:
// "00000000-…", "accountid=00000000-…", "accountnumber='A1'" or
// "k1='a',k2=5". Names must be exactly the primary key or one alternate key.
func parseRecordKey(d *tableDef, pred string) (recordKey, error) {
	// A single bare value is the primary key.
	if !strings.Contains(pred, "=") {
		id, err := parseGUID(strings.TrimSpace(pred))
		if err != nil {
			return recordKey{}, errBadQuery("Unrecognized 'Edm.Guid' literal '%s' at '0' in '%s'.", pred, pred)
		}
		return recordKey{id: id}, nil
	}
	if rk, ok := parseSimpleStringKey(d, pred); ok {
		return rk, nil
	}
	toks, err := lex(pred)
	if err != nil {
		return recordKey{}, err
	}

	invalid := errBadQuery("The key in the request URI is not valid for resource '%[1]s'. Ensure that the names and number of key properties match the declared or alternate key properties for the resource '%[1]s'.", d.typeName())
	type pair struct {
		name string
		val  token
	}
	var pairs []pair
	for i := 0; ; {
		if toks[i].kind != tokIdent || toks[i+1].kind != tokEquals || !toks[i+2].isLiteral() {
			return recordKey{}, invalid
		}
		pairs = append(pairs, pair{toks[i].text, toks[i+2]})
		i += 3
		if toks[i].kind == tokEOF {
			break
		}
		if toks[i].kind != tokComma {
			return recordKey{}, invalid
		}
		i++
	}

	if len(pairs) == 1 && pairs[0].name == d.primaryID {
		if pairs[0].val.kind != tokGUID {
			return recordKey{}, errBadQuery("Unrecognized 'Edm.Guid' literal '%s' at '0' in '%s'.", pairs[0].val.text, pred)
		}
		return recordKey{id: uuid.MustParse(pairs[0].val.text)}, nil
	}
	names := make([]string, len(pairs))
	for i, p := range pairs {
		names[i] = p.name
	}
	k := d.keyFor(names)
	if k == nil || len(names) != len(k.attrs) {
		return recordKey{}, invalid
	}
	rk := recordKey{key: k, vals: make([]any, len(k.attrs))}
	for _, p := range pairs {
		a := d.byProp[p.name]
		v, ok := keyValue(a, p.val)
		if !ok {
			return recordKey{}, errBadQuery("The key value %s for '%s' is not a valid %s literal.", p.val.text, p.name, a.typ.edmType())
		}
		rk.vals[slices.Index(k.attrs, a)] = v
	}
	return rk, nil
}

// apiPathPrefixes are "api/data/<version>/" for each of apiVersions.
var apiPathPrefixes = func() []string {
	p := make([]string, len(apiVersions))
	for i, v := range apiVersions {
		p[i] = "api/data/" + v + "/"
	}
	return p
}()

// parseRecordURI parses a record URI as used in @odata.bind: relative
// ("/accounts(…)", "accounts(…)") or absolute ("http://host/api/data/v9.2/accounts(…)").
func parseRecordURI(uri string) (set, pred string, ok bool) {
	s := uri
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
		slash := strings.IndexByte(s, '/')
		if slash < 0 {
			return "", "", false
		}
		s = s[slash:]
	}
	s = strings.TrimPrefix(s, "/")
	for _, p := range apiPathPrefixes {
		s = strings.TrimPrefix(s, p)
	}
	if strings.IndexByte(s, '/') < 0 {
		// One segment, the usual record URI: nothing to split.
		open := strings.IndexByte(s, '(')
		if open < 0 || !strings.HasSuffix(s, ")") {
			return "", "", false
		}
		return s[:open], s[open+1 : len(s)-1], true
	}
	segs, err := splitSegments(s)
	if err != nil || len(segs) != 1 || !segs[0].hasArg {
		return "", "", false
	}
	return segs[0].name, segs[0].args, true
}

// entityURL is a record's canonical URL, as sent in OData-EntityId.
func entityURL(base string, d *tableDef, id uuid.UUID) string {
	return fmt.Sprintf("%s/%s(%s)", base, d.set, id)
}

// parseSimpleStringKey is the fast path of parseRecordKey for the most
// common alternate key, one string column with a value free of quotes:
// accountnumber='A1'. Bulk upserts address thousands of rows this way.
func parseSimpleStringKey(d *tableDef, pred string) (recordKey, bool) {
	name, rest, ok := strings.Cut(pred, "=")
	if !ok || len(rest) < 2 || rest[0] != '\'' || rest[len(rest)-1] != '\'' {
		return recordKey{}, false
	}
	val := rest[1 : len(rest)-1]
	if strings.ContainsRune(val, '\'') {
		return recordKey{}, false
	}
	a, ok := d.byProp[name]
	if !ok || a.typ != tString {
		return recordKey{}, false
	}
	k := d.keyFor([]string{name})
	if k == nil {
		return recordKey{}, false
	}
	return recordKey{key: k, vals: []any{val}}, true
}
