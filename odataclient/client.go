package odataclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultAPIVersion is the Web API version used when Options.APIVersion is
// empty.
const DefaultAPIVersion = "v9.2"

// Options configures a Client.
type Options struct {
	// BaseURL is the organization URI without the /api/data suffix, for
	// example https://contoso.crm.dynamics.com or http://127.0.0.1:PORT for
	// the emulator. A path prefix is kept (for a reverse proxy); a query,
	// fragment or user info is rejected.
	BaseURL string
	// APIVersion is the Web API version segment, "v9.2" when empty.
	APIVersion string
	// Tokens supplies the bearer token for every request. Nil sends no
	// Authorization header.
	Tokens TokenSource
	// HTTPClient sends the requests. Nil selects a client tuned for many
	// parallel requests to one host (see New). A caller-supplied client
	// should have no cookie jar, or it pins every request to one of the
	// service's web servers.
	HTTPClient *http.Client
	// UserAgent is sent as User-Agent; "dvsync-odataclient" when empty.
	UserAgent string
}

// Client sends Web API requests to one organization. It is safe for
// concurrent use; its zero value is not usable, call New.
type Client struct {
	api       *url.URL // organization URI + /api/data/<version>/
	apiString string
	tokens    TokenSource
	http      *http.Client
	userAgent string
	dopHint   atomic.Int64
}

// New validates opts and returns a Client. It makes no request.
//
// When opts.HTTPClient is nil the client keeps up to 64 idle keep-alive
// connections to the host (the service allows 52 concurrent requests per
// user by default), bounds dialing, TLS handshakes and the wait for
// response headers, and keeps no cookies. Callers bound each whole request
// with its context.
func New(opts Options) (*Client, error) {
	base, err := url.Parse(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("odataclient: invalid BaseURL: %w", err)
	}
	switch {
	case base.Scheme != "http" && base.Scheme != "https":
		return nil, fmt.Errorf("odataclient: BaseURL %q: scheme must be http or https", opts.BaseURL)
	case base.Host == "":
		return nil, fmt.Errorf("odataclient: BaseURL %q has no host", opts.BaseURL)
	case base.User != nil:
		// Credentials in the URL would end up in every error message.
		return nil, errors.New("odataclient: BaseURL must not contain user info; use Options.Tokens")
	case base.RawQuery != "" || base.Fragment != "":
		return nil, fmt.Errorf("odataclient: BaseURL %q must not have a query or fragment", opts.BaseURL)
	}
	version := opts.APIVersion
	if version == "" {
		version = DefaultAPIVersion
	}
	if !validVersion(version) {
		return nil, fmt.Errorf("odataclient: APIVersion %q is not of the form v9.2", version)
	}
	api := base.JoinPath("api", "data", version)
	api.Path += "/"
	api.RawPath = ""

	c := &Client{
		api:       api,
		apiString: api.String(),
		tokens:    opts.Tokens,
		http:      opts.HTTPClient,
		userAgent: opts.UserAgent,
	}
	if c.http == nil {
		c.http = defaultHTTPClient()
	}
	if c.userAgent == "" {
		c.userAgent = "dvsync-odataclient"
	}
	return c, nil
}

func validVersion(v string) bool {
	if len(v) < 2 || v[0] != 'v' {
		return false
	}
	for _, r := range v[1:] {
		if (r < '0' || r > '9') && r != '.' {
			return false
		}
	}
	return true
}

func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 10 * time.Second
	// Generous: a bulk write of a thousand rows can legitimately take
	// minutes, and the caller's context is the real bound.
	t.ResponseHeaderTimeout = 5 * time.Minute
	// Room for a whole bulk request of the usual size, headers and body:
	// with the default 4 KiB, net/http writes the first 4 KiB, then
	// copies the rest of each body through a buffer allocated for it.
	t.WriteBufferSize = 64 << 10
	return &http.Client{Transport: t}
}

// APIURL returns the Web API root, e.g. https://org.crm.dynamics.com/api/data/v9.2/.
func (c *Client) APIURL() string { return c.apiString }

// DOPHint returns the degree of parallelism the service last recommended
// in an x-ms-dop-hint answer header, or 0 before any answer carried one.
func (c *Client) DOPHint() int { return int(c.dopHint.Load()) }

// CloseIdleConnections closes keep-alive connections that are not in use.
// Requests made afterwards open new ones, so it is safe at any time.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// request is one Web API call, described before it is sent.
type request struct {
	method string
	url    string // absolute
	body   []byte // nil: no body
	// own says body was built for this request and nothing else holds
	// it, so that it can be lent to net/http without a copy (see lend).
	own bool
	// Conditional and preference headers; empty means absent.
	ifMatch     string
	ifNoneMatch string
	prefer      []string
	extra       http.Header
}

// response is a successful (2xx) answer with its body read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// maxErrorBody bounds how much of a non-2xx body is read: Dataverse error
// bodies are small, a misbehaving proxy's may not be.
const maxErrorBody = 1 << 20

// do sends r and reads the whole answer, so that the connection goes back
// to the pool. Non-2xx answers become *Error; transport failures are
// wrapped with the method and path.
//
// A 401 answer when the token source is a TokenInvalidator makes do drop
// the token and send r once more with a fresh one: a token can be revoked
// or expire early (clock skew) while cached. A second 401 is returned, and
// then means the credentials themselves are refused.
func (c *Client) do(ctx context.Context, r *request) (response, error) {
	resp, tok, err := c.doOnce(ctx, r)
	inv, ok := c.tokens.(TokenInvalidator)
	var e *Error
	if !ok || tok == "" || !errors.As(err, &e) || e.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	inv.Invalidate(tok)
	resp, _, err = c.doOnce(ctx, r)
	return resp, err
}

// doOnce sends r once and returns the answer and the bearer token it sent.
func (c *Client) doOnce(ctx context.Context, r *request) (response, string, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, nil)
	if err != nil {
		return response{}, "", fmt.Errorf("odataclient: %s %s: %w", r.method, r.url, err)
	}
	switch {
	case len(r.body) > 0:
		body := r.lend()
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	case r.body != nil:
		req.Body = http.NoBody
		req.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
	}
	h := req.Header
	h.Set("Accept", "application/json")
	h.Set("OData-MaxVersion", "4.0")
	h.Set("OData-Version", "4.0")
	h.Set("User-Agent", c.userAgent)
	if r.method == http.MethodGet {
		// Advised by the docs to defeat caching of expanded collections.
		h.Set("If-None-Match", "null")
	}
	if r.body != nil {
		h.Set("Content-Type", "application/json")
	}
	if r.ifMatch != "" {
		h.Set("If-Match", r.ifMatch)
	}
	if r.ifNoneMatch != "" {
		h.Set("If-None-Match", r.ifNoneMatch)
	}
	prefer := r.prefer
	for k, vs := range r.extra {
		if http.CanonicalHeaderKey(k) == "Prefer" {
			prefer = append(prefer[:len(prefer):len(prefer)], vs...)
			continue
		}
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if len(prefer) > 0 {
		h.Set("Prefer", strings.Join(prefer, ","))
	}
	var tok string
	if c.tokens != nil {
		tok, err = c.tokens.Token(ctx)
		if err != nil {
			return response{}, "", fmt.Errorf("odataclient: %s %s: token: %w", r.method, req.URL.EscapedPath(), err)
		}
		h.Set("Authorization", "Bearer "+tok)
	}

	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error repeats method and full URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return response{}, "", fmt.Errorf("odataclient: %s %s: %w", r.method, req.URL.EscapedPath(), err)
	}
	defer resp.Body.Close()
	if v := resp.Header.Get("x-ms-dop-hint"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			c.dopHint.Store(int64(n))
		}
	}

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return response{}, tok, newError(r.method, req.URL, resp, b)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, "", fmt.Errorf("odataclient: %s %s: reading response: %w", r.method, req.URL.EscapedPath(), err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, tok, nil
}

// resourceURL returns the absolute URL of an entity set, or of one row of
// it when key is non-nil, with query appended when not empty.
func (c *Client) resourceURL(entitySet string, key *Key, query string) (string, error) {
	if err := checkName("entity set", entitySet); err != nil {
		return "", err
	}
	b := make([]byte, 0, len(c.apiString)+len(entitySet)+64+len(query))
	b = append(b, c.apiString...)
	b = append(b, entitySet...)
	if key != nil {
		seg, err := key.appendTo(nil)
		if err != nil {
			return "", err
		}
		b = append(b, '(')
		b = appendEscaped(b, seg, keepInPath)
		b = append(b, ')')
	}
	if query != "" {
		b = append(b, '?')
		b = append(b, query...)
	}
	return string(b), nil
}

// checkName accepts OData identifiers as Dataverse names them: letters,
// digits and underscores, with dots for qualified names. Anything else
// could change the meaning of the URL.
func checkName(what, s string) error {
	if s == "" {
		return fmt.Errorf("odataclient: empty %s name", what)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '_' && c != '.' {
			return fmt.Errorf("odataclient: invalid %s name %q", what, s)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// keepInPath reports the bytes left as they are inside a path segment:
// RFC 3986 pchar minus '+' and '&', which some servers decode specially.
func keepInPath(c byte) bool {
	if isAlnum(c) {
		return true
	}
	return strings.IndexByte("-._~!$'()*,;=:@", c) >= 0
}

// keepInQuery reports the bytes left as they are inside a query value.
// '&', '=', '+' and '#' must be escaped; OData syntax characters stay
// readable.
func keepInQuery(c byte) bool {
	if isAlnum(c) {
		return true
	}
	return strings.IndexByte("-._~!$'()*,;:@/", c) >= 0
}

func appendEscaped(dst, s []byte, keep func(byte) bool) []byte {
	const hex = "0123456789ABCDEF"
	for _, c := range s {
		if keep(c) {
			dst = append(dst, c)
			continue
		}
		dst = append(dst, '%', hex[c>>4], hex[c&15])
	}
	return dst
}

// parseRetryAfter reads a Retry-After header: delay-seconds, as Dataverse
// sends it, or an HTTP date. Anything else, or a time in the past, is zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		// A day is already absurd; the cap keeps a hostile value from
		// overflowing time.Duration.
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
