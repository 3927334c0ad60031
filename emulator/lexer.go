package emulator

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
)

// The lexer splits OData expressions ($filter, $orderby, key predicates) into
// tokens. Literals follow OData 4.0 ABNF: strings in single quotes with ''
// for a quote; GUIDs, numbers, dates and date-times bare.

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokNumber
	tokGUID
	tokDate
	tokDateTime
	tokLParen
	tokRParen
	tokComma
	tokEquals
	tokLBracket
	tokRBracket
)

type token struct {
	kind tokKind
	text string // unquoted for strings
	pos  int
}

var (
	guidRE     = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	dateRE     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	dateTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$`)
	numberRE   = regexp.MustCompile(`^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?[mMdDfFlL]?$`)
	identRE    = regexp.MustCompile(`^[A-Za-z_@$][A-Za-z0-9_.]*$`)
)

// lex tokenises s. A syntax error names the position, as the OData URI parser
// does.
func lex(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		switch c := s[i]; c {
		case ' ', '\t', '\r', '\n':
			i++
		case '(':
			toks = append(toks, token{tokLParen, "(", i})
			i++
		case ')':
			toks = append(toks, token{tokRParen, ")", i})
			i++
		case ',':
			toks = append(toks, token{tokComma, ",", i})
			i++
		case '=':
			toks = append(toks, token{tokEquals, "=", i})
			i++
		case '[':
			toks = append(toks, token{tokLBracket, "[", i})
			i++
		case ']':
			toks = append(toks, token{tokRBracket, "]", i})
			i++
		case '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, errBadQuery("There is an unterminated string literal at position %d in '%s'.", start, s)
			}
			toks = append(toks, token{tokString, b.String(), start})
		default:
			start := i
			for i < len(s) && !strings.ContainsRune(" \t\r\n(),='[]", rune(s[i])) {
				i++
			}
			w := s[start:i]
			kind := tokIdent
			switch {
			case guidRE.MatchString(w):
				kind = tokGUID
			case dateRE.MatchString(w):
				kind = tokDate
			case dateTimeRE.MatchString(w):
				kind = tokDateTime
			case numberRE.MatchString(w):
				kind = tokNumber
			case identRE.MatchString(w):
			default:
				return nil, errBadQuery("Syntax error at position %d in '%s'.", i, s)
			}
			toks = append(toks, token{kind, w, start})
		}
	}
	return append(toks, token{tokEOF, "", len(s)}), nil
}

// isKeyword reports whether tok is the bare word w (true, false, null, and,
// eq, …); OData keywords are case-sensitive.
func (tok token) isKeyword(w string) bool { return tok.kind == tokIdent && tok.text == w }

// isLiteral reports whether tok is a literal value rather than a name.
func (tok token) isLiteral() bool {
	switch tok.kind {
	case tokString, tokNumber, tokGUID, tokDate, tokDateTime:
		return true
	}
	return tok.isKeyword("true") || tok.isKeyword("false") || tok.isKeyword("null")
}

// edmType names the literal's type for OData error messages.
func (tok token) edmType() string {
	switch tok.kind {
	case tokString:
		return "Edm.String"
	case tokGUID:
		return "Edm.Guid"
	case tokDate:
		return "Edm.Date"
	case tokDateTime:
		return "Edm.DateTimeOffset"
	case tokNumber:
		if strings.ContainsAny(tok.text, ".eE") {
			return "Edm.Decimal"
		}
		return "Edm.Int32"
	}
	if tok.isKeyword("true") || tok.isKeyword("false") {
		return "Edm.Boolean"
	}
	return "<null>"
}

// literalValue converts a literal token into a value comparable with stored
// values of column a: numbers become *apd.Decimal whatever the column's
// numeric type, and GUIDs uuid.UUID for both uniqueidentifier and lookup
// columns. ok is false when the literal's type does not fit the column.
func literalValue(a *attrDef, tok token) (v any, ok bool) {
	if tok.isKeyword("null") {
		return nil, true
	}
	switch a.typ {
	case tString, tMemo, tMultiSelect:
		if tok.kind == tokString {
			return tok.text, true
		}
	case tInteger, tBigInt, tPicklist, tState, tStatus, tDecimal, tMoney, tDouble:
		if tok.kind == tokNumber {
			d, _, err := apd.NewFromString(strings.TrimRight(tok.text, "mMdDfFlL"))
			return d, err == nil
		}
	case tBoolean:
		if tok.isKeyword("true") || tok.isKeyword("false") {
			return tok.text == "true", true
		}
	case tDateTime:
		if tok.kind == tokDateTime || tok.kind == tokDate {
			tm, err := parseDateTime(tok.text)
			return tm, err == nil
		}
	case tDateOnly:
		if tok.kind == tokDate {
			tm, err := time.Parse(time.DateOnly, tok.text)
			return tm, err == nil
		}
	case tGUID, tLookup:
		if tok.kind == tokGUID {
			id, err := uuid.Parse(tok.text)
			return id, err == nil
		}
	}
	return nil, false
}

// keyValue converts a key-predicate literal into the stored form of column a,
// so that it can be both looked up in an index and written into a new row.
func keyValue(a *attrDef, tok token) (any, bool) {
	v, ok := literalValue(a, tok)
	if !ok || v == nil {
		return nil, false
	}
	switch a.typ {
	case tInteger, tBigInt, tPicklist:
		i, err := strconv.ParseInt(strings.TrimRight(tok.text, "lL"), 10, 64)
		return i, err == nil
	case tDecimal, tMoney:
		d := v.(*apd.Decimal)
		_, err := decimalCtx.Quantize(d, d, -int32(a.precision))
		return d, err == nil
	case tDouble:
		f, err := strconv.ParseFloat(strings.TrimRight(tok.text, "dDfF"), 64)
		return f, err == nil
	case tLookup:
		return lookupRef{id: v.(uuid.UUID)}, true
	}
	return v, true
}

// compareLiteral compares a stored non-null value of column a with a non-null
// literal produced by literalValue.
func compareLiteral(a *attrDef, stored, lit any) int {
	if d, ok := lit.(*apd.Decimal); ok {
		return toDecimal(stored).Cmp(d)
	}
	return compareStored(a, stored, lit)
}
