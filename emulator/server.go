package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// Token is the static bearer token ("Authorization: Bearer <Token>");
	// it acts as the built-in emulator user. Requests without it or a
	// token from the token endpoint get 401. Required.
	Token string
	// Logger receives one debug record per request and errors the emulator
	// could not answer with a Dataverse error. nil discards.
	Logger *slog.Logger
	// Limits are the service protection limits per user; the zero value
	// enforces none.
	Limits Limits
	// Faults are injected from the start; the admin endpoint
	// /_emulator/faults changes them at run time.
	Faults Faults
	// Applications may get tokens from the token endpoint, in addition to
	// those of the schema.
	Applications []Application
	// TokenLifetime is the lifetime of issued tokens; default one hour.
	TokenLifetime time.Duration
	// WebhookTimeout bounds each webhook request; default 60 seconds, as
	// Dataverse.
	WebhookTimeout time.Duration
	// WebhookQueueLimit caps the asynchronous webhook runs waiting for a
	// worker, and the runs waiting for each event hub; a write past it
	// records its run as failed rather than queueing it. Zero, the
	// default, queues without limit, as Dataverse's asynchronous service
	// does: runs are never dropped for load.
	WebhookQueueLimit int
	// OrganizationName is the organisation's name in webhook contexts and
	// the x-ms-dynamics-organization header; default "emulator".
	OrganizationName string
	// ChangeRetention is how long deletions are remembered for delta
	// queries and delta tokens stay valid; default 7 days, as Dataverse.
	ChangeRetention time.Duration
}

// Server is an in-memory Dataverse Web API. It serves /api/data/v9.2/ (and
// v9.0, v9.1) for the tables of its Schema, the token endpoint for its
// applications and the /_emulator/ test hooks; the package documentation
// lists what it serves. Data lives only in memory and is lost when the
// Server is dropped.
//
// A Server is safe for concurrent use. Reads of a table share a lock; a
// write locks only its own table while it checks and stores the row, and a
// bulk message holds it for all its rows. A $batch change set excludes all
// other writes while it runs, so that it can be rolled back; reads may see
// its writes before it commits (read uncommitted).
type Server struct {
	tables    []*tableStore
	bySet     map[string]*tableStore
	byLogical map[string]*tableStore
	ids       *identities
	log       *slog.Logger

	// version is the organisation-wide row version counter: every write
	// takes the next value, so versionnumber grows in commit order across
	// all tables, like SQL Server's rowversion.
	version atomic.Int64

	// writeMu orders writes against atomic groups that span tables: every
	// write request holds it shared, a $batch change set holds it
	// exclusively while it runs, so that its rollback restores exactly what
	// it changed. Reads never take it; they may see a change set's
	// uncommitted writes, as a read-uncommitted query would.
	writeMu sync.RWMutex

	limiter         *limiter
	faults          faultState
	changeRetention time.Duration

	businessUnitID uuid.UUID
	organizationID uuid.UUID

	// hooks delivers webhook contexts; nil when the schema has none.
	hooks *dispatcher
}

// New validates the schema and returns an empty Server for it.
func New(s *Schema, opts Options) (*Server, error) {
	if opts.Token == "" {
		return nil, errors.New("emulator: Options.Token is required")
	}
	if err := opts.Faults.toJSON().validate(); err != nil {
		return nil, fmt.Errorf("emulator: Options.Faults: %w", err)
	}
	if opts.Limits.Requests < 0 || opts.Limits.Concurrent < 0 || opts.Limits.ExecutionTime < 0 || opts.Limits.Window < 0 {
		return nil, errors.New("emulator: Options.Limits must not be negative")
	}
	defs, err := compileSchema(s)
	if err != nil {
		return nil, err
	}
	apps := append(slices.Clone(s.Applications), opts.Applications...)
	if probs := validateApplications(apps); len(probs) > 0 {
		return nil, fmt.Errorf("emulator: applications: %s: %s", probs[0].path, probs[0].msg)
	}
	srv := &Server{
		bySet:           map[string]*tableStore{},
		byLogical:       map[string]*tableStore{},
		log:             opts.Logger,
		businessUnitID:  uuid.New(),
		organizationID:  uuid.New(),
		limiter:         newLimiter(opts.Limits),
		ids:             newIdentities(opts.Token, apps, opts.TokenLifetime),
		changeRetention: opts.ChangeRetention,
	}
	if srv.changeRetention <= 0 {
		srv.changeRetention = defaultChangeRetention
	}
	srv.faults.set(opts.Faults)
	if srv.log == nil {
		srv.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range defs {
		ts := newTableStore(d)
		srv.tables = append(srv.tables, ts)
		srv.bySet[d.set] = ts
		srv.byLogical[d.logical] = ts
	}
	if err := srv.addUsers(apps); err != nil {
		return nil, err
	}
	// After the users, so that their rows fire no steps.
	srv.hooks = srv.compileWebhooks(s.Webhooks, s.EventHubs, opts)
	return srv, nil
}

// request is the parsed, method-independent part of an API request.
type request struct {
	*http.Request
	base  string // "http://host/api/data/v9.2", no trailing slash
	query url.Values
	prefs preferences
	// inBatch marks a request that is a part of a $batch.
	inBatch bool
}

// ServeHTTP serves the Web API. Paths outside /api/data/v9.x/ get 404; every
// response carries OData-Version: 4.0 and JSON bodies are
// application/json; odata.metadata=minimal. Requests pass, in order,
// authentication (401), service protection (429) and fault injection before
// they are handled. /_emulator/ holds the admin endpoints (Faults).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	sw.Header().Set("OData-Version", "4.0")
	if err := s.serve(sw, r, start); err != nil {
		s.writeError(sw, r, err)
	}
	s.log.LogAttrs(r.Context(), slog.LevelDebug, "dataverse emulator request",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", sw.status), slog.Duration("elapsed", time.Since(start)))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request, start time.Time) error {
	if tokenPath.MatchString(r.URL.Path) {
		s.serveToken(w, r)
		return nil
	}
	user, why := s.ids.authenticate(r, start)
	if why != authOK {
		return unauthenticated(w, r, why)
	}
	r = r.WithContext(context.WithValue(r.Context(), userKey{}, user))
	if strings.HasPrefix(r.URL.Path, "/_emulator/") {
		return s.serveAdmin(w, r)
	}
	u, retry, aerr := s.limiter.acquire(w.Header(), user, start)
	if aerr != nil {
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
		return aerr
	}
	defer func() { s.limiter.release(u, start, time.Now()) }()
	if err := s.injectFaults(w, r); err != nil {
		return err
	}
	return s.route(w, r, false, false)
}

// route serves an authenticated request. inBatch marks a part of a $batch;
// locked means the caller already holds writeMu exclusively.
func (s *Server) route(w http.ResponseWriter, r *http.Request, inBatch, locked bool) error {
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
		inBatch: inBatch,
	}
	segs, err := splitSegments(rest)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return errNotImplemented("The service document")
	}
	if segs[0].name == "$batch" {
		if len(segs) > 1 {
			return errSegmentNotFound(rest)
		}
		return s.serveBatch(w, req, version)
	}
	if !locked && r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.writeMu.RLock()
		defer s.writeMu.RUnlock()
	}
	switch first := segs[0]; first.name {
	case "WhoAmI":
		if len(segs) > 1 || (first.hasArg && first.args != "") {
			return errSegmentNotFound(rest)
		}
		return s.serveWhoAmI(w, req)
	case "EntityDefinitions":
		return s.serveEntityDefinitions(w, req, segs)
	case "$metadata":
		if len(segs) > 1 {
			return errSegmentNotFound(rest)
		}
		return s.serveMetadata(w, req)
	}
	ts, ok := s.bySet[segs[0].name]
	if !ok {
		return errSegmentNotFound(segs[0].name)
	}
	return s.serveEntitySet(w, req, ts, segs)
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
	continueOnError      bool
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
			case "odata.continue-on-error":
				p.continueOnError = value == "" || value == "true"
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

// readBody reads a request body up to maxBodyBytes. A declared length
// sizes the buffer once, instead of growing it through a bulk request's
// hundreds of kilobytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	return readBodyInto(w, r, nil)
}

// readBodyInto is readBody into buf[:0], when buf has room for the declared
// length; else into a new buffer.
func readBodyInto(w http.ResponseWriter, r *http.Request, buf []byte) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	n := r.ContentLength
	if n <= 0 || n > maxBodyBytes {
		return io.ReadAll(body)
	}
	if int64(cap(buf)) >= n {
		buf = buf[:0]
	} else {
		buf = make([]byte, 0, n)
	}
	for int64(len(buf)) < n {
		m, err := body.Read(buf[len(buf):n])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
	// Whatever follows the declared length (nothing, from net/http's
	// server) is read as io.ReadAll would; the first read tells, without
	// io.ReadAll's buffer.
	var probe [1]byte
	m, err := body.Read(probe[:])
	if m == 0 && errors.Is(err, io.EOF) {
		return buf, nil
	}
	rest, err2 := io.ReadAll(body)
	if err == nil || errors.Is(err, io.EOF) {
		err = err2
	}
	return append(append(buf, probe[:m]...), rest...), err
}
