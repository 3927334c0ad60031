package emulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// apiVersions are the Web API versions served; all behave alike.
var apiVersions = []string{"v9.0", "v9.1", "v9.2"}

// maxBodyBytes bounds a request body; larger requests get 413.
const maxBodyBytes = 32 << 20

// Options configures a Server.
type Options struct {
	// Token is the bearer token every request must carry
	// ("Authorization: Bearer <Token>"); others get 401. Required.
	Token string
	// Logger receives one debug record per request and errors the emulator
	// could not answer with a Dataverse error. nil discards.
	Logger *slog.Logger
}

// Server is an in-memory Dataverse Web API. It serves /api/data/v9.2/ (and
// v9.0, v9.1) for the tables of its Schema: row create, retrieve, update,
// upsert and delete by primary or alternate key, list queries with $select,
// $filter, $orderby, $top and paging, and the metadata and WhoAmI calls a
// client needs. Data lives only in memory and is lost when the Server is
// dropped.
//
// A Server is safe for concurrent use. Reads of a table share a lock; a write
// locks only its own table while it checks and stores the row.
type Server struct {
	tables    []*tableStore
	bySet     map[string]*tableStore
	byLogical map[string]*tableStore
	tokenHash [sha256.Size]byte
	log       *slog.Logger

	// version is the organisation-wide row version counter: every write
	// takes the next value, so versionnumber grows in commit order across
	// all tables, like SQL Server's rowversion.
	version atomic.Int64

	userID         uuid.UUID
	businessUnitID uuid.UUID
	organizationID uuid.UUID
}

// New validates the schema and returns an empty Server for it.
func New(s *Schema, opts Options) (*Server, error) {
	if opts.Token == "" {
		return nil, errors.New("emulator: Options.Token is required")
	}
	defs, err := compileSchema(s)
	if err != nil {
		return nil, err
	}
	srv := &Server{
		bySet:          map[string]*tableStore{},
		byLogical:      map[string]*tableStore{},
		tokenHash:      sha256.Sum256([]byte(opts.Token)),
		log:            opts.Logger,
		userID:         uuid.New(),
		businessUnitID: uuid.New(),
		organizationID: uuid.New(),
	}
	if srv.log == nil {
		srv.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range defs {
		ts := newTableStore(d)
		srv.tables = append(srv.tables, ts)
		srv.bySet[d.set] = ts
		srv.byLogical[d.logical] = ts
	}
	return srv, nil
}

// request is the parsed, method-independent part of an API request.
type request struct {
	*http.Request
	base  string // "http://host/api/data/v9.2", no trailing slash
	query url.Values
	prefs preferences
}

// ServeHTTP serves the Web API. Paths outside /api/data/v9.x/ get 404; every
// response carries OData-Version: 4.0 and JSON bodies are
// application/json; odata.metadata=minimal.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	sw.Header().Set("OData-Version", "4.0")
	if err := s.serve(sw, r); err != nil {
		s.writeError(sw, r, err)
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "dataverse emulator request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", sw.status), slog.Duration("elapsed", time.Since(start)))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) error {
	if !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", "Bearer")
		return errUnauthenticated()
	}
	version, rest, ok := splitAPIPath(r.URL.Path)
	if !ok {
		return errSegmentNotFound(strings.TrimPrefix(r.URL.Path, "/"))
	}
	query, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		return err
	}
	req := &request{
		Request: r,
		base:    scheme(r) + "://" + r.Host + "/api/data/" + version,
		query:   query,
		prefs:   parsePreferences(r.Header.Values("Prefer")),
	}
	segs, err := splitSegments(rest)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return errNotImplemented("The service document")
	}
	switch first := segs[0]; first.name {
	case "WhoAmI":
		if len(segs) > 1 || (first.hasArg && first.args != "") {
			return errSegmentNotFound(rest)
		}
		return s.serveWhoAmI(w, req)
	case "EntityDefinitions":
		return s.serveEntityDefinitions(w, req, segs)
	case "$metadata", "$batch":
		return errNotImplemented(first.name)
	}
	ts, ok := s.bySet[segs[0].name]
	if !ok {
		return errSegmentNotFound(segs[0].name)
	}
	return s.serveEntitySet(w, req, ts, segs)
}

// authorized compares the bearer token in constant time; hashing first keeps
// the comparison independent of the token's length too.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

// splitAPIPath returns the version and the resource path after
// /api/data/<version>/.
func splitAPIPath(p string) (version, rest string, ok bool) {
	after, found := strings.CutPrefix(p, "/api/data/")
	if !found {
		return "", "", false
	}
	version, rest, _ = strings.Cut(after, "/")
	for _, v := range apiVersions {
		if v == version {
			return version, rest, true
		}
	}
	return "", "", false
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// parseQuery decodes the query string. It splits on '&' only: OData uses ';'
// inside options ($expand=Keys($select=a;$filter=…)), which url.ParseQuery
// would refuse. System query options may appear once.
func parseQuery(raw string) (url.Values, error) {
	q := url.Values{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		name, err1 := url.QueryUnescape(k)
		value, err2 := url.QueryUnescape(v)
		if err := errors.Join(err1, err2); err != nil {
			return nil, errBadQuery("The query string is not valid: %v", err)
		}
		if strings.HasPrefix(name, "$") && q.Has(name) {
			return nil, errBadQuery("Query option '%s' was specified more than once, but it must be specified at most once.", name)
		}
		q.Add(name, value)
	}
	return q, nil
}

// checkOptions rejects system query options a request does not support.
// Unknown $-options are a 400; known ones the emulator does not implement
// yet are a 501, so that nobody mistakes them for ignored.
func checkOptions(q url.Values, allowed ...string) error {
	for name := range q {
		if !strings.HasPrefix(name, "$") || containsString(allowed, name) {
			continue
		}
		switch name {
		case "$expand", "$apply", "$search", "$compute":
			return errNotImplemented("The query option " + name)
		case "$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$skip":
			return errBadQuery("The query parameter %s is not supported for this request.", name)
		default:
			return errBadQuery("The query parameter %s is not supported.", name)
		}
	}
	if q.Has("fetchXml") {
		return errNotImplemented("The fetchXml query parameter")
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// preferences are the Prefer header values the emulator understands.
type preferences struct {
	returnRepresentation bool
	maxPageSize          int    // 0 when absent
	annotations          string // odata.include-annotations value, unquoted
	trackChanges         bool
}

// parsePreferences reads every Prefer header; values are comma-separated and
// a quoted value may itself contain commas.
func parsePreferences(headers []string) preferences {
	var p preferences
	for _, h := range headers {
		for _, item := range splitOutsideQuotes(h, ',') {
			name, value, _ := strings.Cut(strings.TrimSpace(item), "=")
			value = strings.Trim(strings.TrimSpace(value), `"`)
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "return":
				p.returnRepresentation = value == "representation"
			case "odata.maxpagesize":
				if n, err := strconv.Atoi(value); err == nil && n > 0 {
					p.maxPageSize = n
				}
			case "odata.include-annotations":
				p.annotations = value
			case "odata.track-changes":
				p.trackChanges = true
			}
		}
	}
	return p
}

func splitOutsideQuotes(s string, sep byte) []string {
	var parts []string
	inQuote := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			inQuote = !inQuote
		case sep:
			if !inQuote {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// wantsAnnotation reports whether the odata.include-annotations preference
// covers the annotation term, honouring "*" and "Namespace.*" patterns.
func (p preferences) wantsAnnotation(term string) bool {
	for _, pat := range strings.Split(p.annotations, ",") {
		pat = strings.TrimSpace(pat)
		if pat == "*" || pat == term || (strings.HasSuffix(pat, ".*") && strings.HasPrefix(term, strings.TrimSuffix(pat, "*"))) {
			return true
		}
	}
	return false
}

// etagCondition is a parsed If-Match / If-None-Match header.
type etagCondition struct {
	any      bool    // "*"
	versions []int64 // W/"<n>" values
}

// parseETagHeader parses an If-Match or If-None-Match value; it returns nil
// when the header is absent or holds no ETag. Clients send
// "If-None-Match: null" on every request to defeat caching, so anything that
// is not an ETag is ignored.
func parseETagHeader(h string) *etagCondition {
	h = strings.TrimSpace(h)
	if h == "" {
		return nil
	}
	if h == "*" {
		return &etagCondition{any: true}
	}
	var c etagCondition
	for _, part := range strings.Split(h, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if n, err := strconv.ParseInt(strings.Trim(part, `"`), 10, 64); err == nil && strings.HasPrefix(part, `"`) {
			c.versions = append(c.versions, n)
		}
	}
	if len(c.versions) == 0 {
		return nil
	}
	return &c
}

func (c *etagCondition) matches(r *row) bool {
	if c.any {
		return true
	}
	for _, v := range c.versions {
		if v == r.version {
			return true
		}
	}
	return false
}

// statusWriter records the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// writeJSON sends a JSON body with the content type Dataverse uses.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError sends err as a Dataverse error body. Errors that are not
// apiErrors are emulator faults: they are logged and answered with 500.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			ae = &apiError{http.StatusRequestEntityTooLarge, codeUnexpected,
				fmt.Sprintf("The request body exceeds the limit of %d bytes.", tooLarge.Limit)}
		} else {
			s.log.LogAttrs(r.Context(), slog.LevelError, "dataverse emulator fault",
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
			ae = &apiError{http.StatusInternalServerError, codeUnexpected, "An unexpected error occurred."}
		}
	}
	body := []byte(`{"error":{"code":`)
	body = appendJSONString(body, ae.code)
	body = append(body, `,"message":`...)
	body = appendJSONString(body, ae.message)
	body = append(body, "}}"...)
	writeJSON(w, ae.status, body)
}

// readBody reads a request body up to maxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
}
