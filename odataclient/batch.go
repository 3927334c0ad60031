package odataclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// MaxBatchRequests is the most requests the service accepts in one $batch.
const MaxBatchRequests = 1000

// ErrNotExecuted is the Err of a batch request the service did not run:
// an earlier request failed and the batch was sent without
// BatchOptions.ContinueOnError, or the answer ended before reaching it.
var ErrNotExecuted = errors.New("odataclient: batch request not executed")

// BatchRequest is one request inside a $batch. Build it with CreateRequest,
// UpdateRequest, UpsertRequest or DeleteRequest, or fill it in by hand.
type BatchRequest struct {
	// Method is POST, PATCH, PUT, DELETE, or GET (outside change sets only).
	Method string
	// Path is the resource relative to the Web API root, already escaped
	// ("accounts(accountnumber='A1')"), or a Content-ID reference ("$1")
	// to a row created earlier in the same change set.
	Path string
	// Body is the JSON body; nil sends none.
	Body []byte
	// Header holds extra headers of this request (If-Match, Prefer, …).
	Header http.Header
	// ContentID names the request inside its change set so that later
	// requests of the same change set can refer to it as "$<ContentID>".
	// Only meaningful in a change set.
	ContentID string
}

// BatchPart is one part of a $batch: a single request, or a change set
// whose requests the service runs as one transaction (all or nothing).
type BatchPart struct {
	// Request is the part's request when ChangeSet is empty.
	Request BatchRequest
	// ChangeSet, when not empty, makes the part a change set of these
	// requests, run in order and rolled back together if one fails.
	ChangeSet []BatchRequest
}

// BatchOptions are the options of Batch.
type BatchOptions struct {
	// ContinueOnError asks the service to run the remaining parts after
	// one fails (Prefer: odata.continue-on-error). Without it the service
	// stops at the first failure and the rest are ErrNotExecuted.
	ContinueOnError bool
	// Headers are added to the outer $batch request, as in WriteOptions.
	Headers http.Header
}

// BatchResponse is the answer to one BatchRequest.
type BatchResponse struct {
	// Status is the request's HTTP status; zero when Err is ErrNotExecuted.
	Status int
	// Header holds the request's response headers.
	Header http.Header
	// Body is the request's response body, if any.
	Body []byte
	// EntityID is the id in OData-EntityId, set for creates and upserts.
	EntityID string
	// Err is nil for a 2xx status, an *Error for any other status (in a
	// failed change set, every request carries the change set's error),
	// or ErrNotExecuted.
	Err error
}

// CreateRequest returns the batch request that Create would send.
func CreateRequest(entitySet string, body []byte, o WriteOptions) (BatchRequest, error) {
	if err := checkName("entity set", entitySet); err != nil {
		return BatchRequest{}, err
	}
	return writeRequest(http.MethodPost, entitySet, body, o), nil
}

// UpdateRequest returns the batch request that Update would send.
func UpdateRequest(entitySet string, key Key, body []byte, o WriteOptions) (BatchRequest, error) {
	if o.IfMatch == "" {
		o.IfMatch = "*"
	}
	return keyedRequest(http.MethodPatch, entitySet, key, body, o)
}

// UpsertRequest returns the batch request that Upsert would send.
func UpsertRequest(entitySet string, key Key, body []byte, o WriteOptions) (BatchRequest, error) {
	return keyedRequest(http.MethodPatch, entitySet, key, body, o)
}

// DeleteRequest returns the batch request that Delete would send.
func DeleteRequest(entitySet string, key Key, o WriteOptions) (BatchRequest, error) {
	return keyedRequest(http.MethodDelete, entitySet, key, nil, o)
}

func keyedRequest(method, entitySet string, key Key, body []byte, o WriteOptions) (BatchRequest, error) {
	p, err := rowPath(entitySet, key)
	if err != nil {
		return BatchRequest{}, err
	}
	return writeRequest(method, p, body, o), nil
}

// rowPath returns "set(key)" escaped for a URL path.
func rowPath(entitySet string, key Key) (string, error) {
	if err := checkName("entity set", entitySet); err != nil {
		return "", err
	}
	seg, err := key.appendTo(nil)
	if err != nil {
		return "", err
	}
	b := make([]byte, 0, len(entitySet)+len(seg)+8)
	b = append(b, entitySet...)
	b = append(b, '(')
	b = appendEscaped(b, seg, keepInPath)
	return string(append(b, ')')), nil
}

func writeRequest(method, path string, body []byte, o WriteOptions) BatchRequest {
	r := BatchRequest{Method: method, Path: o.withTag(path), Header: o.header()}
	if method != http.MethodDelete {
		// Copied: the caller may reuse its buffer once the request is built.
		r.Body = append(make([]byte, 0, len(body)), body...)
	}
	return r
}

// Batch sends parts as one $batch request and returns one BatchResponse
// per request, in the order of the requests in parts (a change set's
// requests in turn), whatever the outcome of each.
//
// The error is non-nil only when the batch as a whole failed: it could not
// be sent, the service rejected it (an *Error, e.g. 429 throttling), or its
// answer could not be read. Then nothing can be said about any single
// request; upserts and deletes may be sent again safely.
func (c *Client) Batch(ctx context.Context, parts []BatchPart, o BatchOptions) ([]BatchResponse, error) {
	n := 0
	for _, p := range parts {
		if len(p.ChangeSet) > 0 {
			n += len(p.ChangeSet)
		} else {
			n++
		}
	}
	switch {
	case n == 0:
		return nil, nil
	case n > MaxBatchRequests:
		return nil, fmt.Errorf("odataclient: $batch of %d requests exceeds %d", n, MaxBatchRequests)
	}
	boundary := "batch_" + randomID()
	body, err := c.encodeBatch(parts, boundary)
	if err != nil {
		return nil, err
	}
	extra := make(http.Header, len(o.Headers)+1)
	for k, v := range o.Headers {
		extra[http.CanonicalHeaderKey(k)] = v
	}
	extra.Set("Content-Type", "multipart/mixed;boundary="+boundary)
	r := &request{method: http.MethodPost, url: c.apiString + "$batch", body: body, own: true, extra: extra}
	if o.ContinueOnError {
		r.prefer = []string{"odata.continue-on-error"}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	out, err := c.decodeBatch(resp.header.Get("Content-Type"), resp.body, parts, n)
	if err != nil {
		return nil, fmt.Errorf("odataclient: POST %s$batch: %w", c.api.EscapedPath(), err)
	}
	return out, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *Client) encodeBatch(parts []BatchPart, boundary string) ([]byte, error) {
	var b bytes.Buffer
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n")
		if len(p.ChangeSet) == 0 {
			if err := c.encodeRequest(&b, &p.Request, false); err != nil {
				return nil, err
			}
			continue
		}
		cs := "changeset_" + randomID()
		b.WriteString("Content-Type: multipart/mixed;boundary=" + cs + "\r\n\r\n")
		for i := range p.ChangeSet {
			b.WriteString("--" + cs + "\r\n")
			if err := c.encodeRequest(&b, &p.ChangeSet[i], true); err != nil {
				return nil, err
			}
		}
		b.WriteString("--" + cs + "--\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes(), nil
}

func (c *Client) encodeRequest(b *bytes.Buffer, r *BatchRequest, inChangeSet bool) error {
	switch {
	case r.Method == "" || strings.ContainsAny(r.Method, " \r\n"):
		return fmt.Errorf("odataclient: batch request method %q", r.Method)
	case r.Path == "" || strings.ContainsAny(r.Path, " \r\n"):
		return fmt.Errorf("odataclient: batch request path %q", r.Path)
	case inChangeSet && r.Method == http.MethodGet:
		return errors.New("odataclient: GET is not allowed in a change set")
	}
	b.WriteString("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n")
	if inChangeSet && r.ContentID != "" {
		b.WriteString("Content-ID: " + r.ContentID + "\r\n")
	}
	b.WriteString("\r\n")
	target := r.Path
	if !strings.HasPrefix(target, "$") {
		target = c.apiString + target
	}
	b.WriteString(r.Method + " " + target + " HTTP/1.1\r\n")
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.ContainsAny(k+v, "\r\n") {
				return fmt.Errorf("odataclient: batch request header %q has a line break", k)
			}
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	if r.Body != nil {
		b.WriteString("Content-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(r.Body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(r.Body)
	b.WriteString("\r\n")
	return nil
}

// decodeBatch maps the multipart answer back to the n requests of parts.
// A failed change set is answered by one application/http part in place
// of the change set's multipart; its error is given to each of its
// requests.
func (c *Client) decodeBatch(contentType string, body []byte, parts []BatchPart, n int) ([]BatchResponse, error) {
	out := make([]BatchResponse, n)
	for i := range out {
		out[i].Err = ErrNotExecuted
	}
	mr, err := multipartReader(contentType, body)
	if err != nil {
		return nil, err
	}
	idx := 0
	for _, p := range parts {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break // the service stopped at a failure
		}
		if err != nil {
			return nil, fmt.Errorf("reading batch answer: %w", err)
		}
		size := max(1, len(p.ChangeSet))
		ct := part.Header.Get("Content-Type")
		if len(p.ChangeSet) > 0 && strings.HasPrefix(ct, "multipart/") {
			inner, err := io.ReadAll(part)
			if err != nil {
				return nil, fmt.Errorf("reading change set answer: %w", err)
			}
			if err := c.decodeChangeSet(ct, inner, p.ChangeSet, out[idx:idx+size]); err != nil {
				return nil, err
			}
		} else {
			first := &p.Request
			if len(p.ChangeSet) > 0 {
				first = &p.ChangeSet[0]
			}
			r, err := c.readHTTPPart(part, first)
			if err != nil {
				return nil, err
			}
			if len(p.ChangeSet) > 0 && r.Err == nil {
				return nil, fmt.Errorf("change set answered by one %d part", r.Status)
			}
			for i := idx; i < idx+size; i++ {
				out[i] = r
			}
		}
		idx += size
	}
	return out, nil
}

func (c *Client) decodeChangeSet(contentType string, body []byte, reqs []BatchRequest, out []BatchResponse) error {
	mr, err := multipartReader(contentType, body)
	if err != nil {
		return err
	}
	byID := make(map[string]int, len(reqs))
	for i, r := range reqs {
		if r.ContentID != "" {
			byID[r.ContentID] = i
		}
	}
	for seq := 0; ; seq++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading change set answer: %w", err)
		}
		// Content-ID is echoed on each answer; answers without one come
		// back in request order.
		i, ok := byID[part.Header.Get("Content-ID")]
		if !ok {
			i = seq
		}
		if i >= len(out) {
			return fmt.Errorf("change set of %d requests has more answers", len(out))
		}
		if out[i], err = c.readHTTPPart(part, &reqs[i]); err != nil {
			return err
		}
	}
}

func multipartReader(contentType string, body []byte) (*multipart.Reader, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
		return nil, fmt.Errorf("answer Content-Type %q is not multipart", contentType)
	}
	return multipart.NewReader(bytes.NewReader(body), params["boundary"]), nil
}

// readHTTPPart decodes one application/http part: status line, headers,
// body. req is the request it answers, named in an *Error.
func (c *Client) readHTTPPart(part *multipart.Part, req *BatchRequest) (BatchResponse, error) {
	resp, err := http.ReadResponse(bufio.NewReader(part), nil)
	if err != nil {
		return BatchResponse{}, fmt.Errorf("reading batch response part: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return BatchResponse{}, fmt.Errorf("reading batch response part: %w", err)
	}
	b = bytes.TrimRight(b, "\r\n")
	r := BatchResponse{
		Status:   resp.StatusCode,
		Header:   resp.Header,
		EntityID: entityIDFromURI(resp.Header.Get("OData-EntityId")),
	}
	if len(b) > 0 {
		r.Body = b
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		u, err := url.Parse(c.apiString + req.Path)
		if err != nil {
			u = c.api
		}
		r.Err = newError(req.Method, u, resp, b)
	}
	return r, nil
}

// header returns the request headers o asks for.
func (o *WriteOptions) header() http.Header {
	h := o.extraHeaders()
	if o.IfMatch != "" {
		h.Set("If-Match", o.IfMatch)
	}
	if o.IfNoneMatch != "" {
		h.Set("If-None-Match", o.IfNoneMatch)
	}
	if o.ReturnRepresentation {
		h.Add("Prefer", "return=representation")
	}
	return h
}
