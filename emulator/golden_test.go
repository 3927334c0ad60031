package emulator_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/internal/testenv"
)

// TestGolden replays the wire-format examples of the Dataverse documentation,
// kept as files under testdata/golden, against a fresh emulator per file, and
// checks each answer against the documented one: status code, the headers
// the example shows (and the ones it says are absent), and the body. JSON
// bodies must have exactly the documented members with the documented
// values; ids, ETags and timestamps are matched by placeholders.
//
// A golden file is a sequence of exchanges; lines starting with # are
// comments:
//
//	# Update: the documentation page the example comes from
//	=== request
//	PATCH [Org]/api/data/v9.2/accounts({{acct}}) HTTP/1.1
//	If-Match: *
//
//	{"name":"Updated"}
//	=== response
//	HTTP/1.1 204 No Content
//	OData-Version: 4.0
//	!OData-EntityId
//
// [Org] is the emulator's root URL. In responses, {{guid}}, {{etag}},
// {{datetime}}, {{number}}, {{code}} (empty or a 0x… error code) and {{any}}
// match a value of that kind ("{{number}}" in JSON matches a number); {{guid:acct}} (any kind) also binds the value
// to acct on first use and must equal it afterwards; requests substitute
// {{acct}}. A header line "!Name" asserts the header is absent. Requests get
// the emulator's bearer token unless they carry an Authorization header.
//
// A $batch is written as on the wire, with LF line ends that are sent as
// CRLF. A multipart answer is compared part by part: each part's listed
// headers, then its embedded HTTP response like any other, change sets
// recursively; boundaries are templates too (batchresponse_{{guid}}).
func TestGolden(t *testing.T) {
	schema, err := os.ReadFile(filepath.Join("testdata", "golden", "schema.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata/golden")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".golden"), func(t *testing.T) {
			t.Parallel()
			exchanges, err := parseGoldenFile(file)
			if err != nil {
				t.Fatal(err)
			}
			emu := testenv.StartEmulator(t, string(schema))
			g := &goldenRun{t: t, root: emu.URL, token: emu.Token, vars: map[string]string{}}
			for i, ex := range exchanges {
				g.replay(fmt.Sprintf("%s:%d", file, ex.line), i, ex)
			}
		})
	}
}

// goldenExchange is one request and the response the documentation shows.
type goldenExchange struct {
	line     int // of the "=== request" marker, for messages
	request  goldenMessage
	response goldenMessage
}

// goldenMessage is an HTTP message as written in a golden file: the first
// line (request line or status line), header lines, and the body.
type goldenMessage struct {
	start   string
	headers []string // "Name: value", or "!Name" for an absent header
	body    string
}

// parseGoldenFile reads the exchanges of a golden file.
func parseGoldenFile(path string) ([]goldenExchange, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var (
		exchanges []goldenExchange
		section   string   // "request", "response" or "" before the first marker
		lines     []string // of the current section
		startLine int
	)
	flush := func() error {
		if section == "" {
			return nil
		}
		msg, err := parseGoldenMessage(lines)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", path, startLine, err)
		}
		switch section {
		case "request":
			exchanges = append(exchanges, goldenExchange{line: startLine, request: msg})
		case "response":
			if len(exchanges) == 0 || exchanges[len(exchanges)-1].response.start != "" {
				return fmt.Errorf("%s:%d: response without a request", path, startLine)
			}
			exchanges[len(exchanges)-1].response = msg
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if marker, ok := strings.CutPrefix(line, "=== "); ok {
			if err := flush(); err != nil {
				return nil, err
			}
			if marker != "request" && marker != "response" {
				return nil, fmt.Errorf("%s:%d: unknown section %q", path, n, marker)
			}
			section, lines, startLine = marker, nil, n
			continue
		}
		if section == "" || strings.HasPrefix(line, "#") {
			continue // comments, such as the page an example comes from
		}
		lines = append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	for _, ex := range exchanges {
		if ex.response.start == "" {
			return nil, fmt.Errorf("%s:%d: request without a response", path, ex.line)
		}
	}
	return exchanges, nil
}

func parseGoldenMessage(lines []string) (goldenMessage, error) {
	if len(lines) == 0 || lines[0] == "" {
		return goldenMessage{}, fmt.Errorf("section has no start line")
	}
	msg := goldenMessage{start: lines[0]}
	i := 1
	for ; i < len(lines) && lines[i] != ""; i++ {
		msg.headers = append(msg.headers, lines[i])
	}
	if i < len(lines) {
		msg.body = strings.TrimSpace(strings.Join(lines[i+1:], "\n"))
	}
	return msg, nil
}

// goldenRun replays the exchanges of one file, carrying the bound variables
// from one exchange to the next.
type goldenRun struct {
	t     *testing.T
	root  string
	token string
	vars  map[string]string
}

func (g *goldenRun) replay(where string, index int, ex goldenExchange) {
	t := g.t
	t.Helper()
	method, target, ok := strings.Cut(g.expand(ex.request.start), " ")
	if !ok {
		t.Fatalf("%s: request line %q has no target", where, ex.request.start)
	}
	target = strings.TrimSuffix(target, " HTTP/1.1")
	var body io.Reader
	if ex.request.body != "" {
		text := g.expand(ex.request.body)
		if requestIsMultipart(ex.request) {
			text = crlf(text) + "\r\n"
		}
		body = strings.NewReader(text)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	for _, h := range ex.request.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			t.Fatalf("%s: header line %q has no colon", where, h)
		}
		req.Header.Add(name, g.expand(strings.TrimSpace(value)))
	}
	if req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+g.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", where, method, target, err)
	}
	got, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: reading the response: %v", where, err)
	}
	// Every mismatch is reported at once, with the whole answer, so that a
	// failing file says everything that differs from the documentation.
	if problems := g.checkResponse("", ex.response, resp.StatusCode, resp.Header, got); len(problems) > 0 {
		t.Fatalf("%s: exchange %d (%s %s) differs from the documented answer:\n  %s\ngot: %s\n%s\n\n%s",
			where, index+1, method, target, strings.Join(problems, "\n  "),
			resp.Status, formatHeader(resp.Header), got)
	}
}

// requestIsMultipart reports whether a golden request is a $batch, whose
// body goes on the wire with CRLF line ends.
func requestIsMultipart(m goldenMessage) bool {
	for _, h := range m.headers {
		name, value, _ := strings.Cut(h, ":")
		if strings.EqualFold(name, "Content-Type") && strings.HasPrefix(strings.TrimSpace(value), "multipart/") {
			return true
		}
	}
	return false
}

// checkResponse compares an answer with the documented one and lists every
// difference; where prefixes them (a part of a $batch answer).
func (g *goldenRun) checkResponse(where string, want goldenMessage, status int, header http.Header, body []byte) []string {
	var problems []string
	fields := strings.Fields(want.start)
	if len(fields) < 2 {
		return []string{fmt.Sprintf("%sstatus line %q has no code", where, want.start)}
	}
	code, err := strconv.Atoi(fields[1])
	if err != nil {
		return []string{fmt.Sprintf("%sstatus line %q: %v", where, want.start, err)}
	}
	if status != code {
		problems = append(problems, fmt.Sprintf("%sstatus %d, want %d", where, status, code))
	}
	problems = append(problems, g.checkHeaders(where, want.headers, header)...)
	switch {
	case want.body == "":
		if len(bytes.TrimSpace(body)) != 0 {
			problems = append(problems, where+"body is not empty")
		}
	case strings.HasPrefix(want.body, "{") && !strings.HasPrefix(want.body, "{{"), strings.HasPrefix(want.body, "["):
		wantJSON, err := decodeGoldenJSON([]byte(want.body))
		if err != nil {
			return append(problems, fmt.Sprintf("%sgolden body is not JSON: %v", where, err))
		}
		gotJSON, err := decodeGoldenJSON(body)
		if err != nil {
			return append(problems, fmt.Sprintf("%sbody is not JSON: %v", where, err))
		}
		problems = append(problems, g.compareJSON(where+"$", wantJSON, gotJSON)...)
	case strings.HasPrefix(want.body, "--"):
		problems = append(problems, g.compareMultipart(where, want.body, header.Get("Content-Type"), body)...)
	default:
		if !g.match(want.body, strings.TrimSpace(string(body))) {
			problems = append(problems, fmt.Sprintf("%sbody does not match %q", where, want.body))
		}
	}
	return problems
}

// checkHeaders compares header lines of a golden file ("Name: template" or
// "!Name") with an answer's headers.
func (g *goldenRun) checkHeaders(where string, want []string, got http.Header) []string {
	var problems []string
	for _, h := range want {
		if name, absent := strings.CutPrefix(h, "!"); absent {
			if vs := got.Values(name); len(vs) > 0 {
				problems = append(problems, fmt.Sprintf("%sheader %s: %q, want none", where, name, vs))
			}
			continue
		}
		name, value, _ := strings.Cut(h, ":")
		value = strings.TrimSpace(value)
		vs := got.Values(name)
		if len(vs) == 0 {
			problems = append(problems, fmt.Sprintf("%sheader %s missing, want %q", where, name, value))
			continue
		}
		if !g.match(value, strings.Join(vs, ", ")) {
			problems = append(problems, fmt.Sprintf("%sheader %s: %q, want %q", where, name, strings.Join(vs, ", "), value))
		}
	}
	return problems
}

// boundaryParam finds the boundary parameter of a multipart Content-Type.
// A regular expression rather than mime.ParseMediaType, because golden
// boundaries are templates whose placeholders ParseMediaType would refuse.
var boundaryParam = regexp.MustCompile(`boundary=("?)([^";\s]+)`)

func boundaryOf(contentType string) string {
	m := boundaryParam.FindStringSubmatch(contentType)
	if m == nil {
		return ""
	}
	return m[2]
}

// compareMultipart compares a documented multipart/mixed body ($batch or
// change set answer) with an answer, part by part: the part headers the
// documentation shows, then each application/http part as a response of its
// own, and nested change sets recursively. The golden body's own first line
// gives its boundary; the answer's comes from its Content-Type.
func (g *goldenRun) compareMultipart(where, want, gotContentType string, got []byte) []string {
	wantBoundary := strings.TrimPrefix(strings.SplitN(want, "\n", 2)[0], "--")
	gotBoundary := boundaryOf(gotContentType)
	if gotBoundary == "" {
		return []string{fmt.Sprintf("%sContent-Type %q has no boundary", where, gotContentType)}
	}
	wantParts, err := readGoldenParts(crlf(want), wantBoundary)
	if err != nil {
		return []string{fmt.Sprintf("%sgolden multipart body: %v", where, err)}
	}
	gotParts, err := readGoldenParts(string(got), gotBoundary)
	if err != nil {
		return []string{fmt.Sprintf("%smultipart body: %v", where, err)}
	}
	if len(gotParts) != len(wantParts) {
		return []string{fmt.Sprintf("%s%d parts, want %d", where, len(gotParts), len(wantParts))}
	}
	var problems []string
	for i, wp := range wantParts {
		gp := gotParts[i]
		at := fmt.Sprintf("%spart %d: ", where, i+1)
		var headerLines []string
		for _, k := range sortedHeaderKeys(wp.header) {
			for _, v := range wp.header[k] {
				headerLines = append(headerLines, k+": "+v)
			}
		}
		problems = append(problems, g.checkHeaders(at, headerLines, gp.header)...)
		if strings.HasPrefix(wp.header.Get("Content-Type"), "multipart/mixed") {
			problems = append(problems, g.compareMultipart(at, strings.TrimSpace(normalizeNewlines(string(wp.body))), gp.header.Get("Content-Type"), gp.body)...)
			continue
		}
		wantMsg, err := parseGoldenMessage(strings.Split(strings.TrimSpace(normalizeNewlines(string(wp.body))), "\n"))
		if err != nil {
			problems = append(problems, fmt.Sprintf("%sgolden part: %v", at, err))
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(gp.body)), nil)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%snot an HTTP response: %v", at, err))
			continue
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%sbody: %v", at, err))
			continue
		}
		problems = append(problems, g.checkResponse(at, wantMsg, resp.StatusCode, resp.Header, body)...)
	}
	return problems
}

// goldenPart is one part of a multipart body.
type goldenPart struct {
	header http.Header
	body   []byte
}

func readGoldenParts(body, boundary string) ([]goldenPart, error) {
	mr := multipart.NewReader(strings.NewReader(body), boundary)
	var parts []goldenPart
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return parts, nil
		}
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		parts = append(parts, goldenPart{header: http.Header(p.Header), body: data})
	}
}

func normalizeNewlines(s string) string { return strings.ReplaceAll(s, "\r\n", "\n") }

// crlf turns a golden file's LF line ends into the CRLF that MIME bodies use
// on the wire.
func crlf(s string) string { return strings.ReplaceAll(normalizeNewlines(s), "\n", "\r\n") }

func decodeGoldenJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return v, nil
}

// compareJSON lists the differences between a documented JSON value and an
// answer: objects must have the same members in any order, arrays the same
// elements in order, strings match as templates and numbers by value (so
// 5000000.0000 equals 5000000).
func (g *goldenRun) compareJSON(path string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		o, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %s, want an object", path, describeJSON(got))}
		}
		var problems []string
		for _, k := range sortedKeys(w) {
			v, ok := o[k]
			if !ok {
				problems = append(problems, fmt.Sprintf("%s.%s missing", path, k))
				continue
			}
			problems = append(problems, g.compareJSON(path+"."+k, w[k], v)...)
		}
		for _, k := range sortedKeys(o) {
			if _, ok := w[k]; !ok {
				problems = append(problems, fmt.Sprintf("%s.%s present (%s), not in the documented answer", path, k, describeJSON(o[k])))
			}
		}
		return problems
	case []any:
		a, ok := got.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %s, want an array", path, describeJSON(got))}
		}
		if len(a) != len(w) {
			return []string{fmt.Sprintf("%s: %d elements, want %d", path, len(a), len(w))}
		}
		var problems []string
		for i := range w {
			problems = append(problems, g.compareJSON(fmt.Sprintf("%s[%d]", path, i), w[i], a[i])...)
		}
		return problems
	case string:
		s, ok := got.(string)
		if n, isNumber := got.(json.Number); isNumber && numberPlaceholder.MatchString(w) {
			// "{{number}}" stands for a JSON number whose value varies.
			s, ok = string(n), true
		}
		if !ok || !g.match(w, s) {
			return []string{fmt.Sprintf("%s: %s, want %q", path, describeJSON(got), w)}
		}
	case json.Number:
		n, ok := got.(json.Number)
		if !ok || !sameNumber(w, n) {
			return []string{fmt.Sprintf("%s: %s, want %s", path, describeJSON(got), w)}
		}
	default: // bool or nil
		if got != want {
			return []string{fmt.Sprintf("%s: %s, want %v", path, describeJSON(got), want)}
		}
	}
	return nil
}

func sameNumber(a, b json.Number) bool {
	x, okx := new(big.Rat).SetString(string(a))
	y, oky := new(big.Rat).SetString(string(b))
	return okx && oky && x.Cmp(y) == 0
}

func describeJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// goldenKinds are the placeholder patterns of golden responses. They have
// no capturing groups of their own, so that match can number its captures.
var goldenKinds = map[string]string{
	"guid":     `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`,
	"etag":     `W/"[0-9]+"`,
	"datetime": `[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?Z`,
	"number":   `-?[0-9]+(?:\.[0-9]+)?`,
	"code":     `(?:0x[0-9A-Fa-f]{8})?`,
	"any":      `.*`,
}

// numberPlaceholder is a JSON string in a golden body that matches a number.
var numberPlaceholder = regexp.MustCompile(`^\{\{number(?::[A-Za-z0-9_]+)?\}\}$`)

// goldenPlaceholder finds {{kind}}, {{kind:name}} and {{name}}.
var goldenPlaceholder = regexp.MustCompile(`\{\{([A-Za-z0-9_]+)(?::([A-Za-z0-9_]+))?\}\}`)

// expand fills [Org] and the bound variables into a request template.
func (g *goldenRun) expand(s string) string {
	s = strings.ReplaceAll(s, "[Org]", g.root)
	return goldenPlaceholder.ReplaceAllStringFunc(s, func(p string) string {
		m := goldenPlaceholder.FindStringSubmatch(p)
		name := m[1]
		if m[2] != "" {
			name = m[2]
		}
		v, ok := g.vars[name]
		if !ok {
			g.t.Fatalf("golden request uses {{%s}} before a response bound it", name)
		}
		return v
	})
}

// match reports whether got matches the response template want, binding the
// named placeholders it meets for the first time.
func (g *goldenRun) match(want, got string) bool {
	want = strings.ReplaceAll(want, "[Org]", g.root)
	var (
		pattern strings.Builder
		binds   []string // the name of each capture group, in order
	)
	pattern.WriteString("^")
	last := 0
	for _, loc := range goldenPlaceholder.FindAllStringSubmatchIndex(want, -1) {
		pattern.WriteString(regexp.QuoteMeta(want[last:loc[0]]))
		last = loc[1]
		kind := want[loc[2]:loc[3]]
		name := ""
		if loc[4] >= 0 {
			name = want[loc[4]:loc[5]]
		}
		expr, known := goldenKinds[kind]
		switch {
		case !known && name == "":
			// {{acct}}: a variable bound earlier.
			v, ok := g.vars[kind]
			if !ok {
				g.t.Fatalf("golden response uses {{%s}}, which is neither a kind nor a bound variable", kind)
			}
			pattern.WriteString(regexp.QuoteMeta(v))
		case !known:
			g.t.Fatalf("golden placeholder {{%s:%s}}: unknown kind %q", kind, name, kind)
		case name == "":
			pattern.WriteString("(?:" + expr + ")")
		default:
			if v, ok := g.vars[name]; ok {
				pattern.WriteString(regexp.QuoteMeta(v))
				continue
			}
			pattern.WriteString("(" + expr + ")")
			binds = append(binds, name)
		}
	}
	pattern.WriteString(regexp.QuoteMeta(want[last:]))
	pattern.WriteString("$")
	re, err := regexp.Compile(pattern.String())
	if err != nil {
		g.t.Fatalf("golden template %q: %v", want, err)
	}
	m := re.FindStringSubmatch(got)
	if m == nil {
		return false
	}
	for i, name := range binds {
		g.vars[name] = m[i+1]
	}
	return true
}

func formatHeader(h http.Header) string {
	var b strings.Builder
	for _, k := range sortedHeaderKeys(h) {
		for _, v := range h[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func sortedHeaderKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
