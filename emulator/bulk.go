package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/google/uuid"
)

// bulkAction is one of the bulk operation messages bound to an entity set.
type bulkAction int

const (
	bulkCreate bulkAction = iota
	bulkUpdate
	bulkUpsert
	bulkDelete
)

var bulkActions = map[string]bulkAction{
	"Microsoft.Dynamics.CRM.CreateMultiple": bulkCreate,
	"Microsoft.Dynamics.CRM.UpdateMultiple": bulkUpdate,
	"Microsoft.Dynamics.CRM.UpsertMultiple": bulkUpsert,
	"Microsoft.Dynamics.CRM.DeleteMultiple": bulkDelete,
}

func (a bulkAction) String() string {
	return [...]string{"CreateMultiple", "UpdateMultiple", "UpsertMultiple", "DeleteMultiple"}[a]
}

// bulkItem is one decoded entry of Targets.
type bulkItem struct {
	cs  changeSet
	key recordKey
	// keyed tells whether key addresses a row: from "@odata.id" or the
	// primary id in the body.
	keyed bool
}

// serveBulk answers POST <set>/Microsoft.Dynamics.CRM.<Action>Multiple.
// Every target is decoded and validated before any is written; the writes
// then run under the table's lock and are all-or-nothing: the first failure
// undoes the earlier ones and is the answer, as Dataverse's single
// transaction behaves on standard tables. CreateMultiple answers 200 with
// the Ids in Targets order; the others answer 204.
func (s *Server) serveBulk(w http.ResponseWriter, req *request, ts *tableStore, action bulkAction) error {
	if req.Method != http.MethodPost {
		return errMethodNotAllowed(req.Method)
	}
	if err := checkOptions(req.query); err != nil {
		return err
	}
	d := ts.def
	if action == bulkDelete && !d.elastic {
		return &apiError{http.StatusBadRequest, codeUnexpected, "DeleteMultiple has not yet been implemented."}
	}
	sc := bulkScratchPool.Get().(*bulkScratch)
	defer sc.release()
	data, err := readBodyInto(w, req.Request, sc.body[:0])
	sc.body = data
	if err != nil {
		return err
	}
	targets, err := bulkTargets(data, d.set, action, sc.targets[:0])
	sc.targets = targets
	if err != nil {
		return err
	}
	items := slices.Grow(sc.items[:0], len(targets))[:len(targets)]
	sc.items = items
	for i, raw := range targets {
		it, err := s.decodeBulkItem(d, action, raw, sc, len(targets)-i)
		if err != nil {
			return err
		}
		items[i] = it
	}

	ids, err := s.applyBulk(ts, action, items, userOf(req.Context()), &sc.journal)
	if err != nil {
		return err
	}
	if action != bulkCreate {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	out := make([]byte, 0, 64+len(ids)*39)
	out = append(out, `{"@odata.context":`...)
	out = appendJSONString(out, req.base+"/$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
	out = append(out, `,"Ids":[`...)
	for i, id := range ids {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, id.String()...)
		out = append(out, '"')
	}
	out = append(out, "]}"...)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// bulkScratch is the memory a bulk message is decoded and applied in.
// Nothing in it outlives the request (a stored row copies every value it
// keeps out of the body), so the next message reuses it instead of
// leaving it to the garbage collector, whose work grows with every byte
// allocated while the heap holds the whole table.
type bulkScratch struct {
	body    []byte
	targets [][]byte
	members []member
	items   []bulkItem
	arena   []colVal // the targets' columns, arena[:used] taken
	used    int
	keys    []any // the targets' key values; see keyVals
	journal journal
}

// cols returns room for n columns, capped so that appending beyond n
// reallocates rather than overwriting the next target's; left is how
// many targets, this one included, are still to decode, to size a new
// block for all of them at once.
func (sc *bulkScratch) cols(n, left int) []colVal {
	if len(sc.arena)-sc.used < n {
		sc.arena = make([]colVal, max(n*left, 2*len(sc.arena)))
		sc.used = 0
	}
	c := sc.arena[sc.used : sc.used : sc.used+n]
	sc.used += n
	return c
}

var bulkScratchPool = sync.Pool{New: func() any { return new(bulkScratch) }}

// maxScratchBody is the largest body whose buffer goes back to the pool,
// so that one huge message does not pin its memory.
const maxScratchBody = 1 << 20

// release clears what refers to the request's values and rows, and puts
// sc back in the pool.
func (sc *bulkScratch) release() {
	if cap(sc.body) > maxScratchBody {
		return
	}
	// Up to capacity: a slice may have been shorter at the end than
	// before (the last target's members, a rolled-back journal).
	clear(sc.targets[:cap(sc.targets)])
	clear(sc.members[:cap(sc.members)])
	clear(sc.items[:cap(sc.items)])
	clear(sc.arena[:sc.used])
	sc.used = 0
	clear(sc.keys[:cap(sc.keys)])
	sc.keys = sc.keys[:0]
	clear(sc.journal.entries[:cap(sc.journal.entries)])
	sc.journal.entries = sc.journal.entries[:0]
	bulkScratchPool.Put(sc)
}

// keyVals returns a slice of the one value v, carved from a block the
// message's keys share.
func (sc *bulkScratch) keyVals(v any) []any {
	if len(sc.keys) == cap(sc.keys) {
		sc.keys = make([]any, 0, max(64, 2*cap(sc.keys)))
	}
	sc.keys = append(sc.keys, v)
	n := len(sc.keys)
	return sc.keys[n-1 : n : n]
}

// simpleKeyURI reads the usual "@odata.id" of a bulk target,
// "<set>(<prop>='<value>')" for a key of d of one string column, from the
// body's bytes, as parseRecordURI and parseRecordKey would read it; ok is
// false for any other form, which they then read.
func simpleKeyURI(d *tableDef, uri []byte) (k *keyDef, val []byte, ok bool) {
	n := len(d.set)
	if len(uri) < n+2 || string(uri[:n]) != d.set || uri[n] != '(' || uri[len(uri)-1] != ')' || bytes.IndexByte(uri, '/') >= 0 {
		return nil, nil, false
	}
	prop, rest, ok := bytes.Cut(uri[n+1:len(uri)-1], []byte("="))
	if !ok || len(rest) < 2 || rest[0] != '\'' || rest[len(rest)-1] != '\'' {
		return nil, nil, false
	}
	val = rest[1 : len(rest)-1]
	if bytes.IndexByte(val, '\'') >= 0 {
		return nil, nil, false
	}
	a, ok := d.byProp[string(prop)]
	if !ok || a.typ != tString {
		return nil, nil, false
	}
	for _, k := range d.keys {
		if len(k.attrs) == 1 && k.attrs[0] == a {
			return k, val, true
		}
	}
	return nil, nil, false
}

// bulkTargets appends the objects of the body's Targets array to buf, as
// slices of data. Parameter names are case-sensitive, as in Dataverse.
func bulkTargets(data []byte, set string, action bulkAction, buf [][]byte) ([][]byte, error) {
	if !validJSON(data) {
		_, err := decodeObjectSlow(data, set)
		return nil, err
	}
	p := jsonScan{data: data}
	p.skipSpace()
	if p.peek() != '{' {
		return nil, errPayload(set, "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. A 'StartObject' node was expected.")
	}
	p.i++
	targets := buf
	found := false
	for {
		p.skipSpace()
		if p.peek() == '}' {
			break
		}
		if p.peek() == ',' {
			p.i++
			p.skipSpace()
		}
		name, err := p.str()
		if err != nil {
			return nil, errPayload(set, fmt.Sprintf("Invalid JSON. %v", err))
		}
		p.skipSpace()
		p.i++ // ':'
		p.skipSpace()
		if name != "Targets" {
			if _, err := p.value(); err != nil {
				return nil, errPayload(set, fmt.Sprintf("Invalid JSON. %v", err))
			}
			continue
		}
		found = true
		if p.peek() != '[' {
			return nil, errPayload(set, "The parameter 'Targets' must be an array of entities.")
		}
		p.i++
		for {
			p.skipSpace()
			switch p.peek() {
			case ']':
				p.i++
			case ',':
				p.i++
				continue
			case '{':
				start := p.i
				if err := p.skipComposite(); err != nil {
					return nil, errPayload(set, fmt.Sprintf("Invalid JSON. %v", err))
				}
				targets = append(targets, data[start:p.i])
				continue
			default:
				return nil, errPayload(set, "The parameter 'Targets' must be an array of entities.")
			}
			break
		}
	}
	if !found {
		return nil, errPayload(set, fmt.Sprintf("The parameter 'Targets' of the action '%s' is required.", action))
	}
	return targets, nil
}

// decodeBulkItem decodes one target. "@odata.type" is required on every
// target and must name the bound table; "@odata.id" (UpsertMultiple)
// addresses the row by a record URI of the same table. The target's
// members and columns are decoded into sc; left is how many targets, this
// one included, are still to decode.
func (s *Server) decodeBulkItem(d *tableDef, action bulkAction, raw json.RawMessage, sc *bulkScratch, left int) (bulkItem, error) {
	// bulkTargets validated the whole body.
	members, err := decodeValidObject(raw, d, sc.members)
	if err != nil {
		return bulkItem{}, err
	}
	sc.members = members
	// A column added later (an upsert's key values from "@odata.id")
	// goes beyond the room cols gives, into a slice of its own.
	it := bulkItem{cs: changeSet{cols: sc.cols(len(members), left)}}
	typed := false
	var keyVal []byte // the value of a key parsed by simpleKeyURI
	for i := range members {
		m := &members[i]
		switch m.name {
		case "@odata.type":
			typed = true
		case "@odata.id":
			if m.kind == '"' {
				if k, val, ok := simpleKeyURI(d, m.raw); ok {
					it.key, it.keyed, keyVal = recordKey{key: k}, true, val
					continue
				}
			}
			uri, _ := m.decoded().(string)
			set, pred, ok := parseRecordURI(uri)
			if !ok || set != d.set {
				return bulkItem{}, errPayload(d.set, fmt.Sprintf("The '@odata.id' value '%v' is not a record URI of '%s'.", m.decoded(), d.set))
			}
			key, err := parseRecordKey(d, pred)
			if err != nil {
				return bulkItem{}, err
			}
			it.key, it.keyed = key, true
			continue
		}
		if err := it.cs.add(d, m); err != nil {
			return bulkItem{}, err
		}
	}
	if keyVal != nil {
		// The body usually sets the key column to the same value: the
		// key then shares it instead of a string and box of its own.
		var v any
		if c := it.cs.col(it.key.key.attrs[0]); c != nil {
			if s, ok := c.v.(string); ok && s == string(keyVal) {
				v = c.v
			}
		}
		if v == nil {
			v = string(keyVal)
		}
		it.key.vals = sc.keyVals(v)
	}
	if !typed {
		return bulkItem{}, errPayload(d.set, fmt.Sprintf("The '@odata.type' annotation is required on every item of Targets; expected '%s'.", d.typeName()))
	}
	if it.cs.id != nil && !it.keyed {
		it.key, it.keyed = recordKey{id: *it.cs.id}, true
	}
	if !it.keyed && (action == bulkUpdate || action == bulkDelete) {
		return bulkItem{}, errPayload(d.set, fmt.Sprintf("Every item of Targets of %s must carry the primary key '%s'.", action, d.primaryID))
	}
	if err := s.resolveBinds(d, &it.cs); err != nil {
		return bulkItem{}, err
	}
	if it.keyed {
		s.resolveKeyLookups(it.key)
	}
	return it, nil
}

// applyBulk writes the items under the table's lock, journaling them in
// own so that a failure restores the table. Inside a $batch change set the
// change set's journal is used instead, and the change set rolls back the
// rest.
func (s *Server) applyBulk(ts *tableStore, action bulkAction, items []bulkItem, by uuid.UUID, own *journal) ([]uuid.UUID, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	j, owned := ts.undo, ts.undo == nil
	if owned {
		j = own
		j.entries = slices.Grow(j.entries[:0], len(items))
		ts.undo = j
		defer func() { ts.undo = nil }()
	}
	mark := j.mark()
	ids, err := s.applyBulkLocked(ts, action, items, by)
	if err != nil {
		j.rollback(mark, false)
	} else if owned {
		// Inside a change set the change set starts them when it commits.
		s.hooks.enqueue(j.takeRuns())
	}
	return ids, err
}

func (s *Server) applyBulkLocked(ts *tableStore, action bulkAction, items []bulkItem, by uuid.UUID) ([]uuid.UUID, error) {
	d := ts.def
	st := s.newStamper(by)
	var ids []uuid.UUID
	if action == bulkCreate {
		ids = make([]uuid.UUID, 0, len(items))
	}
	for _, it := range items {
		switch action {
		case bulkCreate:
			id := newID()
			if it.cs.id != nil {
				id = *it.cs.id
			}
			r, err := ts.insert(id, it.cs.cols, st.next())
			if err != nil {
				return nil, err
			}
			ids = append(ids, r.id)
		case bulkUpdate:
			existing := ts.find(it.key)
			if existing == nil {
				return nil, &apiError{http.StatusNotFound, codeObjectDoesNotExist,
					fmt.Sprintf("%s With Ids = %s Do Not Exist", upperFirst(d.logical), it.key.id)}
			}
			if _, err := ts.update(existing, it.cs.cols, st.next()); err != nil {
				return nil, err
			}
		case bulkUpsert:
			if !it.keyed {
				id := newID()
				if _, err := ts.insert(id, it.cs.cols, st.next()); err != nil {
					return nil, err
				}
				continue
			}
			if _, _, err := s.upsertLocked(ts, it.key, &it.cs, nil, false, st); err != nil {
				return nil, err
			}
		case bulkDelete:
			// Elastic tables allow partial success; a row that is not
			// there is simply not deleted.
			if r := ts.find(it.key); r != nil {
				if err := ts.remove(r, st.next()); err != nil {
					return nil, err
				}
			}
		}
	}
	return ids, nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
