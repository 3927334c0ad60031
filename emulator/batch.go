package emulator

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// maxBatchRequests is Dataverse's limit on requests in one $batch, counting
// those inside change sets.
const maxBatchRequests = 1000

// batchPart is one request of a $batch body.
type batchPart struct {
	method    string
	target    string // request target as written: absolute URL, path, relative path or $n
	header    http.Header
	body      []byte
	contentID string
}

// batchItem is a top-level part of a $batch body: a single request or a
// change set.
type batchItem struct {
	single    *batchPart
	changeset []*batchPart
}

// serveBatch answers POST $batch. Parts run in order. A change set runs
// atomically: other writers wait while it runs, and a failure rolls back
// its completed operations and answers the change set with that one error.
// Processing stops at the first failure unless the client prefers
// odata.continue-on-error.
func (s *Server) serveBatch(w http.ResponseWriter, req *request, version string) error {
	if req.Method != http.MethodPost {
		return errMethodNotAllowed(req.Method)
	}
	if req.inBatch {
		return errBadQuery("A batch request cannot contain another batch request.")
	}
	mt, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return errBadQuery("The content type of a batch request must be multipart/mixed with a boundary parameter.")
	}
	data, err := readBody(w, req.Request)
	if err != nil {
		return err
	}
	items, err := parseBatch(data, params["boundary"])
	if err != nil {
		return err
	}

	boundary := "batchresponse_" + uuid.NewString()
	var out bytes.Buffer
	for _, it := range items {
		out.WriteString("--" + boundary + "\r\n")
		var ok bool
		if it.single != nil {
			ok = s.runSingle(&out, req, version, it.single)
		} else {
			ok = s.runChangeset(&out, req, version, it.changeset)
		}
		if !ok && !req.prefs.continueOnError {
			break
		}
	}
	out.WriteString("--" + boundary + "--\r\n")

	if req.prefs.continueOnError {
		w.Header().Set("Preference-Applied", "odata.continue-on-error")
	}
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+boundary)
	w.Header().Set("Content-Length", strconv.Itoa(out.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out.Bytes())
	return nil
}

// runSingle runs a request outside any change set and writes its response
// part; it reports whether the request succeeded.
func (s *Server) runSingle(out *bytes.Buffer, req *request, version string, p *batchPart) bool {
	rec := s.runPart(req, version, p, nil, false)
	writeResponsePart(out, rec, p.contentID)
	return rec.status < 400
}

// runChangeset runs the operations of a change set under the exclusive
// write lock with every table journaling, so that a failure can restore
// exactly the state before the change set. It writes either the change-set
// response (one part per operation) or the failed operation's response
// alone, and reports whether the change set was committed.
func (s *Server) runChangeset(out *bytes.Buffer, req *request, version string, parts []*batchPart) bool {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	j := &journal{}
	for _, ts := range s.tables {
		ts.undo = j
	}
	defer func() {
		for _, ts := range s.tables {
			ts.undo = nil
		}
	}()

	refs := map[string]string{}
	recs := make([]*partRecorder, 0, len(parts))
	for _, p := range parts {
		rec := s.runPart(req, version, p, refs, true)
		if rec.status >= 400 {
			j.rollback(0, true)
			writeResponsePart(out, rec, p.contentID)
			return false
		}
		if id := rec.header.Get("OData-EntityId"); id != "" && p.contentID != "" {
			refs[p.contentID] = id
		}
		recs = append(recs, rec)
	}

	s.hooks.enqueue(j.takeRuns())

	boundary := "changesetresponse_" + uuid.NewString()
	out.WriteString("Content-Type: multipart/mixed; boundary=" + boundary + "\r\n\r\n")
	for i, rec := range recs {
		out.WriteString("--" + boundary + "\r\n")
		writeResponsePart(out, rec, parts[i].contentID)
	}
	out.WriteString("--" + boundary + "--\r\n")
	return true
}

// runPart executes one inner request and records its response. refs maps
// the Content-IDs of earlier operations of the same change set to the URIs
// of the rows they wrote; "$n" in the request target and as a JSON string in
// the body stand for those URIs. locked tells whether the caller already
// holds the exclusive write lock.
func (s *Server) runPart(req *request, version string, p *batchPart, refs map[string]string, locked bool) *partRecorder {
	rec := &partRecorder{header: http.Header{"Odata-Version": {"4.0"}}}
	inner, err := s.innerRequest(req, version, p, refs)
	if err != nil {
		s.writeError(rec, req.Request, err)
		return rec
	}
	if err := s.route(rec, inner, true, locked); err != nil {
		s.writeError(rec, inner, err)
	}
	if loc := rec.header.Get("OData-EntityId"); loc != "" && rec.status < 300 {
		// Inside a batch, Dataverse answers a create with Location too.
		rec.header.Set("Location", loc)
	}
	return rec
}

// innerRequest builds the http.Request for a batch part: it resolves the
// target against the batch's service root and substitutes $n references.
func (s *Server) innerRequest(req *request, version string, p *batchPart, refs map[string]string) (*http.Request, error) {
	target, body := p.target, p.body
	if strings.HasPrefix(target, "$") {
		end := strings.IndexAny(target, "/?")
		if end < 0 {
			end = len(target)
		}
		uri, ok := refs[target[1:end]]
		if !ok {
			return nil, errBadQuery("The Content-ID reference '%s' does not name an earlier operation of the same change set.", target[:end])
		}
		target = uri + target[end:]
	}
	for id, uri := range refs {
		body = bytes.ReplaceAll(body, []byte(`"$`+id+`"`), []byte(strconv.Quote(uri)))
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, errBadQuery("The request URI '%s' in the batch is not valid.", p.target)
	}
	path := u.EscapedPath()
	if !u.IsAbs() && !strings.HasPrefix(path, "/") {
		path = "/api/data/" + version + "/" + path
	}
	r, err := http.NewRequestWithContext(req.Context(), p.method, "http://"+req.Host+path, bytes.NewReader(body))
	if err != nil {
		return nil, errBadQuery("The request '%s %s' in the batch is not valid.", p.method, p.target)
	}
	r.URL.RawQuery = u.RawQuery
	r.Host = req.Host
	r.TLS = req.TLS
	r.RemoteAddr = req.RemoteAddr
	r.Header = p.header
	r.Header.Set("Authorization", req.Header.Get("Authorization"))
	return r.WithContext(req.Context()), nil
}

// parseBatch splits a $batch body into its parts. Line ends may be CRLF or
// LF. It enforces the request limit and refuses GETs inside change sets
// before anything runs.
func parseBatch(data []byte, boundary string) ([]batchItem, error) {
	mr := multipart.NewReader(bytes.NewReader(data), boundary)
	var items []batchItem
	count := 0
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, errBadQuery("The batch request body is not a valid multipart/mixed message: %v", err)
		}
		mt, params, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch mt {
		case "application/http":
			p, err := parseRequestPart(part)
			if err != nil {
				return nil, err
			}
			items = append(items, batchItem{single: p})
			count++
		case "multipart/mixed":
			cs, err := parseChangeset(part, params["boundary"])
			if err != nil {
				return nil, err
			}
			if len(cs) > maxBatchRequests {
				return nil, errBadQuery("The current change set contains too many operations. A maximum number of '%d' operations are allowed in a change set.", maxBatchRequests)
			}
			items = append(items, batchItem{changeset: cs})
			count += len(cs)
		default:
			return nil, errBadQuery("The batch part has content type '%s'; expected application/http or multipart/mixed.", part.Header.Get("Content-Type"))
		}
		if count > maxBatchRequests {
			return nil, errBadQuery("The current batch message contains too many parts. Only batch messages with a maximum number of '%d' query operations, including changeset operations, are allowed.", maxBatchRequests)
		}
	}
	if len(items) == 0 {
		return nil, errBadQuery("The batch request body contains no parts.")
	}
	return items, nil
}

func parseChangeset(r io.Reader, boundary string) ([]*batchPart, error) {
	if boundary == "" {
		return nil, errBadQuery("A change set part must have a boundary parameter.")
	}
	mr := multipart.NewReader(r, boundary)
	var parts []*batchPart
	for {
		part, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return parts, nil
		}
		if err != nil {
			return nil, errBadQuery("The change set is not a valid multipart/mixed message: %v", err)
		}
		if mt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type")); mt != "application/http" {
			return nil, errBadQuery("A change set part has content type '%s'; expected application/http.", part.Header.Get("Content-Type"))
		}
		p, err := parseRequestPart(part)
		if err != nil {
			return nil, err
		}
		if p.method == http.MethodGet {
			return nil, errBadQuery("A change set cannot contain a GET request; send it outside the change set.")
		}
		parts = append(parts, p)
	}
}

// parseRequestPart reads an application/http part: a request line, headers,
// a blank line and the body.
func parseRequestPart(part *multipart.Part) (*batchPart, error) {
	tp := textproto.NewReader(bufio.NewReader(part))
	line, err := tp.ReadLine()
	for err == nil && strings.TrimSpace(line) == "" {
		line, err = tp.ReadLine()
	}
	if err != nil {
		return nil, errBadQuery("A batch part holds no request.")
	}
	fields := strings.Fields(line)
	if len(fields) != 3 || !strings.HasPrefix(fields[2], "HTTP/") {
		return nil, errBadQuery("The request line '%s' in the batch is not valid.", line)
	}
	hdr, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errBadQuery("The headers of the batch request '%s' are not valid.", line)
	}
	body, err := io.ReadAll(tp.R)
	if err != nil {
		return nil, errBadQuery("The body of the batch request '%s' cannot be read.", line)
	}
	p := &batchPart{
		method: strings.ToUpper(fields[0]),
		target: fields[1],
		header: http.Header(hdr),
		body:   bytes.TrimRight(body, "\r\n"),
	}
	p.contentID = strings.TrimSpace(part.Header.Get("Content-ID"))
	if p.contentID == "" {
		p.contentID = strings.TrimSpace(p.header.Get("Content-ID"))
	}
	return p, nil
}

// partRecorder is the http.ResponseWriter of an inner batch request.
type partRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *partRecorder) Header() http.Header { return r.header }

func (r *partRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *partRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

// responseHeaderOrder is the order Dataverse's batch parts show headers in;
// others follow sorted.
var responseHeaderOrder = []string{"Content-Type", "Odata-Version", "Location", "Odata-Entityid"}

// headerSpelling maps canonical header keys to the spelling Dataverse uses.
var headerSpelling = map[string]string{
	"Odata-Version": "OData-Version", "Odata-Entityid": "OData-EntityId", "Etag": "ETag",
}

// writeResponsePart writes an application/http response part.
func writeResponsePart(out *bytes.Buffer, rec *partRecorder, contentID string) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	out.WriteString("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n")
	if contentID != "" {
		out.WriteString("Content-ID: " + contentID + "\r\n")
	}
	fmt.Fprintf(out, "\r\nHTTP/1.1 %d %s\r\n", rec.status, http.StatusText(rec.status))
	names := make([]string, 0, len(rec.header))
	for name := range rec.header {
		if name != "Content-Length" {
			names = append(names, name)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		ia, ib := slices.Index(responseHeaderOrder, a), slices.Index(responseHeaderOrder, b)
		switch {
		case ia >= 0 && ib >= 0:
			return ia - ib
		case ia >= 0:
			return -1
		case ib >= 0:
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		display := name
		if d, ok := headerSpelling[name]; ok {
			display = d
		}
		for _, v := range rec.header[name] {
			out.WriteString(display + ": " + v + "\r\n")
		}
	}
	out.WriteString("\r\n")
	out.Write(rec.body.Bytes())
	out.WriteString("\r\n")
}
