package odataclient

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// WriteOptions are the per-request options of Create, Update, Upsert and
// Delete. The zero value sends a plain request.
type WriteOptions struct {
	// IfMatch makes the write conditional on the row's current ETag
	// (optimistic concurrency; a mismatch answers 412). "*" means "only if
	// the row exists". Update sends "*" when this is empty.
	IfMatch string
	// IfNoneMatch "*" makes an Upsert create-only: an existing row
	// answers 412.
	IfNoneMatch string
	// ReturnRepresentation asks for the written row in the answer
	// (Prefer: return=representation); it arrives in Result.Body.
	ReturnRepresentation bool
	// SuppressDuplicateDetection false turns the service's duplicate
	// detection on for this write (MSCRM.SuppressDuplicateDetection:
	// false); the Web API leaves it off by default, which nil keeps.
	SuppressDuplicateDetection *bool
	// BypassCustomPluginExecution skips custom synchronous plug-ins
	// (MSCRM.BypassCustomPluginExecution: true); the caller needs the
	// prvBypassCustomPlugins privilege.
	BypassCustomPluginExecution bool
	// BypassBusinessLogicExecution skips custom logic: "CustomSync",
	// "CustomAsync" or "CustomSync,CustomAsync"
	// (MSCRM.BypassBusinessLogicExecution).
	BypassBusinessLogicExecution string
	// Tag is passed to plug-ins as the shared variable "tag" (the ?tag=
	// URL parameter); dvsync uses it to recognise its own writes.
	Tag string
	// CallerObjectID impersonates the Entra user with this object id
	// (CallerObjectId header).
	CallerObjectID string
	// Headers are added to the request, replacing defaults of the same
	// name. Prefer values are appended to the client's own preferences.
	// Authorization cannot be overridden.
	Headers http.Header
}

// extraHeaders returns Headers plus the headers of the optional fields.
func (o *WriteOptions) extraHeaders() http.Header {
	h := make(http.Header, len(o.Headers)+4)
	for k, v := range o.Headers {
		h[http.CanonicalHeaderKey(k)] = v
	}
	if o.SuppressDuplicateDetection != nil {
		h.Set("MSCRM.SuppressDuplicateDetection", strconv.FormatBool(*o.SuppressDuplicateDetection))
	}
	if o.BypassCustomPluginExecution {
		h.Set("MSCRM.BypassCustomPluginExecution", "true")
	}
	if o.BypassBusinessLogicExecution != "" {
		h.Set("MSCRM.BypassBusinessLogicExecution", o.BypassBusinessLogicExecution)
	}
	if o.CallerObjectID != "" {
		h.Set("CallerObjectId", o.CallerObjectID)
	}
	return h
}

// withTag appends the tag parameter to the URL or path u.
func (o *WriteOptions) withTag(u string) string {
	if o.Tag == "" {
		return u
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "tag=" + string(appendEscaped(nil, []byte(o.Tag), keepInQuery))
}

// Result is a successful write.
type Result struct {
	// Status is the HTTP status: 204 for a plain write, 201 when a
	// ReturnRepresentation upsert created the row, 200 when it updated it.
	Status int
	// EntityID is the row's id taken from the OData-EntityId header (the
	// text between its parentheses). The service omits that header when a
	// representation is returned; EntityID is then empty.
	EntityID string
	// ETag is the row's new version from the ETag header, or from the
	// representation's @odata.etag; empty when the answer has neither.
	ETag string
	// Body is the returned representation; nil unless asked for.
	Body json.RawMessage
}

// Create inserts a row: POST to the entity set. body is the row's JSON
// object. Like every method taking a body, Create neither modifies body nor
// keeps a reference to it once it returns, so callers may reuse the buffer.
func (c *Client) Create(ctx context.Context, entitySet string, body []byte, o WriteOptions) (Result, error) {
	u, err := c.resourceURL(entitySet, nil, "")
	if err != nil {
		return Result{}, err
	}
	return c.write(ctx, http.MethodPost, u, body, o)
}

// Update changes an existing row: PATCH with If-Match "*" (or o.IfMatch),
// so a missing row answers 404 instead of being created. body holds only
// the attributes to change; every attribute it names counts as updated,
// even with an unchanged value.
func (c *Client) Update(ctx context.Context, entitySet string, key Key, body []byte, o WriteOptions) (Result, error) {
	u, err := c.resourceURL(entitySet, &key, "")
	if err != nil {
		return Result{}, err
	}
	if o.IfMatch == "" {
		o.IfMatch = "*"
	}
	return c.write(ctx, http.MethodPatch, u, body, o)
}

// Upsert creates the row if it is absent and updates it otherwise: PATCH
// without If-Match. Addressed by alternate key, key values in the URL win
// over the same attributes in body. A plain upsert answers 204 whether it
// created or updated; with ReturnRepresentation the Status tells (201 or
// 200). o.IfMatch or o.IfNoneMatch, when set, are sent and make it a
// conditional update or a create-only insert.
func (c *Client) Upsert(ctx context.Context, entitySet string, key Key, body []byte, o WriteOptions) (Result, error) {
	u, err := c.resourceURL(entitySet, &key, "")
	if err != nil {
		return Result{}, err
	}
	return c.write(ctx, http.MethodPatch, u, body, o)
}

// Delete removes a row. A missing row answers with an *Error whose
// StatusCode is 404 (see IsNotFound); callers that want idempotent deletes
// treat that as success. o.IfMatch makes the delete conditional.
func (c *Client) Delete(ctx context.Context, entitySet string, key Key, o WriteOptions) error {
	u, err := c.resourceURL(entitySet, &key, "")
	if err != nil {
		return err
	}
	_, err = c.do(ctx, &request{
		method:      http.MethodDelete,
		url:         o.withTag(u),
		ifMatch:     o.IfMatch,
		ifNoneMatch: o.IfNoneMatch,
		extra:       o.extraHeaders(),
	})
	return err
}

func (c *Client) write(ctx context.Context, method, u string, body []byte, o WriteOptions) (Result, error) {
	if body == nil {
		body = []byte{} // an empty body still needs its Content-Type
	}
	r := &request{
		method:      method,
		url:         o.withTag(u),
		body:        body,
		ifMatch:     o.IfMatch,
		ifNoneMatch: o.IfNoneMatch,
		extra:       o.extraHeaders(),
	}
	if o.ReturnRepresentation {
		r.prefer = []string{"return=representation"}
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return Result{}, err
	}
	res := Result{
		Status:   resp.status,
		EntityID: entityIDFromURI(resp.header.Get("OData-EntityId")),
		ETag:     resp.header.Get("ETag"),
	}
	if len(resp.body) > 0 {
		res.Body = resp.body
		if res.ETag == "" {
			res.ETag = bodyETag(resp.body)
		}
	}
	return res, nil
}

// entityIDFromURI returns what is between the last pair of parentheses of
// an OData-EntityId such as https://org/api/data/v9.2/accounts(7eb6…d1).
func entityIDFromURI(uri string) string {
	if !strings.HasSuffix(uri, ")") {
		return ""
	}
	i := strings.LastIndexByte(uri, '(')
	if i < 0 {
		return ""
	}
	return uri[i+1 : len(uri)-1]
}

// bodyETag returns the @odata.etag of a JSON row, or "".
func bodyETag(body []byte) string {
	var row struct {
		ETag string `json:"@odata.etag"`
	}
	if json.Unmarshal(body, &row) != nil {
		return ""
	}
	return row.ETag
}
