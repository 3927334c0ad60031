package emulator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// maxPageSize is Dataverse's default and largest page.
const maxPageSize = 5000

// orderTerm is one $orderby column.
type orderTerm struct {
	attr *attrDef
	desc bool
}

// listQuery is a parsed collection query.
type listQuery struct {
	sel    selection
	filter filterNode // nil matches every row
	order  []orderTerm
	top    int // -1 when absent
	count  bool
	after  *pageCursor // from $skiptoken
}

// pageCursor is the position a next page starts after: the last row's
// $orderby values (cursor-encoded, nil for null) and id. Keyset paging keeps
// pages free of duplicates and gaps while other clients write.
type pageCursor struct {
	Page int       `json:"-"`
	Vals []*string `json:"v"`
	ID   uuid.UUID `json:"id"`
}

func parseListQuery(d *tableDef, q url.Values) (*listQuery, error) {
	lq := &listQuery{top: -1}
	var err error
	if lq.sel, err = parseSelect(d, q); err != nil {
		return nil, err
	}
	exp, err := parseExpand(d, q.Get("$expand"))
	if err != nil {
		return nil, err
	}
	lq.sel = withExpand(lq.sel, exp)
	if f := q.Get("$filter"); q.Has("$filter") {
		if lq.filter, err = parseFilter(d, f, q); err != nil {
			return nil, err
		}
	}
	if o := strings.TrimSpace(q.Get("$orderby")); o != "" {
		if lq.order, err = parseOrderBy(d, o); err != nil {
			return nil, err
		}
	}
	if t := q.Get("$top"); q.Has("$top") {
		n, convErr := strconv.Atoi(strings.TrimSpace(t))
		if convErr != nil || n < 0 {
			return nil, errBadQuery("Invalid value '%s' for $top query option found. The $top query option requires a non-negative integer value.", t)
		}
		lq.top = n
	}
	if c := q.Get("$count"); q.Has("$count") {
		switch c {
		case "true":
			lq.count = true
		case "false":
		default:
			return nil, errBadQuery("'%s' is not a valid count option.", c)
		}
	}
	if tok := q.Get("$skiptoken"); q.Has("$skiptoken") {
		if lq.after, err = parseSkipToken(tok, lq.order); err != nil {
			return nil, err
		}
	}
	return lq, nil
}

// count answers GET <set>/$count: the number of rows matching $filter as
// text/plain. Like @odata.count it stops at 5000, the most Dataverse counts.
func (s *Server) count(w http.ResponseWriter, req *request, ts *tableStore) error {
	if req.Method != http.MethodGet {
		return errMethodNotAllowed(req.Method)
	}
	if err := checkOptions(req.query, "$filter"); err != nil {
		return err
	}
	var filter filterNode
	if f := req.query.Get("$filter"); req.query.Has("$filter") {
		var err error
		if filter, err = parseFilter(ts.def, f, req.query); err != nil {
			return err
		}
	}
	ts.mu.RLock()
	n := ts.countUpTo(filter, maxPageSize)
	ts.mu.RUnlock()
	body := strconv.Itoa(n)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, body)
	return nil
}

func parseOrderBy(d *tableDef, expr string) ([]orderTerm, error) {
	var terms []orderTerm
	for _, item := range strings.Split(expr, ",") {
		fields := strings.Fields(item)
		if len(fields) == 0 || len(fields) > 2 {
			return nil, errBadQuery("Syntax error in $orderby '%s'.", expr)
		}
		a, ok := d.byProp[fields[0]]
		if !ok {
			return nil, errNoProperty(fields[0], d.typeName())
		}
		t := orderTerm{attr: a}
		if len(fields) == 2 {
			switch fields[1] {
			case "asc":
			case "desc":
				t.desc = true
			default:
				return nil, errBadQuery("Syntax error in $orderby '%s': expected asc or desc, found '%s'.", expr, fields[1])
			}
		}
		terms = append(terms, t)
	}
	return terms, nil
}

// list answers GET <set>: the matching rows, ordered by $orderby then by
// primary key, in pages of odata.maxpagesize (default and at most 5000) with
// an @odata.nextLink while more remain. $top returns at most that many rows
// and disables paging, as documented.
func (s *Server) list(w http.ResponseWriter, req *request, ts *tableStore) error {
	if req.prefs.trackChanges || req.query.Has("$deltatoken") {
		return s.delta(w, req, ts)
	}
	if err := checkOptions(req.query, "$select", "$filter", "$orderby", "$top", "$count", "$skiptoken", "$expand"); err != nil {
		return err
	}
	d := ts.def
	lq, err := parseListQuery(d, req.query)
	if err != nil {
		return err
	}

	pageSize, applied := maxPageSize, 0
	switch {
	case lq.top >= 0:
		pageSize = min(lq.top, maxPageSize)
	case req.prefs.maxPageSize > 0:
		pageSize = min(req.prefs.maxPageSize, maxPageSize)
		applied = pageSize
	}
	page, more, total := ts.page(lq, pageSize)

	var prefs []string
	if applied > 0 {
		prefs = append(prefs, fmt.Sprintf("odata.maxpagesize=%d", applied))
	}
	if req.prefs.annotations != "" {
		prefs = append(prefs, `odata.include-annotations="`+req.prefs.annotations+`"`)
	}
	if len(prefs) > 0 {
		w.Header().Set("Preference-Applied", strings.Join(prefs, ","))
	}

	buf := []byte(`{"@odata.context":`)
	buf = appendJSONString(buf, req.base+"/$metadata#"+d.set+lq.sel.context)
	if lq.count {
		buf = append(buf, `,"@odata.count":`...)
		buf = strconv.AppendInt(buf, int64(total), 10)
	}
	buf = append(buf, `,"value":[`...)
	for i, r := range page {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = s.appendRow(buf, "", r, lq.sel, req.prefs)
	}
	buf = append(buf, ']')
	if more {
		pageNo := 1
		if lq.after != nil {
			pageNo = lq.after.Page
		}
		next := newCursor(pageNo+1, page[len(page)-1], lq.order)
		buf = append(buf, `,"@odata.nextLink":`...)
		buf = appendJSONString(buf, req.base+"/"+d.set+"?"+nextQuery(req.URL.RawQuery, next.token()))
	}
	buf = append(buf, '}')
	writeJSON(w, http.StatusOK, buf)
	return nil
}

// page returns the rows of the page lq asks for, of up to size rows; more
// tells whether rows follow it (never under $top), and total is the number
// of rows matching $filter, at most 5000 as Dataverse counts, when lq asks
// for a count.
func (ts *tableStore) page(lq *listQuery, size int) (page []*row, more bool, total int) {
	if len(lq.order) == 0 {
		// The default order is the order of ts.ids: seek to the cursor
		// and read on until the page and the row after it are found.
		var after *uuid.UUID
		if lq.after != nil {
			after = &lq.after.ID
		}
		n := size
		if lq.top < 0 {
			n++
		}
		ts.mu.RLock()
		defer ts.mu.RUnlock()
		page = ts.firstByID(after, lq.filter, n)
		if len(page) > size {
			page, more = page[:size], true
		}
		if lq.count {
			total = ts.countUpTo(lq.filter, maxPageSize)
		}
		return page, more, total
	}
	// Another order reads every row, but puts only the page in order:
	// sorting the whole table for every page made reading a large table
	// back quadratic.
	cmp := rowComparer(ts.def, lq.order)
	var cursor *row
	if lq.after != nil {
		cursor = lq.after.row(ts.def, lq.order)
	}
	var rows []*row
	for _, r := range ts.snapshot() {
		if lq.filter != nil && !lq.filter.eval(r) {
			continue
		}
		total++
		if cursor == nil || cmp(r, cursor) > 0 {
			rows = append(rows, r)
		}
	}
	page = firstRows(rows, size, cmp)
	return page, lq.top < 0 && len(rows) > len(page), min(total, maxPageSize)
}

// firstRows returns the n smallest of rows by cmp, in order; it may reorder
// rows. A bounded max-heap keeps it O(len(rows) log n) rather than sorting
// everything.
func firstRows[T any](rows []T, n int, cmp func(a, b T) int) []T {
	if n <= 0 {
		return nil
	}
	if len(rows) <= n {
		slices.SortFunc(rows, cmp)
		return rows
	}
	// rows[:n] becomes a max-heap of the n smallest seen so far.
	h := rows[:n]
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= n {
				return
			}
			m := l
			if r := l + 1; r < n && cmp(h[r], h[l]) > 0 {
				m = r
			}
			if cmp(h[m], h[i]) <= 0 {
				return
			}
			h[i], h[m] = h[m], h[i]
			i = m
		}
	}
	for i := n/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, r := range rows[n:] {
		if cmp(r, h[0]) < 0 {
			h[0] = r
			down(0)
		}
	}
	slices.SortFunc(h, cmp)
	return h
}

// rowComparer orders rows by the $orderby terms, then by primary key so that
// the order is total and pages are stable.
func rowComparer(d *tableDef, order []orderTerm) func(a, b *row) int {
	return func(a, b *row) int {
		for _, t := range order {
			c := compareStored(t.attr, a.get(t.attr), b.get(t.attr))
			if t.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return bytes.Compare(a.id[:], b.id[:])
	}
}

func newCursor(page int, last *row, order []orderTerm) *pageCursor {
	c := &pageCursor{Page: page, ID: last.id}
	for _, t := range order {
		v := last.get(t.attr)
		if v == nil {
			c.Vals = append(c.Vals, nil)
			continue
		}
		s := formatCursor(v)
		c.Vals = append(c.Vals, &s)
	}
	return c
}

// row rebuilds a comparable row from the cursor.
func (c *pageCursor) row(d *tableDef, order []orderTerm) *row {
	r := &row{id: c.ID, vals: make([]any, d.slots)}
	for i, t := range order {
		if c.Vals[i] == nil {
			continue
		}
		// Values were checked by parseSkipToken.
		v, _ := parseCursor(t.attr, *c.Vals[i])
		r.set(t.attr, v)
	}
	return r
}

// token renders the cursor as a Dataverse-style paging cookie. Clients treat
// it as opaque and send it back verbatim in $skiptoken.
func (c *pageCursor) token() string {
	data, _ := json.Marshal(c)
	return fmt.Sprintf(`<cookie pagenumber="%d" pagingcookie="%s" istracking="False" />`,
		c.Page, base64.RawURLEncoding.EncodeToString(data))
}

var (
	pageNumberRE   = regexp.MustCompile(`pagenumber="(\d+)"`)
	pagingCookieRE = regexp.MustCompile(`pagingcookie="([A-Za-z0-9_-]*)"`)
)

func parseSkipToken(tok string, order []orderTerm) (*pageCursor, error) {
	invalid := errBadQuery("The $skiptoken value is not valid for this query.")
	pm, cm := pageNumberRE.FindStringSubmatch(tok), pagingCookieRE.FindStringSubmatch(tok)
	if pm == nil || cm == nil {
		return nil, invalid
	}
	data, err := base64.RawURLEncoding.DecodeString(cm[1])
	if err != nil {
		return nil, invalid
	}
	var c pageCursor
	if err := json.Unmarshal(data, &c); err != nil || len(c.Vals) != len(order) {
		return nil, invalid
	}
	for i, t := range order {
		if c.Vals[i] == nil {
			continue
		}
		if _, err := parseCursor(t.attr, *c.Vals[i]); err != nil {
			return nil, invalid
		}
	}
	if c.Page, err = strconv.Atoi(pm[1]); err != nil {
		return nil, invalid
	}
	return &c, nil
}

// nextQuery is the request's query string with $skiptoken replaced, so that
// a nextLink repeats every other option of the request verbatim.
func nextQuery(raw, token string) string {
	var parts []string
	for _, p := range strings.Split(raw, "&") {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); p == "" || (err == nil && n == "$skiptoken") {
			continue
		}
		parts = append(parts, p)
	}
	escaped := strings.ReplaceAll(url.QueryEscape(token), "+", "%20")
	return strings.Join(append(parts, "$skiptoken="+escaped), "&")
}
