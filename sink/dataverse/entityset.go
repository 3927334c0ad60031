package dataverse

import (
	"context"
	"sync"

	"github.com/dvsync/dvsync/odataclient"
)

// entitySets resolves table logical names to entity set names: from the
// configured overrides, else from the table's metadata, fetched once per
// table however many writes ask at the same time. A failed lookup is not
// remembered, so the next write of that table asks again.
type entitySets struct {
	fetch  func(ctx context.Context, table string) (odataclient.EntityDefinition, error)
	static map[string]string

	mu      sync.Mutex
	fetched map[string]*setLookup
}

// setLookup is one table's metadata request; done is closed when name and
// err are set.
type setLookup struct {
	done chan struct{}
	name string
	err  error
}

// newEntitySets resolves names with fetch, which is expected to do its own
// retrying.
func newEntitySets(fetch func(context.Context, string) (odataclient.EntityDefinition, error), static map[string]string) *entitySets {
	return &entitySets{fetch: fetch, static: static, fetched: make(map[string]*setLookup)}
}

// lookup returns table's entity set name. Concurrent callers for the same
// table share one metadata request; a caller whose ctx ends while waiting
// for another's request returns ctx's error.
func (e *entitySets) lookup(ctx context.Context, table string) (string, error) {
	if name, ok := e.static[table]; ok {
		return name, nil
	}
	e.mu.Lock()
	l, ok := e.fetched[table]
	if !ok {
		l = &setLookup{done: make(chan struct{})}
		e.fetched[table] = l
	}
	e.mu.Unlock()

	if ok {
		select {
		case <-l.done:
			return l.name, l.err
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}

	def, err := e.fetch(ctx, table)
	l.name, l.err = def.EntitySetName, err
	if err != nil {
		e.mu.Lock()
		delete(e.fetched, table)
		e.mu.Unlock()
	}
	close(l.done)
	return l.name, l.err
}
