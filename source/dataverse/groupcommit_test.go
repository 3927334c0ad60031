package dataverse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/dvsync/dvsync/state"
)

// gatedStore holds the first inbox write until release is closed, and
// records the number of entries of every write; with failMulti it fails
// every write of more than one entry.
type gatedStore struct {
	*state.Bolt
	failMulti bool
	entered   chan struct{}
	release   chan struct{}

	mu     sync.Mutex
	writes []int
}

func (g *gatedStore) InboxAppend(ctx context.Context, inbox string, w state.InboxWrite) (uint64, error) {
	g.mu.Lock()
	g.writes = append(g.writes, len(w.Entries))
	first := len(g.writes) == 1
	g.mu.Unlock()
	if first {
		close(g.entered)
		<-g.release
	}
	if g.failMulti && len(w.Entries) > 1 {
		return 0, errors.New("refused: more than one entry")
	}
	return g.Bolt.InboxAppend(ctx, inbox, w)
}

// TestWebhookGroupCommit: the requests that arrive while an inbox write
// runs are stored by the next write, all of them in one; each answers 200
// only after it. When that joint write fails, each change is written
// alone and every request still answers 200.
func TestWebhookGroupCommit(t *testing.T) {
	for _, failMulti := range []bool{false, true} {
		t.Run(fmt.Sprintf("failMulti=%v", failMulti), func(t *testing.T) {
			open, _ := openBolt(t)
			bolt := open()
			t.Cleanup(func() { bolt.Close() })
			store := &gatedStore{Bolt: bolt, failMulti: failMulti, entered: make(chan struct{}), release: make(chan struct{})}
			o := openSource(t, webhookConfig("127.0.0.1:0"), nil, store, nil)
			addr := o.src.Addr().String()
			const n = 6
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("7b8c9d0e-1f2a-4b3c-9d4e-%012d", i+1)
			}
			status := make([]int, n)
			var wg sync.WaitGroup
			postOne := func(i int) {
				defer wg.Done()
				status[i], _ = post(t, addr, "?code="+hookKey, nil, hookBody("Update", ids[i], person, int64(i+1)))
			}
			wg.Add(1)
			go postOne(0)
			<-store.entered
			for i := 1; i < n; i++ {
				wg.Add(1)
				go postOne(i)
			}
			waitFor(t, "the other requests to queue", func() bool {
				o.src.hooksQ.mu.Lock()
				defer o.src.hooksQ.mu.Unlock()
				return len(o.src.hooksQ.waiting) == n-1
			})
			if got := o.src.hooks.Load(); got != 0 {
				t.Fatalf("%d requests answered before their write", got)
			}
			close(store.release)
			wg.Wait()
			for i, s := range status {
				if s != http.StatusOK {
					t.Errorf("request %d: status %d", i, s)
				}
			}
			want := []int{1, n - 1}
			if failMulti {
				want = []int{1, n - 1, 1, 1, 1, 1, 1}
			}
			store.mu.Lock()
			writes := fmt.Sprint(store.writes)
			store.mu.Unlock()
			if writes != fmt.Sprint(want) {
				t.Errorf("entries per write %s, want %v", writes, want)
			}
			got := o.read(n)
			seen := map[string]bool{}
			for _, r := range got {
				seen[keyID(r)] = true
			}
			if len(seen) != n {
				t.Errorf("records:%s", describe(got))
			}
		})
	}
}
