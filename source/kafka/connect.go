package kafka

import (
	"bytes"
	"encoding/json"
	"sync"
)

// maxSchemas and maxSchemaBytes bound a schemaCache, by schemas and by
// their text. A connector sends one schema per table and version of it,
// so a source rarely sees more; when it does, the cache starts over
// rather than keep track of which schemas are still in use.
const (
	maxSchemas     = 256
	maxSchemaBytes = 4 << 20
)

// schemaCache keeps the Kafka Connect schemas a source has parsed, by
// their text. A connector with schemas enabled sends the same schema,
// often larger than the change it describes, with every event of a
// table. It is safe for concurrent use; the schemas it returns are
// shared and must not be modified.
type schemaCache struct {
	mu    sync.Mutex
	m     map[string]*connectSchema
	bytes int // of the texts in m
}

// parse returns the schema whose JSON text is text, parsing it unless it
// was parsed before. It reports false when text is not a schema; the
// caller then reads the whole value the slow way, which says why.
func (c *schemaCache) parse(text []byte) (*connectSchema, bool) {
	if string(text) == "null" {
		return nil, true
	}
	c.mu.Lock()
	s, ok := c.m[string(text)]
	c.mu.Unlock()
	if ok {
		return s, true
	}
	s = new(connectSchema)
	if err := json.Unmarshal(text, s); err != nil {
		return nil, false
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxSchemas || c.bytes+len(text) > maxSchemaBytes {
		c.m, c.bytes = make(map[string]*connectSchema), 0
	}
	if len(text) <= maxSchemaBytes {
		c.m[string(text)] = s
		c.bytes += len(text)
	}
	c.mu.Unlock()
	return s, true
}

// connectFirst reports whether value is an object whose first member is
// named schema or payload, as in Kafka Connect's envelope; a bare
// Debezium event starts with another.
func connectFirst(value []byte) bool {
	first := bytes.TrimLeft(value, " \t\n\r")
	if len(first) == 0 || first[0] != '{' {
		return false
	}
	first = bytes.TrimLeft(first[1:], " \t\n\r")
	return bytes.HasPrefix(first, []byte(`"schema"`)) || bytes.HasPrefix(first, []byte(`"payload"`))
}

// splitConnect returns the texts of the schema and the payload of value
// when it is Kafka Connect's JSON converter envelope with exactly those
// two members, in either order, the payload an object or null and the
// schema an object or null. It finds the two by their brackets and does
// not validate them: the schema's text is validated by parsing it or by
// being one parsed before, and the payload's by decoding it. For any
// other value it reports false.
func splitConnect(value []byte) (schema, payload []byte, ok bool) {
	if !connectFirst(value) {
		return nil, nil, false // before the scanner copies value
	}
	sc := scanner{s: string(value)}
	sc.space()
	if !sc.eat('{') {
		return nil, nil, false
	}
	var sStart, sEnd, pStart, pEnd int
	for i := 0; ; i++ {
		sc.space()
		name, ok := sc.plainString()
		if !ok {
			return nil, nil, false
		}
		sc.space()
		if !sc.eat(':') {
			return nil, nil, false
		}
		sc.space()
		start := sc.i
		switch {
		case sc.literal("null"):
		case sc.i < len(sc.s) && sc.s[sc.i] == '{':
			end, ok := compositeEnd(sc.s, sc.i)
			if !ok {
				return nil, nil, false
			}
			sc.i = end
		default:
			return nil, nil, false
		}
		switch {
		case name == "schema" && sEnd == 0:
			sStart, sEnd = start, sc.i
		case name == "payload" && pEnd == 0:
			pStart, pEnd = start, sc.i
		default:
			return nil, nil, false
		}
		sc.space()
		if sc.eat('}') {
			break
		}
		if i == 1 || !sc.eat(',') {
			return nil, nil, false
		}
	}
	if sEnd == 0 || pEnd == 0 || !sc.end() {
		return nil, nil, false
	}
	return value[sStart:sEnd], value[pStart:pEnd], true
}
