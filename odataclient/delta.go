package odataclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// codeExpiredVersionStamp is Dataverse's ExpiredVersionStamp: the delta
// token is older than the organization keeps change tracking data for
// (7 days by default), or otherwise unusable.
const codeExpiredVersionStamp = "0x80044352"

// ErrDeltaTokenExpired is matched by errors.Is for an answer saying a delta
// link's token can no longer be used. The caller must start over with
// TrackChanges, reading every row again (a full sync).
var ErrDeltaTokenExpired = errors.New("odataclient: delta token expired")

// Is makes errors.Is(err, ErrDeltaTokenExpired) hold for the service's
// ExpiredVersionStamp answer.
func (e *Error) Is(target error) bool {
	return target == ErrDeltaTokenExpired && strings.EqualFold(e.Code, codeExpiredVersionStamp)
}

// IsDeltaTokenExpired reports whether err says a delta token expired; it is
// errors.Is(err, ErrDeltaTokenExpired).
func IsDeltaTokenExpired(err error) bool { return errors.Is(err, ErrDeltaTokenExpired) }

// DeltaPage is one page of a change-tracking query.
//
// Pages of one delta round are read by following NextLink with NextDelta
// until it is empty; the last page carries DeltaLink, to be stored and
// followed (also with NextDelta) in the next round for the changes made
// since. A DeltaLink must only be stored once every page before it has
// been processed: following it never returns those changes again.
type DeltaPage struct {
	// Changes are the page's entries in the service's order: new or changed
	// rows (the first round returns every row as new) and, in later rounds,
	// deleted rows.
	Changes []DeltaChange
	// NextLink is the link to the next page of this round; empty on the
	// last page.
	NextLink string
	// DeltaLink is the link for the next round; set on the last page only.
	DeltaLink string
}

// DeltaChange is one entry of a DeltaPage: a row created or changed, or a
// row deleted.
type DeltaChange struct {
	// Row is the row's JSON object as the service sent it, with its
	// primary id; nil for a deletion.
	Row json.RawMessage
	// Deleted is true for a deletion; ID then holds the deleted row's
	// primary id and Reason the service's reason, "deleted" or "changed"
	// (the row left the query's scope).
	Deleted bool
	ID      string
	Reason  string
}

// DeltaQuery holds the options of a change-tracking query. The service
// refuses $filter, $orderby, $expand and $top with change tracking.
type DeltaQuery struct {
	// Select lists the attributes to return; the primary id always comes.
	Select []string
	// MaxPageSize asks for at most this many entries per page; the
	// service's default and maximum is 5000.
	MaxPageSize int
}

// TrackChanges starts change tracking on an entity set: it returns the
// first page of every row, with Prefer: odata.track-changes. Follow
// NextLink, then DeltaLink, with NextDelta. A table without change tracking
// enabled is an *Error with StatusCode 400.
func (c *Client) TrackChanges(ctx context.Context, entitySet string, q DeltaQuery) (DeltaPage, error) {
	query := Query{Select: q.Select}
	u, err := c.resourceURL(entitySet, nil, query.encode())
	if err != nil {
		return DeltaPage{}, err
	}
	return c.deltaPage(ctx, u, q.MaxPageSize)
}

// NextDelta follows a DeltaPage's NextLink or DeltaLink verbatim, asking
// for maxPageSize entries per page (the service's default when zero). A
// DeltaLink may come from an earlier process. The link must point at the
// Client's own host, so the bearer token is never sent elsewhere. An
// expired token is an error matching ErrDeltaTokenExpired.
func (c *Client) NextDelta(ctx context.Context, link string, maxPageSize int) (DeltaPage, error) {
	if link == "" {
		return DeltaPage{}, errors.New("odataclient: no delta link to follow")
	}
	u, err := c.sameOrigin(link)
	if err != nil {
		return DeltaPage{}, err
	}
	return c.deltaPage(ctx, u, maxPageSize)
}

func (c *Client) deltaPage(ctx context.Context, u string, maxPageSize int) (DeltaPage, error) {
	prefer := []string{"odata.track-changes"}
	if maxPageSize > 0 {
		prefer = append(prefer, "odata.maxpagesize="+strconv.Itoa(maxPageSize))
	}
	resp, err := c.do(ctx, &request{method: http.MethodGet, url: u, prefer: prefer})
	if err != nil {
		return DeltaPage{}, err
	}
	var doc struct {
		Value     []json.RawMessage `json:"value"`
		NextLink  string            `json:"@odata.nextLink"`
		DeltaLink string            `json:"@odata.deltaLink"`
	}
	if err := json.Unmarshal(resp.body, &doc); err != nil {
		return DeltaPage{}, fmt.Errorf("odataclient: GET %s: decoding delta page: %w", pathOf(u), err)
	}
	p := DeltaPage{NextLink: doc.NextLink, DeltaLink: doc.DeltaLink}
	p.Changes = make([]DeltaChange, 0, len(doc.Value))
	for _, raw := range doc.Value {
		ch, err := decodeDeltaEntry(raw)
		if err != nil {
			return DeltaPage{}, fmt.Errorf("odataclient: GET %s: %w", pathOf(u), err)
		}
		p.Changes = append(p.Changes, ch)
	}
	if p.NextLink == "" && p.DeltaLink == "" {
		return DeltaPage{}, fmt.Errorf("odataclient: GET %s: delta page has neither a next link nor a delta link", pathOf(u))
	}
	return p, nil
}

// decodeDeltaEntry tells deletions from rows: Dataverse marks a deletion
// with a "$deletedEntity" context (OData 4.0 JSON); OData 4.01 services
// send an "@removed" object instead, which is accepted too.
func decodeDeltaEntry(raw json.RawMessage) (DeltaChange, error) {
	if !bytes.Contains(raw, []byte("$deletedEntity")) && !bytes.Contains(raw, []byte(`"@removed"`)) {
		return DeltaChange{Row: raw}, nil
	}
	var e struct {
		Context string `json:"@odata.context"`
		ID      string `json:"id"`
		Reason  string `json:"reason"`
		Removed *struct {
			Reason string `json:"reason"`
		} `json:"@removed"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return DeltaChange{}, fmt.Errorf("decoding delta entry: %w", err)
	}
	switch {
	case strings.HasSuffix(e.Context, "/$deletedEntity"):
	case e.Removed != nil:
		e.Reason = e.Removed.Reason
	default:
		return DeltaChange{Row: raw}, nil // a row whose data mentions the word
	}
	if e.ID == "" {
		return DeltaChange{}, errors.New("delta entry for a deleted row has no id")
	}
	// The id may be the bare GUID or an entity URL ending in (<guid>).
	if i := strings.LastIndexByte(e.ID, '('); i >= 0 && strings.HasSuffix(e.ID, ")") {
		e.ID = e.ID[i+1 : len(e.ID)-1]
	}
	return DeltaChange{Deleted: true, ID: e.ID, Reason: e.Reason}, nil
}
