package kafka

import (
	"strconv"
	"unicode/utf8"

	"github.com/dvsync/dvsync/change"
)

// scanObject decodes doc, a JSON object, into a row in one pass over its
// bytes, as decodeObject does, for the objects most messages are: no
// escapes in names or strings. It copies doc into one string and takes
// every column name and text value as a part of it, so a row costs two
// allocations and the row's slice, not one per value.
//
// It reports false when doc is anything else: not JSON, not an object,
// a name given twice, a string with an escape or invalid UTF-8, a
// member that jsonValue cannot convert. decodeObject then decodes doc
// the slow way, which makes the row or says what is wrong; scanObject
// never has to produce an error message of its own, and accepting less
// than decodeObject is never wrong.
func scanObject(doc []byte) (change.Row, bool) {
	sc := scanner{s: string(doc)}
	sc.space()
	if !sc.eat('{') {
		return nil, false
	}
	row := make(change.Row, 0, members(sc.s[sc.i:]))
	sc.space()
	if sc.eat('}') {
		return row, sc.end()
	}
	for {
		sc.space()
		name, ok := sc.plainString()
		if !ok {
			return nil, false
		}
		for i := range row {
			if row[i].Name == name {
				return nil, false
			}
		}
		sc.space()
		if !sc.eat(':') {
			return nil, false
		}
		sc.space()
		v, ok := sc.value()
		if !ok {
			return nil, false
		}
		row = append(row, change.Column{Name: name, Value: v})
		sc.space()
		if sc.eat('}') {
			return row, sc.end()
		}
		if !sc.eat(',') {
			return nil, false
		}
	}
}

// scanner reads JSON text from s, at i.
type scanner struct {
	s string
	i int
}

func (sc *scanner) space() {
	for sc.i < len(sc.s) {
		switch sc.s[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

func (sc *scanner) eat(c byte) bool {
	if sc.i < len(sc.s) && sc.s[sc.i] == c {
		sc.i++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (sc *scanner) end() bool {
	sc.space()
	return sc.i == len(sc.s)
}

// plainString reads a string without escapes and returns its contents.
// A string with an escape, a control character or invalid UTF-8 is left
// to the slow path, which decodes escapes and replaces invalid UTF-8 as
// encoding/json does.
func (sc *scanner) plainString() (string, bool) {
	if !sc.eat('"') {
		return "", false
	}
	start, ascii := sc.i, true
	for sc.i < len(sc.s) {
		c := sc.s[sc.i]
		switch {
		case c == '"':
			s := sc.s[start:sc.i]
			sc.i++
			if !ascii && !utf8.ValidString(s) {
				return "", false
			}
			return s, true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		sc.i++
	}
	return "", false
}

// value reads one value and converts it as jsonValue does.
func (sc *scanner) value() (change.Value, bool) {
	if sc.i == len(sc.s) {
		return change.Value{}, false
	}
	switch c := sc.s[sc.i]; {
	case c == '"':
		s, ok := sc.plainString()
		return change.Text(s), ok
	case c == 't':
		return change.Bool(true), sc.literal("true")
	case c == 'f':
		return change.Bool(false), sc.literal("false")
	case c == 'n':
		return change.Null(), sc.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return sc.number()
	case c == '{' || c == '[':
		end, ok := compositeEnd(sc.s, sc.i)
		if !ok {
			return change.Value{}, false
		}
		// jsonValue validates and compacts the document.
		v, err := jsonValue([]byte(sc.s[sc.i:end]))
		sc.i = end
		return v, err == nil
	}
	return change.Value{}, false
}

func (sc *scanner) literal(word string) bool {
	if len(sc.s)-sc.i >= len(word) && sc.s[sc.i:sc.i+len(word)] == word {
		sc.i += len(word)
		return true
	}
	return false
}

// number reads a number, strictly by the JSON grammar, as an int when it
// is an integer that fits 64 bits and as an exact decimal otherwise.
func (sc *scanner) number() (change.Value, bool) {
	start := sc.i
	sc.eat('-')
	switch {
	case sc.eat('0'):
	case sc.digits() == 0:
		return change.Value{}, false
	}
	integer := true
	if sc.eat('.') {
		integer = false
		if sc.digits() == 0 {
			return change.Value{}, false
		}
	}
	if sc.eat('e') || sc.eat('E') {
		integer = false
		if !sc.eat('+') {
			sc.eat('-')
		}
		if sc.digits() == 0 {
			return change.Value{}, false
		}
	}
	text := sc.s[start:sc.i]
	if integer && len(text) <= 18 {
		// At most 18 characters: fits an int64 whatever the digits.
		var n int64
		for _, d := range []byte(text) {
			if d != '-' {
				n = n*10 + int64(d-'0')
			}
		}
		if text[0] == '-' {
			n = -n
		}
		return change.Int(n), true
	}
	if integer {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return change.Int(n), true
		}
	}
	v, err := change.Decimal(text)
	return v, err == nil
}

// digits skips decimal digits and returns how many.
func (sc *scanner) digits() int {
	start := sc.i
	for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
		sc.i++
	}
	return sc.i - start
}

// members counts the members of the object whose text follows its
// opening brace in s, by its commas outside strings and nested values:
// the capacity its row needs. What it counts in text that is not JSON
// does not matter; scanObject finds the text wrong.
func members(s string) int {
	n, depth := 1, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return n
			}
			depth--
		case ',':
			if depth == 0 {
				n++
			}
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
	}
	return n
}

// compositeEnd returns the index just past the object or array that
// starts at s[i], matching brackets outside strings. It does not
// validate what is between them; the caller does.
func compositeEnd(s string, i int) (int, bool) {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
	}
	return 0, false
}
