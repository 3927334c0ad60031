package emulator

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// serveEntitySet dispatches requests on an entity set and its records.
func (s *Server) serveEntitySet(w http.ResponseWriter, req *request, ts *tableStore, segs []segment) error {
	if len(segs) == 2 && !segs[0].hasArg && !segs[1].hasArg {
		if action, ok := bulkActions[segs[1].name]; ok {
			return s.serveBulk(w, req, ts, action)
		}
		if segs[1].name == "$count" {
			return s.count(w, req, ts)
		}
	}
	if len(segs) > 1 {
		return errNotImplemented("Property, navigation and bound-operation paths")
	}
	if !segs[0].hasArg {
		switch req.Method {
		case http.MethodGet:
			return s.list(w, req, ts)
		case http.MethodPost:
			return s.create(w, req, ts)
		}
		return errMethodNotAllowed(req.Method)
	}
	key, err := parseRecordKey(ts.def, segs[0].args)
	if err != nil {
		return err
	}
	switch req.Method {
	case http.MethodGet:
		return s.retrieve(w, req, ts, key)
	case http.MethodPatch:
		return s.patch(w, req, ts, key)
	case http.MethodDelete:
		return s.delete(w, req, ts, key)
	}
	return errMethodNotAllowed(req.Method)
}

// retrieve answers GET <set>(<key>): 200 with the row, 304 when
// If-None-Match names its current ETag, 404 when absent.
func (s *Server) retrieve(w http.ResponseWriter, req *request, ts *tableStore, key recordKey) error {
	if err := checkOptions(req.query, "$select", "$expand"); err != nil {
		return err
	}
	sel, err := parseSelect(ts.def, req.query)
	if err != nil {
		return err
	}
	exp, err := parseExpand(ts.def, req.query.Get("$expand"))
	if err != nil {
		return err
	}
	sel = withExpand(sel, exp)
	r := ts.lookup(key)
	if r == nil {
		return notFound(ts.def, key)
	}
	if c := parseETagHeader(req.Header.Get("If-None-Match")); c != nil && c.matches(r) {
		w.Header().Set("ETag", r.etag())
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	s.writeEntity(w, req, ts.def, r, sel, http.StatusOK)
	return nil
}

// create answers POST <set>: 204 with OData-EntityId, or 201 with the row
// when the client prefers return=representation.
func (s *Server) create(w http.ResponseWriter, req *request, ts *tableStore) error {
	if err := checkOptions(req.query, "$select"); err != nil {
		return err
	}
	sel, err := parseSelect(ts.def, req.query)
	if err != nil {
		return err
	}
	cs, err := readChanges(w, req.Request, ts.def)
	if err != nil {
		return err
	}
	if err := s.resolveBinds(ts.def, cs); err != nil {
		return err
	}
	id := newID()
	if cs.id != nil {
		id = *cs.id
	}
	ts.mu.Lock()
	r, err := ts.insert(id, cs.cols, s.newStamp(userOf(req.Context())))
	ts.mu.Unlock()
	if err != nil {
		return err
	}
	s.writeWriteResult(w, req, ts.def, r, sel, true)
	return nil
}

// patch answers PATCH <set>(<key>). Without conditions it is an upsert; with
// If-Match it only updates (404 when absent, 412 on a stale ETag); with
// If-None-Match: * it only creates (412 when the row exists).
func (s *Server) patch(w http.ResponseWriter, req *request, ts *tableStore, key recordKey) error {
	if err := checkOptions(req.query, "$select"); err != nil {
		return err
	}
	sel, err := parseSelect(ts.def, req.query)
	if err != nil {
		return err
	}
	cs, err := readChanges(w, req.Request, ts.def)
	if err != nil {
		return err
	}
	if err := s.resolveBinds(ts.def, cs); err != nil {
		return err
	}
	s.resolveKeyLookups(key)
	ifMatch := parseETagHeader(req.Header.Get("If-Match"))
	createOnly := strings.TrimSpace(req.Header.Get("If-None-Match")) == "*"

	ts.mu.Lock()
	r, created, err := s.upsertLocked(ts, key, cs, ifMatch, createOnly, s.newStamper(userOf(req.Context())))
	ts.mu.Unlock()
	if err != nil {
		return err
	}
	s.writeWriteResult(w, req, ts.def, r, sel, created)
	return nil
}

// upsertLocked applies a PATCH; the caller holds ts.mu exclusively and
// gives up cs, which upsertLocked may change.
func (s *Server) upsertLocked(ts *tableStore, key recordKey, cs *changeSet, ifMatch *etagCondition, createOnly bool, st stamper) (*row, bool, error) {
	d := ts.def
	existing := ts.find(key)
	if ifMatch != nil {
		if existing == nil {
			return nil, false, notFound(d, key)
		}
		if !ifMatch.matches(existing) {
			return nil, false, errVersionMismatch()
		}
	}
	if existing != nil {
		if createOnly {
			return nil, false, errAlreadyExists()
		}
		if cs.id != nil && *cs.id != existing.id {
			return nil, false, errIDMismatch(d)
		}
		changes := cs.cols
		if key.key != nil && slices.ContainsFunc(changes, func(c colVal) bool { return slices.Contains(key.key.attrs, c.attr) }) {
			// The URL's key values win: a key cannot be changed through
			// itself, so key columns in the body are dropped.
			changes = slices.DeleteFunc(slices.Clone(changes), func(c colVal) bool { return slices.Contains(key.key.attrs, c.attr) })
		}
		r, err := ts.update(existing, changes, st.next())
		return r, false, err
	}

	id := key.id
	if key.key == nil {
		if cs.id != nil && *cs.id != key.id {
			return nil, false, errIDMismatch(d)
		}
	} else {
		id = newID()
		if cs.id != nil {
			id = *cs.id
		}
		// A created row takes its key values from the body when present,
		// else from the URL.
		for i, a := range key.key.attrs {
			if cs.has(a) {
				continue
			}
			v := key.vals[i]
			if ref, ok := v.(lookupRef); ok && ref.table == nil {
				return nil, false, errNotFoundByID(a.targets[0].logical, ref.id.String())
			}
			cs.set(a, v)
		}
	}
	r, err := ts.insert(id, cs.cols, st.next())
	return r, true, err
}

// delete answers DELETE <set>(<key>): 204, 404 when absent, 412 when If-Match
// names another version.
func (s *Server) delete(w http.ResponseWriter, req *request, ts *tableStore, key recordKey) error {
	if err := checkOptions(req.query); err != nil {
		return err
	}
	ifMatch := parseETagHeader(req.Header.Get("If-Match"))
	ts.mu.Lock()
	r := ts.find(key)
	var err error
	switch {
	case r == nil:
		err = notFound(ts.def, key)
	case ifMatch != nil && !ifMatch.matches(r):
		err = errVersionMismatch()
	default:
		err = ts.remove(r, s.newStamp(userOf(req.Context())))
	}
	ts.mu.Unlock()
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func notFound(d *tableDef, key recordKey) *apiError {
	if key.key == nil {
		return errNotFoundByID(d.logical, key.id.String())
	}
	return errNotFoundByKey(d.logical)
}

func errIDMismatch(d *tableDef) *apiError {
	return errPayload(d.set, "The primary key value in the request body does not match the record addressed by the URL.")
}

// stamp is what a write records besides the row's values: when, the
// version it takes, and the user who made it.
type stamp struct {
	at      time.Time
	version int64
	by      uuid.UUID
}

// newStamp draws the next version. Callers hold the written table's lock,
// so versions grow in the order rows are stored.
func (s *Server) newStamp(by uuid.UUID) stamp {
	return stamp{at: now(), version: s.version.Add(1), by: by}
}

// stamper stamps the writes of one request: they share the request's time
// (reading the clock for each row of a bulk message was a twentieth of its
// CPU) and draw versions in the order they are stored.
type stamper struct {
	s  *Server
	at time.Time
	by uuid.UUID
}

// newStamper returns a stamper for a request of user by, at the current
// time.
func (s *Server) newStamper(by uuid.UUID) stamper { return stamper{s: s, at: now(), by: by} }

// next draws the next version; the caller holds the written table's lock.
func (st stamper) next() stamp {
	return stamp{at: st.at, version: st.s.version.Add(1), by: st.by}
}

// now is the write timestamp: UTC, whole seconds, as Dataverse stores it.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// writeWriteResult answers a successful create or update: the row with
// 201/200 when return=representation was preferred, else 204 with
// OData-EntityId.
func (s *Server) writeWriteResult(w http.ResponseWriter, req *request, d *tableDef, r *row, sel selection, created bool) {
	if req.prefs.returnRepresentation {
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		s.writeEntity(w, req, d, r, sel, status)
		return
	}
	w.Header().Set("OData-EntityId", entityURL(req.base, d, r.id))
	w.WriteHeader(http.StatusNoContent)
}

// writeEntity sends one row with its @odata.context and ETag header.
func (s *Server) writeEntity(w http.ResponseWriter, req *request, d *tableDef, r *row, sel selection, status int) {
	var applied []string
	if req.prefs.returnRepresentation && req.Method != http.MethodGet {
		applied = append(applied, "return=representation")
	}
	if req.prefs.annotations != "" {
		applied = append(applied, `odata.include-annotations="`+req.prefs.annotations+`"`)
	}
	if len(applied) > 0 {
		w.Header().Set("Preference-Applied", strings.Join(applied, ","))
	}
	w.Header().Set("ETag", r.etag())
	ctx := req.base + "/$metadata#" + d.set + sel.context + "/$entity"
	writeJSON(w, status, s.appendRow(nil, ctx, r, sel, req.prefs))
}

// selection is a parsed $select: the columns to write, in table order, the
// primary id always among them.
type selection struct {
	cols    []*attrDef
	context string // "(name,accountnumber)" for @odata.context, "" for all
	expand  []rowExpansion
}

func parseSelect(d *tableDef, q url.Values) (selection, error) {
	raw := strings.TrimSpace(q.Get("$select"))
	if raw == "" || raw == "*" {
		return selection{cols: d.attrs}, nil
	}
	var names []string
	chosen := map[*attrDef]bool{}
	for _, name := range strings.Split(raw, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return selection{}, errBadQuery("Syntax error at position %d in '%s'.", len(raw), raw)
		}
		if name == "*" {
			return selection{cols: d.attrs}, nil
		}
		a, ok := d.byProp[name]
		if !ok {
			return selection{}, errNoProperty(name, d.typeName())
		}
		chosen[a] = true
		names = append(names, name)
	}
	sel := selection{context: "(" + strings.Join(names, ",") + ")"}
	for _, a := range d.attrs {
		if a.primaryID || chosen[a] {
			sel.cols = append(sel.cols, a)
		}
	}
	return sel, nil
}

// appendRow appends a row as a JSON object: @odata.context when ctx is set,
// @odata.etag, then the selected columns. Lookups carry the
// lookuplogicalname and associatednavigationproperty annotations when the
// client asked for them with odata.include-annotations.
func (s *Server) appendRow(buf []byte, ctx string, r *row, sel selection, prefs preferences) []byte {
	buf = append(buf, '{')
	if ctx != "" {
		buf = append(buf, `"@odata.context":`...)
		buf = appendJSONString(buf, ctx)
		buf = append(buf, ',')
	}
	buf = append(buf, `"@odata.etag":`...)
	buf = appendJSONString(buf, r.etag())
	for _, a := range sel.cols {
		v := r.get(a)
		if ref, ok := v.(lookupRef); ok && prefs.annotations != "" {
			if prefs.wantsAnnotation(formattedValue) {
				if name := s.lookupName(ref); name != "" {
					buf = appendAnnotation(buf, a.prop, formattedValue, name)
				}
			}
			if term := "Microsoft.Dynamics.CRM.associatednavigationproperty"; prefs.wantsAnnotation(term) {
				buf = appendAnnotation(buf, a.prop, term, navName(navProp{attr: a, target: ref.table}))
			}
			if term := "Microsoft.Dynamics.CRM.lookuplogicalname"; prefs.wantsAnnotation(term) {
				buf = appendAnnotation(buf, a.prop, term, ref.table.logical)
			}
		}
		buf = append(buf, ',')
		buf = appendJSONString(buf, a.prop)
		buf = append(buf, ':')
		buf = appendValue(buf, a, v)
	}
	buf = s.appendExpanded(buf, r, sel.expand, prefs)
	return append(buf, '}')
}

func appendAnnotation(buf []byte, prop, term, value string) []byte {
	buf = append(buf, ',')
	buf = appendJSONString(buf, prop+"@"+term)
	buf = append(buf, ':')
	return appendJSONString(buf, value)
}
