package sqlserver

import (
	"fmt"
	"sync"
	"testing"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/tdsfake"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/sourcetest"
)

// TestConformance runs the source suite in CDC mode, which delivers
// every change; change tracking delivers net changes (an insert and an
// update between two polls arrive as one insert), which the suite's
// exact sequences do not allow for. With Start earliest, a source opened
// without a position reads every change the capture instance holds,
// the counterpart of a replication slot's unconfirmed changes.
func TestConformance(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr transport) {
		srv := newServer()
		srv.addTable("dbo.items", []tdsfake.Column{{Name: "id", Type: tdsfake.BigInt}, {Name: "name", Type: tdsfake.NVarChar(50)}, {Name: "n", Type: tdsfake.Int}}, "id")
		open, dsn := tr.connect(t, srv)
		sourcetest.Run(t, &harness{srv: srv, open: open, dsn: dsn})
	})
}

type harness struct {
	srv  *server
	open opener
	dsn  string
	mu   sync.Mutex
	next int64
	n    map[int64]int64
}

func (h *harness) NewSource(t *testing.T) source.Source {
	s, err := New(fast(Config{DSN: h.dsn, Mode: ModeCDC, Start: StartEarliest, Tables: []string{"dbo.items"}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.open = h.open
	return s
}

func (h *harness) Insert(t *testing.T, n int) []change.Key {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[int64]int64{}
	}
	var changes []fakeChange
	var keys []change.Key
	for range n {
		h.next++
		changes = append(changes, fakeChange{"I", []any{h.next, fmt.Sprintf("item %d", h.next), int64(0)}})
		keys = append(keys, change.Key{{Name: "id", Value: change.Int(h.next)}})
	}
	h.srv.write("dbo.items", nil, changes...)
	return keys
}

func (h *harness) Update(t *testing.T, key change.Key) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := key[0].Value.Int()
	h.n[id]++
	h.srv.write("dbo.items", nil, fakeChange{"U", []any{id, fmt.Sprintf("item %d", id), h.n[id]}})
}

func (h *harness) Delete(t *testing.T, key change.Key) {
	id := key[0].Value.Int()
	h.srv.write("dbo.items", nil, fakeChange{"D", []any{id, nil, nil}})
}
