package emulator

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// defaultChangeRetention is how long deletions are kept for delta queries:
// Dataverse keeps change tracking data for 7 days by default.
const defaultChangeRetention = 7 * 24 * time.Hour

// deltaTokenTime is the layout of the time part of a delta token
// ("919042!08/22/2017 08:10:44"), as Dataverse writes it.
const deltaTokenTime = "01/02/2006 15:04:05"

const codeExpiredVersionStamp = "0x80044352"

// deltaCursor is the position of a delta page: the phase (0 changed rows,
// 1 deleted rows), the version of the last entry sent, and the version the
// first page was taken at, which becomes the next delta token.
type deltaCursor struct {
	Page  int   `json:"-"`
	Phase int   `json:"p"`
	After int64 `json:"a"`
	Upto  int64 `json:"u"`
}

// deltaEntry is a changed row or a deletion.
type deltaEntry struct {
	row     *row
	id      uuid.UUID
	version int64
}

// delta answers a change-tracking query: GET <set> with
// Prefer: odata.track-changes (every row, then a delta link) or with a
// $deltatoken from such a link (rows created or changed since, oldest
// change first, then deletions as $deletedEntity entries). Pages follow
// odata.maxpagesize like any query; the last page carries the
// @odata.deltaLink.
func (s *Server) delta(w http.ResponseWriter, req *request, ts *tableStore) error {
	d := ts.def
	for _, opt := range []string{"$filter", "$orderby", "$expand", "$top"} {
		if req.query.Has(opt) {
			return errBadQuery(`The "%s" query parameter isn't supported when Change Tracking is enabled.`, opt)
		}
	}
	if err := checkOptions(req.query, "$select", "$deltatoken", "$skiptoken"); err != nil {
		return err
	}
	if !d.changeTracking {
		return &apiError{http.StatusBadRequest, codeUnexpected,
			fmt.Sprintf("Change tracking is not enabled for the entity '%s'.", d.logical)}
	}
	sel, err := parseSelect(d, req.query)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	since, isDelta := int64(0), req.query.Has("$deltatoken")
	if isDelta {
		if since, err = s.parseDeltaToken(ts, req.query.Get("$deltatoken"), now); err != nil {
			return err
		}
	}
	var cur *deltaCursor
	if req.query.Has("$skiptoken") {
		if cur, err = parseDeltaSkipToken(req.query.Get("$skiptoken")); err != nil {
			return err
		}
	}

	pageSize := maxPageSize
	if req.prefs.maxPageSize > 0 {
		pageSize = min(req.prefs.maxPageSize, maxPageSize)
	}
	// One entry more than the page tells whether another page follows.
	entries, upto := s.collectDelta(ts, since, isDelta, cur, now, pageSize+1)
	more := len(entries) > pageSize
	page := entries[:min(pageSize, len(entries))]

	var applied []string
	if req.prefs.trackChanges {
		applied = append(applied, "odata.track-changes")
	}
	if req.prefs.maxPageSize > 0 {
		applied = append(applied, fmt.Sprintf("odata.maxpagesize=%d", pageSize))
	}
	if req.prefs.annotations != "" {
		applied = append(applied, `odata.include-annotations="`+req.prefs.annotations+`"`)
	}
	if len(applied) > 0 {
		w.Header().Set("Preference-Applied", strings.Join(applied, ","))
	}

	ctx := req.base + "/$metadata#" + d.set + sel.context
	if isDelta {
		ctx += "/$delta"
	}
	buf := []byte(`{"@odata.context":`)
	buf = appendJSONString(buf, ctx)
	if !more {
		buf = append(buf, `,"@odata.deltaLink":`...)
		buf = appendJSONString(buf, req.base+"/"+d.set+"?"+deltaQuery(req.URL.RawQuery, formatDeltaToken(upto, now), ""))
	}
	buf = append(buf, `,"value":[`...)
	deletedCtx := req.base + "/$metadata#" + d.set + "/$deletedEntity"
	for i, e := range page {
		if i > 0 {
			buf = append(buf, ',')
		}
		if e.row != nil {
			buf = s.appendRow(buf, "", e.row, sel, req.prefs)
			continue
		}
		buf = append(buf, `{"@odata.context":`...)
		buf = appendJSONString(buf, deletedCtx)
		buf = append(buf, `,"id":"`...)
		buf = append(buf, e.id.String()...)
		buf = append(buf, `","reason":"deleted"}`...)
	}
	buf = append(buf, ']')
	if more {
		last := page[len(page)-1]
		next := deltaCursor{Page: 2, Phase: 0, After: last.version, Upto: upto}
		if cur != nil {
			next.Page = cur.Page + 1
		}
		if last.row == nil {
			next.Phase = 1
		}
		buf = append(buf, `,"@odata.nextLink":`...)
		buf = appendJSONString(buf, req.base+"/"+d.set+"?"+deltaQuery(req.URL.RawQuery, "", next.token()))
	}
	buf = append(buf, '}')
	writeJSON(w, http.StatusOK, buf)
	return nil
}

// collectDelta returns the first n entries after the cursor, changed rows
// by version then deletions by version, and the version the delta reaches.
// It holds the table's lock, so every write to the table with a version up
// to the returned one is stored and seen. Only the entries returned are
// put in order: sorting every change for each page made reading a large
// table's changes quadratic.
func (s *Server) collectDelta(ts *tableStore, since int64, withDeletes bool, cur *deltaCursor, now time.Time, n int) ([]deltaEntry, int64) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.pruneTombstones(now.Add(-s.changeRetention))
	upto := s.version.Load()
	if cur != nil {
		upto = cur.Upto
	}
	var changed, deleted []deltaEntry
	if cur == nil || cur.Phase == 0 {
		after := since
		if cur != nil {
			after = max(after, cur.After)
		}
		for r := range ts.rows.all() {
			if r.version > after {
				changed = append(changed, deltaEntry{row: r, id: r.id, version: r.version})
			}
		}
	}
	byVersion := func(a, b deltaEntry) int { return cmp.Compare(a.version, b.version) }
	changed = firstRows(changed, n, byVersion)
	if withDeletes && len(changed) < n {
		after := since
		if cur != nil && cur.Phase == 1 {
			after = max(after, cur.After)
		}
		for id, t := range ts.deleted {
			if t.version > after {
				deleted = append(deleted, deltaEntry{id: id, version: t.version})
			}
		}
	}
	return append(changed, firstRows(deleted, n-len(changed), byVersion)...), upto
}

// pruneTombstones forgets deletions older than cutoff; delta tokens from
// before the newest forgotten one expire. The caller holds mu.
func (ts *tableStore) pruneTombstones(cutoff time.Time) {
	for id, t := range ts.deleted {
		if t.at.Before(cutoff) {
			delete(ts.deleted, id)
			ts.floor = max(ts.floor, t.version)
		}
	}
}

// parseDeltaToken returns the version a delta token stands for. A token
// that is malformed, from the future, older than the retention period or
// older than forgotten deletions gets Dataverse's ExpiredVersionStamp.
func (s *Server) parseDeltaToken(ts *tableStore, tok string, now time.Time) (int64, error) {
	expired := &apiError{http.StatusBadRequest, codeExpiredVersionStamp,
		"Version stamp associated with the client has expired. Please perform a full sync."}
	vs, when, ok := strings.Cut(tok, "!")
	version, err := strconv.ParseInt(vs, 10, 64)
	if !ok || err != nil || version < 0 || version > s.version.Load() {
		return 0, expired
	}
	at, err := time.Parse(deltaTokenTime, when)
	if err != nil || now.Sub(at) > s.changeRetention {
		return 0, expired
	}
	ts.mu.RLock()
	floor := ts.floor
	ts.mu.RUnlock()
	if version < floor {
		return 0, expired
	}
	return version, nil
}

func formatDeltaToken(version int64, at time.Time) string {
	return strconv.FormatInt(version, 10) + "!" + at.Format(deltaTokenTime)
}

// token renders the cursor like the query paging cookie.
func (c deltaCursor) token() string {
	data, _ := json.Marshal(c)
	return fmt.Sprintf(`<cookie pagenumber="%d" pagingcookie="%s" istracking="True" />`,
		c.Page, base64.RawURLEncoding.EncodeToString(data))
}

var deltaCookieRE = regexp.MustCompile(`istracking="True"`)

func parseDeltaSkipToken(tok string) (*deltaCursor, error) {
	invalid := errBadQuery("The $skiptoken value is not valid for this query.")
	pm, cm := pageNumberRE.FindStringSubmatch(tok), pagingCookieRE.FindStringSubmatch(tok)
	if pm == nil || cm == nil || !deltaCookieRE.MatchString(tok) {
		return nil, invalid
	}
	data, err := base64.RawURLEncoding.DecodeString(cm[1])
	if err != nil {
		return nil, invalid
	}
	var c deltaCursor
	if err := json.Unmarshal(data, &c); err != nil || c.Phase < 0 || c.Phase > 1 {
		return nil, invalid
	}
	if c.Page, err = strconv.Atoi(pm[1]); err != nil {
		return nil, invalid
	}
	return &c, nil
}

// deltaQuery rebuilds the request's query string for a delta or next link:
// $select is kept, $deltatoken and $skiptoken are replaced (an empty value
// drops the option; a next link keeps the request's delta token).
func deltaQuery(raw, deltaToken, skipToken string) string {
	var parts []string
	for _, p := range strings.Split(raw, "&") {
		name, _, _ := strings.Cut(p, "=")
		n, err := url.QueryUnescape(name)
		if p == "" || err != nil || n == "$skiptoken" || (n == "$deltatoken" && deltaToken != "") {
			continue
		}
		parts = append(parts, p)
	}
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	if deltaToken != "" {
		parts = append(parts, "$deltatoken="+esc(deltaToken))
	}
	if skipToken != "" {
		parts = append(parts, "$skiptoken="+esc(skipToken))
	}
	return strings.Join(parts, "&")
}
