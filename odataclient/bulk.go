package odataclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// BulkTarget is one row of a bulk message.
type BulkTarget struct {
	// Key, when set, addresses the row: it becomes the target's
	// "@odata.id" (entityset(key)), which UpsertMultiple needs to match
	// rows by alternate key and UpdateMultiple accepts instead of the
	// primary id column.
	Key *Key
	// Body is the row's JSON object, without @odata.type.
	Body []byte
}

// CreateMultiple inserts rows of one table in one transaction and returns
// their ids in order. logicalName is the table's logical name, written into
// each target's @odata.type as the message requires.
//
// Bulk messages on standard tables are all or nothing: any failing row
// fails the call and no row is written. Tables that do not support the
// message answer an error for which IsBulkUnsupported is true.
func (c *Client) CreateMultiple(ctx context.Context, entitySet, logicalName string, targets []BulkTarget, o WriteOptions) ([]string, error) {
	resp, err := c.bulk(ctx, "CreateMultiple", entitySet, logicalName, targets, o)
	if err != nil {
		return nil, err
	}
	var doc struct {
		IDs []string `json:"Ids"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		return nil, fmt.Errorf("odataclient: CreateMultiple %s: decoding answer: %w", entitySet, err)
	}
	return doc.IDs, nil
}

// UpdateMultiple updates existing rows of one table in one transaction.
// Each target holds its primary id column or a Key. See CreateMultiple for
// the failure semantics.
func (c *Client) UpdateMultiple(ctx context.Context, entitySet, logicalName string, targets []BulkTarget, o WriteOptions) error {
	_, err := c.bulk(ctx, "UpdateMultiple", entitySet, logicalName, targets, o)
	return err
}

// UpsertMultiple creates or updates rows of one table in one transaction,
// each matched by its Key (usually an alternate key). See CreateMultiple
// for the failure semantics.
func (c *Client) UpsertMultiple(ctx context.Context, entitySet, logicalName string, targets []BulkTarget, o WriteOptions) error {
	_, err := c.bulk(ctx, "UpsertMultiple", entitySet, logicalName, targets, o)
	return err
}

// DeleteMultiple deletes rows of one table. The service implements it for
// elastic tables only; standard tables answer an error for which
// IsBulkUnsupported is true.
func (c *Client) DeleteMultiple(ctx context.Context, entitySet, logicalName string, targets []BulkTarget, o WriteOptions) error {
	_, err := c.bulk(ctx, "DeleteMultiple", entitySet, logicalName, targets, o)
	return err
}

func (c *Client) bulk(ctx context.Context, message, entitySet, logicalName string, targets []BulkTarget, o WriteOptions) (response, error) {
	if err := checkName("table", logicalName); err != nil {
		return response{}, err
	}
	if len(targets) == 0 {
		return response{}, fmt.Errorf("odataclient: %s of no rows", message)
	}
	u, err := c.resourceURL(entitySet, nil, "")
	if err != nil {
		return response{}, err
	}
	u += "/Microsoft.Dynamics.CRM." + message
	body, err := encodeTargets(entitySet, logicalName, targets)
	if err != nil {
		return response{}, fmt.Errorf("odataclient: %s %s: %w", message, entitySet, err)
	}
	return c.do(ctx, &request{
		method:      http.MethodPost,
		url:         o.withTag(u),
		body:        body,
		own:         true,
		ifMatch:     o.IfMatch,
		ifNoneMatch: o.IfNoneMatch,
		extra:       o.extraHeaders(),
	})
}

// encodeTargets writes {"Targets":[…]}, splicing @odata.type and
// @odata.id in front of each target's own members.
func encodeTargets(entitySet, logicalName string, targets []BulkTarget) ([]byte, error) {
	size := 16
	for _, t := range targets {
		size += len(t.Body) + len(logicalName) + 96
	}
	b := make([]byte, 0, size)
	var seg []byte // a target's key segment, reused
	b = append(b, `{"Targets":[`...)
	for i, t := range targets {
		body := bytes.TrimSpace(t.Body)
		if len(body) < 2 || body[0] != '{' || body[len(body)-1] != '}' {
			return nil, fmt.Errorf("target %d: body is not a JSON object", i)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"@odata.type":"Microsoft.Dynamics.CRM.`...)
		b = append(b, logicalName...)
		b = append(b, '"')
		if t.Key != nil {
			// The key is written as literal text, not percent-encoded:
			// the value is a JSON string, and the documented examples and
			// the emulator read it as entityset(key) verbatim.
			var err error
			if seg, err = t.Key.appendTo(seg[:0]); err != nil {
				return nil, fmt.Errorf("target %d: %w", i, err)
			}
			b = append(b, `,"@odata.id":`...)
			if plainJSON(seg) {
				// The usual case, written without building the string:
				// the entity set is a checked name, plain too.
				b = append(b, '"')
				b = append(b, entitySet...)
				b = append(b, '(')
				b = append(b, seg...)
				b = append(b, ')', '"')
			} else {
				b = appendJSONString(b, entitySet+"("+string(seg)+")")
			}
		}
		if rest := bytes.TrimSpace(body[1 : len(body)-1]); len(rest) > 0 {
			b = append(b, ',')
			b = append(b, rest...)
		}
		b = append(b, '}')
	}
	b = append(b, "]}"...)
	return b, nil
}

// plainJSON reports whether s needs no escaping inside a JSON string as
// encoding/json writes one: printable ASCII other than '"', '\\' and the
// HTML characters '<', '>' and '&'.
func plainJSON(s []byte) bool {
	for _, c := range s {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendJSONString writes s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// IsBulkUnsupported reports whether err says the table does not support
// the bulk message that was sent, so the caller should write the rows
// another way ($batch or single requests) and remember that for the table.
// The service answers an unknown bound action with 404 "Resource not found
// for the segment …" (or 400), DeleteMultiple on a standard table with
// "has not yet been implemented", and an emulator may answer 501.
func IsBulkUnsupported(err error) bool {
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.URL, "/Microsoft.Dynamics.CRM.") {
		return false
	}
	switch e.StatusCode {
	case http.StatusNotImplemented:
		return true
	case http.StatusNotFound, http.StatusBadRequest, http.StatusMethodNotAllowed:
		m := strings.ToLower(e.Message)
		return strings.Contains(m, "resource not found for the segment") ||
			strings.Contains(m, "not yet been implemented") ||
			strings.Contains(m, "is not supported") ||
			strings.Contains(m, "not enabled")
	}
	return false
}
