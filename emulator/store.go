package emulator

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"
	"github.com/google/uuid"
)

// row is one stored record. Rows are immutable once stored: a write replaces
// the row, so a reader may keep a *row after releasing the table lock.
type row struct {
	// id and version are the primary id and versionnumber columns.
	id      uuid.UUID
	version int64
	// vals holds a value per column of the table, by attrDef.idx (system
	// columns included, but not those of stampCol); nil is null. A slice
	// rather than a map keyed by name: one allocation per row, and nothing
	// to hash.
	vals []any
	// created and modified hold createdon and createdby, modifiedon and
	// modifiedby. They are shared by every row written in the same second
	// by the same user, four slots fewer per row. Nil only in a row
	// rebuilt from a paging cursor, whose columns are then null.
	created, modified *rowStamp
}

// rowStamp is the time and user of a write, boxed as column values. It is
// never changed once a row refers to it.
type rowStamp struct {
	at, by any
}

// newRow returns a row of n empty slots. The row and its slots are one
// allocation when n fits one of the usual widths, rather than two: a bulk
// load allocates a row per record, and every allocation is work for the
// allocator and the collector.
func newRow(id uuid.UUID, version int64, n int) *row {
	var r *row
	switch {
	case n <= 8:
		b := new(struct {
			row
			slots [8]any
		})
		b.vals = b.slots[:n:n]
		r = &b.row
	case n <= 12:
		b := new(struct {
			row
			slots [12]any
		})
		b.vals = b.slots[:n:n]
		r = &b.row
	case n <= 16:
		b := new(struct {
			row
			slots [16]any
		})
		b.vals = b.slots[:n:n]
		r = &b.row
	case n <= 24:
		b := new(struct {
			row
			slots [24]any
		})
		b.vals = b.slots[:n:n]
		r = &b.row
	case n <= 32:
		b := new(struct {
			row
			slots [32]any
		})
		b.vals = b.slots[:n:n]
		r = &b.row
	default:
		r = &row{vals: make([]any, n)}
	}
	r.id, r.version = id, version
	return r
}

// get returns the value of column a of r's table; nil when null.
func (r *row) get(a *attrDef) any {
	if a.idx >= 0 {
		return r.vals[a.idx]
	}
	var st *rowStamp
	switch a.stamp {
	case stampRowID:
		return r.id
	case stampVersion:
		return r.version
	case stampCreatedOn, stampCreatedBy:
		st = r.created
	default:
		st = r.modified
	}
	switch {
	case st == nil:
		return nil
	case a.stamp == stampCreatedOn || a.stamp == stampModifiedOn:
		return st.at
	default:
		return st.by
	}
}

// set sets column a of r to v; only for a row being built, before it is
// stored or shared.
func (r *row) set(a *attrDef, v any) {
	switch {
	case a.idx >= 0:
		r.vals[a.idx] = v
		return
	case a.stamp == stampRowID:
		r.id = v.(uuid.UUID)
		return
	case a.stamp == stampVersion:
		r.version = v.(int64)
		return
	}
	st := &r.modified
	if a.stamp == stampCreatedOn || a.stamp == stampCreatedBy {
		st = &r.created
	}
	// A fresh stamp: the one a row holds may be shared.
	ns := &rowStamp{}
	if *st != nil {
		*ns = **st
	}
	if a.stamp == stampCreatedOn || a.stamp == stampModifiedOn {
		ns.at = v
	} else {
		ns.by = v
	}
	*st = ns
}

// etag is the row's weak ETag, W/"<versionnumber>".
func (r *row) etag() string { return fmt.Sprintf(`W/"%d"`, r.version) }

// tableStore holds the rows of one table, indexed by id and by each
// alternate key, with their ids in order. mu guards rows, ids and idx:
// readers share it, a write holds it exclusively from its existence checks
// until the row is stored, which makes each write atomic and unique keys
// race-free. Tables lock independently.
type tableStore struct {
	def  *tableDef
	mu   sync.RWMutex
	rows rowIndex[uuid.UUID]
	// ids holds the id of every row in the order of the rows' default
	// sort, so that a page of a large table is found by seeking to the
	// previous page's last id rather than by reading every row. It
	// changes only when a row is added or removed, never on update.
	ids *btree.BTreeG[uuid.UUID]
	idx []rowIndex[string] // parallel to def.keys

	// deleted holds a tombstone per deleted row of a change-tracked
	// table, for delta queries; floor is the version before which
	// tombstones may be missing (pruned or reset), so older delta tokens
	// are expired. Both are guarded by mu.
	deleted map[uuid.UUID]tombstone
	floor   int64

	// undo, when set, records every write so that an atomic group of
	// writes (a $batch change set, a bulk message) can be rolled back. It is
	// set and cleared only by the goroutine that owns the group, while every
	// other writer is excluded (see Server.writeMu and journal).
	undo *journal

	// hooks are the webhook steps on the table; nil when there are none.
	hooks *tableHooks

	// stamped is the stamp of the last write, which the writes of the
	// same second by the same user share (see row.created). Guarded by mu
	// (held exclusively).
	stamped struct {
		at  time.Time
		by  uuid.UUID
		val *rowStamp
	}
}

func newTableStore(d *tableDef) *tableStore {
	ts := &tableStore{
		def: d, ids: btree.NewG(idTreeDegree, idLess),
		idx: make([]rowIndex[string], len(d.keys)), deleted: map[uuid.UUID]tombstone{},
	}
	ts.rows.keyOf = func(r *row) uuid.UUID { return r.id }
	for i, k := range d.keys {
		// Only rows with a key are indexed under it (see indexKey).
		ts.idx[i].keyOf = func(r *row) string {
			ik, _ := indexKey(k, r)
			return ik
		}
	}
	return ts
}

// indexKey renders the values of key k in row r; ok is false when a value
// is null: such rows are not indexed and so never collide, as a filtered
// unique index behaves.
func indexKey(k *keyDef, r *row) (string, bool) {
	if len(k.attrs) == 1 {
		v := r.get(k.attrs[0])
		if v == nil {
			return "", false
		}
		return singleKeyPart(v), true
	}
	parts := make([]string, len(k.attrs))
	for i, a := range k.attrs {
		v := r.get(a)
		if v == nil {
			return "", false
		}
		parts[i] = indexPart(v)
	}
	return strings.Join(parts, "\x00"), true
}

// keyString is indexKey for the values of a recordKey.
func keyString(vals []any) (string, bool) {
	if len(vals) == 1 {
		// The common single-column key: no slice to build.
		if vals[0] == nil {
			return "", false
		}
		return singleKeyPart(vals[0]), true
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		if v == nil {
			return "", false
		}
		parts[i] = indexPart(v)
	}
	return strings.Join(parts, "\x00"), true
}

// singleKeyPart is the index entry of a key of one column. A column holds
// values of one type only, so a string needs no type prefix, and a string
// without upper case letters is its own entry: nothing to allocate for
// the most common alternate key, a code or number kept as a string.
func singleKeyPart(v any) string {
	if s, ok := v.(string); ok {
		return strings.ToLower(s)
	}
	return indexPart(v)
}

// find returns the row k addresses, or nil. The caller holds mu.
func (ts *tableStore) find(k recordKey) *row {
	if k.key == nil {
		return ts.rows.get(hashID(k.id), k.id)
	}
	for i, kd := range ts.def.keys {
		if kd != k.key {
			continue
		}
		ik, ok := keyString(k.vals)
		if !ok {
			return nil
		}
		return ts.idx[i].get(hashKey(ik), ik)
	}
	return nil
}

// checkUnique reports an alternate key of r that another row already
// holds. The caller holds mu exclusively.
func (ts *tableStore) checkUnique(r *row) error {
	for i, kd := range ts.def.keys {
		ik, ok := indexKey(kd, r)
		if !ok {
			continue
		}
		if other := ts.idx[i].get(hashKey(ik), ik); other != nil && other.id != r.id {
			return errDuplicateKey(kd.name, kd.attrList())
		}
	}
	return nil
}

// insert stores a new row with the columns of cols (nil values are
// dropped); cols is left as it was, and the row shares none of its
// memory. The caller holds mu exclusively.
func (ts *tableStore) insert(id uuid.UUID, cols []colVal, st stamp) (*row, error) {
	d := ts.def
	hid := hashID(id)
	if ts.rows.get(hid, id) != nil {
		return nil, errDuplicateID()
	}
	r := newRow(id, st.version, d.slots)
	r.vals[d.sys.stateCode.idx] = int64(0)
	r.vals[d.sys.statusCode.idx] = int64(1)
	for _, c := range cols {
		if c.v != nil {
			r.vals[c.attr.idx] = c.v
		}
	}
	r.created = ts.rowStamp(st)
	r.modified = r.created
	for _, a := range d.required {
		if r.get(a) == nil {
			return nil, errRequired(a)
		}
	}
	if err := ts.checkUnique(r); err != nil {
		return nil, err
	}
	runs, err := ts.hooks.fire("Create", d, nil, r, cols, st)
	if err != nil {
		return nil, err
	}
	ts.undo.record(ts, nil, r)
	ts.rows.put(hid, id, r)
	ts.ids.ReplaceOrInsert(id)
	ts.index(r)
	// A row created again under a deleted row's id is a change, not a
	// delete, to a delta reader.
	delete(ts.deleted, id)
	ts.hooks.commit(ts.undo, runs)
	return r, nil
}

// update replaces old with a copy carrying changes (a nil value clears the
// column). Every update counts as a write, even one that changes nothing,
// as in Dataverse. The caller holds mu exclusively.
func (ts *tableStore) update(old *row, changes []colVal, st stamp) (*row, error) {
	d := ts.def
	r := newRow(old.id, st.version, len(old.vals))
	copy(r.vals, old.vals)
	r.created = old.created
	for _, c := range changes {
		if c.v == nil && c.attr.required {
			return nil, errRequired(c.attr)
		}
		r.vals[c.attr.idx] = c.v
	}
	r.modified = ts.rowStamp(st)
	if err := ts.checkUnique(r); err != nil {
		return nil, err
	}
	runs, err := ts.hooks.fire("Update", d, old, r, changes, st)
	if err != nil {
		return nil, err
	}
	ts.unindex(old)
	ts.putRow(r)
	ts.index(r)
	ts.undo.record(ts, old, r)
	ts.hooks.commit(ts.undo, runs)
	return r, nil
}

// rowStamp returns st's time and user as the values of createdon or
// modifiedon and of createdby or modifiedby, made once per second and user
// rather than once per row. The caller holds mu exclusively.
func (ts *tableStore) rowStamp(st stamp) *rowStamp {
	c := &ts.stamped
	if c.val == nil || c.at != st.at || c.by != st.by {
		c.at, c.by = st.at, st.by
		c.val = &rowStamp{at: st.at, by: ts.userRef(st.by)}
	}
	return c.val
}

// userRef is the value of createdby or modifiedby for user.
func (ts *tableStore) userRef(user uuid.UUID) lookupRef {
	return lookupRef{table: ts.def.sys.createdBy.targets[0], id: user}
}

// remove deletes r; it fails only when a synchronous webhook step fails.
// The caller holds mu exclusively.
func (ts *tableStore) remove(r *row, st stamp) error {
	runs, err := ts.hooks.fire("Delete", ts.def, r, nil, nil, st)
	if err != nil {
		return err
	}
	ts.undo.record(ts, r, nil)
	ts.unindex(r)
	ts.deleteRow(r)
	if ts.def.changeTracking {
		ts.deleted[r.id] = tombstone{version: st.version, at: st.at}
	}
	ts.hooks.commit(ts.undo, runs)
	return nil
}

// tombstone records a deletion for delta queries.
type tombstone struct {
	version int64
	at      time.Time
}

// putRow stores r under its id, replacing the row it had.
func (ts *tableStore) putRow(r *row) {
	if ts.rows.put(hashID(r.id), r.id, r) {
		ts.ids.ReplaceOrInsert(r.id)
	}
}

// deleteRow removes the row with r's id.
func (ts *tableStore) deleteRow(r *row) {
	if ts.rows.remove(hashID(r.id), r.id, r.id) {
		ts.ids.Delete(r.id)
	}
}

// index enters r's alternate keys.
func (ts *tableStore) index(r *row) {
	for i, kd := range ts.def.keys {
		if ik, ok := indexKey(kd, r); ok {
			ts.idx[i].put(hashKey(ik), ik, r)
		}
	}
}

// unindex removes r's alternate keys, each only while it still points at
// r's id.
func (ts *tableStore) unindex(r *row) {
	for i, kd := range ts.def.keys {
		if ik, ok := indexKey(kd, r); ok {
			ts.idx[i].remove(hashKey(ik), ik, r.id)
		}
	}
}

// clearRows removes every row and index entry.
func (ts *tableStore) clearRows() {
	ts.rows.clear()
	ts.ids.Clear(false)
	for i := range ts.idx {
		ts.idx[i].clear()
	}
}

// snapshot returns the current rows in no particular order.
func (ts *tableStore) snapshot() []*row {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	rows := make([]*row, 0, ts.rows.len())
	for r := range ts.rows.all() {
		rows = append(rows, r)
	}
	return rows
}

// lookup returns the row k addresses, or nil, under a read lock.
func (ts *tableStore) lookup(k recordKey) *row {
	ts.mu.RLock()
	defer ts.mu.RUnlock()
	return ts.find(k)
}

// idTreeDegree is the degree of tableStore.ids: nodes of up to 63 ids, a
// kilobyte, shallow enough that a seek touches a few nodes of a million
// rows.
const idTreeDegree = 32

// idLess orders ids as rowComparer breaks ties: by their bytes.
func idLess(a, b uuid.UUID) bool {
	ah, bh := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(b[:8])
	if ah != bh {
		return ah < bh
	}
	return binary.BigEndian.Uint64(a[8:]) < binary.BigEndian.Uint64(b[8:])
}

// firstByID returns, in id order, up to n rows after the id after (from
// the first row when after is nil) for which keep (nil keeps every row)
// holds. It reads only the rows up to the last one it returns. The caller
// holds mu.
func (ts *tableStore) firstByID(after *uuid.UUID, keep filterNode, n int) []*row {
	if n <= 0 {
		return nil
	}
	page := make([]*row, 0, min(n, ts.rows.len()))
	visit := func(id uuid.UUID) bool {
		if after != nil && id == *after {
			return true
		}
		r := ts.rows.get(hashID(id), id)
		if keep == nil || keep.eval(r) {
			page = append(page, r)
		}
		return len(page) < n
	}
	if after == nil {
		ts.ids.Ascend(visit)
	} else {
		ts.ids.AscendGreaterOrEqual(*after, visit)
	}
	return page
}

// countUpTo returns the number of rows for which keep (nil keeps every
// row) holds, or limit when there are more. The caller holds mu.
func (ts *tableStore) countUpTo(keep filterNode, limit int) int {
	if keep == nil {
		return min(ts.rows.len(), limit)
	}
	n := 0
	for r := range ts.rows.all() {
		if n == limit {
			break
		}
		if keep.eval(r) {
			n++
		}
	}
	return n
}
