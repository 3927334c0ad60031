package main

import (
	"context"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/state"
)

// idIndex remembers the key attributes of the Dataverse rows a pipeline
// of Dataverse changes has seen, by row id, so that a delete reported by
// id alone (change tracking's @removed entries) finds the source row its
// mapping keys by an alternate key.
//
// The mapper notes each row's key as it maps the row; the pipeline's sink
// stores what was noted before it writes (indexingSink), so an id is
// durable before its change is acked. The most recent ids stay in an LRU,
// so the store is read only for deletes of rows not seen lately.
type idIndex struct {
	store    state.IDIndex
	pipeline string
	cache    *lru.Cache[string, change.Row] // by space + "\x00" + id

	mu      sync.Mutex
	pending map[string][]state.IDKey // by space
}

// idCacheSize bounds the ids kept in memory, a few MiB for typical keys.
const idCacheSize = 65536

func newIDIndex(store state.Store, pipeline string) *idIndex {
	ix, ok := store.(state.IDIndex)
	if !ok {
		return nil
	}
	cache, _ := lru.New[string, change.Row](idCacheSize) // errors only for a size <= 0
	return &idIndex{store: ix, pipeline: pipeline, cache: cache, pending: map[string][]state.IDKey{}}
}

func (x *idIndex) space(table string) string { return x.pipeline + "/" + table }

// note remembers key as the key attributes of the row id of table, or
// forgets the row when key is nil (it was deleted).
func (x *idIndex) note(table, id string, key change.Row) {
	sp := x.space(table)
	if old, ok := x.cache.Get(sp + "\x00" + id); ok && key != nil && sameRow(old, key) {
		return // already stored: updates of a known row cost nothing
	}
	if key == nil {
		x.cache.Remove(sp + "\x00" + id)
	} else {
		x.cache.Add(sp+"\x00"+id, key)
	}
	x.mu.Lock()
	x.pending[sp] = append(x.pending[sp], state.IDKey{ID: id, Key: key})
	x.mu.Unlock()
}

// lookup returns the key attributes of the row id of table.
func (x *idIndex) lookup(table, id string) (change.Row, bool, error) {
	sp := x.space(table)
	if key, ok := x.cache.Get(sp + "\x00" + id); ok {
		return key, true, nil
	}
	x.mu.Lock()
	for i := len(x.pending[sp]) - 1; i >= 0; i-- {
		if e := x.pending[sp][i]; e.ID == id {
			x.mu.Unlock()
			return e.Key, e.Key != nil, nil
		}
	}
	x.mu.Unlock()
	// The mapper has no context; a store read is a local file read or
	// one query, and bounded so a stalled store cannot stall the reader.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return x.store.IDKey(ctx, sp, id)
}

// flush stores what was noted since the last flush.
func (x *idIndex) flush(ctx context.Context) error {
	x.mu.Lock()
	pending := x.pending
	x.pending = map[string][]state.IDKey{}
	x.mu.Unlock()
	for sp, entries := range pending {
		if err := x.store.PutIDKeys(ctx, sp, entries); err != nil {
			// Put them back: the write is retried, and nothing is acked
			// before it succeeds.
			x.mu.Lock()
			x.pending[sp] = append(entries, x.pending[sp]...)
			x.mu.Unlock()
			return change.Retryable(err, 0)
		}
	}
	return nil
}

// indexingSink stores the pipeline's noted ids before each write.
type indexingSink struct {
	sink.Sink
	ids *idIndex
}

func (s indexingSink) Write(ctx context.Context, recs []change.Record) error {
	if err := s.ids.flush(ctx); err != nil {
		return err
	}
	return s.Sink.Write(ctx, recs)
}

// reverseMapper applies a connection's mappings from Dataverse to it,
// keeping ids in an idIndex when it has one (nil: deletes must carry their
// key attributes, as webhook pre-images do).
type reverseMapper struct {
	m   *mapping.Mapper
	ids *idIndex
}

func (r reverseMapper) Map(rec *change.Record) (change.Record, bool, error) {
	if r.ids == nil {
		return r.m.MapToSource(rec)
	}
	attrs := r.m.KeyAttributes(rec.Table)
	id, hasID := recordID(rec)
	if len(attrs) == 0 || !hasID {
		return r.m.MapToSource(rec)
	}
	if rec.Op == change.OpDelete {
		defer r.ids.note(rec.Table, id, nil)
		if _, ok := keyOf(attrs, rec.Key, rec.Before); !ok {
			key, found, err := r.ids.lookup(rec.Table, id)
			if err != nil {
				return change.Record{}, false, change.Retryable(err, 0)
			}
			if found {
				withKey := *rec
				withKey.Before = key
				return r.m.MapToSource(&withKey)
			}
		}
		return r.m.MapToSource(rec)
	}
	if key, ok := keyOf(attrs, rec.Key, rec.After); ok {
		r.ids.note(rec.Table, id, key)
	}
	return r.m.MapToSource(rec)
}

// recordID is the Dataverse row id of a record of Dataverse changes: its
// key's only column, the primary id.
func recordID(rec *change.Record) (string, bool) {
	if len(rec.Key) != 1 {
		return "", false
	}
	v := rec.Key[0].Value
	if v.IsNull() {
		return "", false
	}
	return v.String(), true
}

func sameRow(a, b change.Row) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !a[i].Value.Equal(b[i].Value) {
			return false
		}
	}
	return true
}

// keyOf collects attrs from the first row holding each.
func keyOf(attrs []string, rows ...[]change.Column) (change.Row, bool) {
	key := make(change.Row, 0, len(attrs))
	for _, a := range attrs {
		found := false
		for _, r := range rows {
			if v, ok := change.Row(r).Get(a); ok && !v.IsNull() {
				key = append(key, change.Column{Name: a, Value: v})
				found = true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return key, true
}
