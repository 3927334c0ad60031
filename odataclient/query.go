package odataclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Query holds the OData query options of Retrieve and List. Zero fields
// are left out of the request. Values are percent-encoded by the Client;
// write them as OData syntax ("name eq 'A'"), not pre-encoded.
type Query struct {
	// Select lists the attributes to return ($select). The primary key is
	// always returned. Empty returns every attribute, which the service
	// documents as costly.
	Select []string
	// Filter is a $filter expression.
	Filter string
	// OrderBy is a $orderby expression, e.g. "createdon asc,name desc".
	OrderBy string
	// Top limits the number of rows ($top). The service ignores
	// MaxPageSize when Top is set.
	Top int
	// MaxPageSize asks for at most this many rows per page
	// (Prefer: odata.maxpagesize); the service's default and maximum is
	// 5000.
	MaxPageSize int
	// Count asks for the total number of matching rows ($count=true),
	// which the service counts up to 5000.
	Count bool
	// IncludeAnnotations asks for instance annotations
	// (Prefer: odata.include-annotations="…"), e.g. "*" or
	// "OData.Community.Display.V1.FormattedValue".
	IncludeAnnotations string
}

func (q *Query) encode() string {
	var b []byte
	add := func(name, value string) {
		if len(b) > 0 {
			b = append(b, '&')
		}
		b = append(b, name...)
		b = append(b, '=')
		b = appendEscaped(b, []byte(value), keepInQuery)
	}
	if len(q.Select) > 0 {
		add("$select", strings.Join(q.Select, ","))
	}
	if q.Filter != "" {
		add("$filter", q.Filter)
	}
	if q.OrderBy != "" {
		add("$orderby", q.OrderBy)
	}
	if q.Top > 0 {
		add("$top", strconv.Itoa(q.Top))
	}
	if q.Count {
		add("$count", "true")
	}
	return string(b)
}

func (q *Query) prefer() []string {
	var p []string
	if q.MaxPageSize > 0 {
		p = append(p, "odata.maxpagesize="+strconv.Itoa(q.MaxPageSize))
	}
	if q.IncludeAnnotations != "" {
		p = append(p, `odata.include-annotations="`+q.IncludeAnnotations+`"`)
	}
	return p
}

// Retrieve reads one row. It returns the row's JSON object as the service
// sent it (with @odata.context and @odata.etag) and its ETag. A missing row
// is an *Error with StatusCode 404. Only q.Select and q.IncludeAnnotations
// are meaningful for a single row.
func (c *Client) Retrieve(ctx context.Context, entitySet string, key Key, q Query) (json.RawMessage, string, error) {
	u, err := c.resourceURL(entitySet, &key, q.encode())
	if err != nil {
		return nil, "", err
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, url: u, prefer: q.prefer()})
	if err != nil {
		return nil, "", err
	}
	etag := bodyETag(resp.body)
	if etag == "" {
		etag = resp.header.Get("ETag")
	}
	return resp.body, etag, nil
}

// Page is one page of a collection query.
type Page struct {
	// Rows are the page's rows as JSON objects, in the service's order.
	Rows []json.RawMessage
	// NextLink is the @odata.nextLink to follow for the next page; empty
	// on the last page.
	NextLink string
	// Count is @odata.count: the number of matching rows when the query
	// asked for it, -1 otherwise.
	Count int
	// MaxPageSize is the page size the query asked for; Next asks for it
	// again, as the service requires.
	MaxPageSize int
	// annotations is the query's include-annotations preference, which
	// Next also repeats.
	annotations string
}

// List runs a query on an entity set and returns the first page. Follow
// Page.NextLink with Next (or NextPage) for the rest.
func (c *Client) List(ctx context.Context, entitySet string, q Query) (Page, error) {
	u, err := c.resourceURL(entitySet, nil, q.encode())
	if err != nil {
		return Page{}, err
	}
	p, err := c.page(ctx, u, q.prefer())
	p.MaxPageSize = q.MaxPageSize
	p.annotations = q.IncludeAnnotations
	return p, err
}

// Next fetches the page after p, sending p's page-size and annotation
// preferences again. It returns an error if p is the last page.
func (c *Client) Next(ctx context.Context, p Page) (Page, error) {
	if p.NextLink == "" {
		return Page{}, fmt.Errorf("odataclient: no next page")
	}
	q := Query{MaxPageSize: p.MaxPageSize, IncludeAnnotations: p.annotations}
	u, err := c.sameOrigin(p.NextLink)
	if err != nil {
		return Page{}, err
	}
	np, err := c.page(ctx, u, q.prefer())
	np.MaxPageSize = p.MaxPageSize
	np.annotations = p.annotations
	return np, err
}

// NextPage follows an @odata.nextLink verbatim, without preferences: the
// service then applies its default page size. Prefer Next, which repeats
// the query's page size. The link must point at the Client's own host, so
// the bearer token is never sent elsewhere.
func (c *Client) NextPage(ctx context.Context, nextLink string) (Page, error) {
	u, err := c.sameOrigin(nextLink)
	if err != nil {
		return Page{}, err
	}
	return c.page(ctx, u, nil)
}

// sameOrigin resolves a link against the API root and checks that it
// stays on the same scheme and host.
func (c *Client) sameOrigin(link string) (string, error) {
	ref, err := url.Parse(link)
	if err != nil {
		return "", fmt.Errorf("odataclient: invalid next link: %w", err)
	}
	u := c.api.ResolveReference(ref)
	if u.Scheme != c.api.Scheme || !strings.EqualFold(u.Host, c.api.Host) || u.User != nil {
		return "", fmt.Errorf("odataclient: next link points to %s://%s, not the organization %s", u.Scheme, u.Host, c.api.Host)
	}
	if ref.IsAbs() {
		// Used verbatim, as the service requires: no re-encoding.
		return link, nil
	}
	return u.String(), nil
}

func (c *Client) page(ctx context.Context, u string, prefer []string) (Page, error) {
	resp, err := c.do(ctx, &request{method: http.MethodGet, url: u, prefer: prefer})
	if err != nil {
		return Page{Count: -1}, err
	}
	var doc struct {
		Value    []json.RawMessage `json:"value"`
		NextLink string            `json:"@odata.nextLink"`
		Count    *int              `json:"@odata.count"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		return Page{Count: -1}, fmt.Errorf("odataclient: GET %s: decoding collection: %w", pathOf(u), err)
	}
	p := Page{Rows: doc.Value, NextLink: doc.NextLink, Count: -1}
	if doc.Count != nil {
		p.Count = *doc.Count
	}
	return p, nil
}

// EntityDefinition is the part of a table's metadata needed to address its
// rows.
type EntityDefinition struct {
	// LogicalName is the table's logical name, e.g. "account".
	LogicalName string
	// EntitySetName is the URL segment of its rows, e.g. "accounts". It is
	// not derivable from LogicalName by any pluralisation rule.
	EntitySetName string
	// PrimaryIdAttribute is the primary key attribute, e.g. "accountid".
	PrimaryIdAttribute string
	// PrimaryNameAttribute is the primary name attribute, e.g. "name".
	PrimaryNameAttribute string
}

// EntityDefinition reads a table's definition by logical name. An unknown
// table is an *Error with StatusCode 404.
func (c *Client) EntityDefinition(ctx context.Context, logicalName string) (EntityDefinition, error) {
	key := Key{Alternate: []KeyPart{{Name: "LogicalName", Value: logicalName}}}
	q := Query{Select: []string{"LogicalName", "EntitySetName", "PrimaryIdAttribute", "PrimaryNameAttribute"}}
	u, err := c.resourceURL("EntityDefinitions", &key, q.encode())
	if err != nil {
		return EntityDefinition{}, err
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, url: u})
	if err != nil {
		return EntityDefinition{}, err
	}
	// The documentation shows the definition both as a single entity and
	// wrapped in a one-element "value" array; accept either.
	var doc struct {
		EntityDefinition
		Value []EntityDefinition `json:"value"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		return EntityDefinition{}, fmt.Errorf("odataclient: GET %s: decoding entity definition: %w", pathOf(u), err)
	}
	def := doc.EntityDefinition
	if len(doc.Value) > 0 {
		def = doc.Value[0]
	}
	if def.EntitySetName == "" {
		return EntityDefinition{}, fmt.Errorf("odataclient: GET %s: entity definition of %q has no EntitySetName", pathOf(u), logicalName)
	}
	return def, nil
}

func pathOf(u string) string {
	if pu, err := url.Parse(u); err == nil {
		return pu.EscapedPath()
	}
	return u
}
