package sqlserver

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/tdsfake"
	"github.com/dvsync/dvsync/internal/testenv"
)

// transport is a way for the source to reach a server: through the query
// interface directly, or over TDS with the real driver.
type transport struct {
	name    string
	connect func(t *testing.T, srv *server) (opener, string)
}

var transports = []transport{
	{"recorded", func(t *testing.T, srv *server) (opener, string) {
		return func(string) (database, error) { return &memDB{srv: srv}, nil }, "sqlserver://recorded"
	}},
	{"tds", func(t *testing.T, srv *server) (opener, string) {
		ts, err := tdsfake.Start(srv.handle)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = ts.Close()
			if err := ts.Err(); err != nil {
				t.Errorf("TDS protocol error: %v", err)
			}
		})
		return openSQL, ts.DSN("sales")
	}},
}

// eachTransport runs fn as a subtest per transport.
func eachTransport(t *testing.T, fn func(t *testing.T, tr transport)) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { fn(t, tr) })
	}
}

// fast is a Config that polls quickly.
func fast(cfg Config) Config {
	cfg.PollInterval = time.Millisecond
	cfg.MaxPollInterval = 20 * time.Millisecond
	return cfg
}

func newTestSource(t *testing.T, tr transport, srv *server, cfg Config, logger *slog.Logger) *Source {
	t.Helper()
	open, dsn := tr.connect(t, srv)
	cfg.DSN = dsn
	s, err := New(fast(cfg), logger)
	if err != nil {
		t.Fatal(err)
	}
	s.open = open
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// readN reads until n records have arrived, failing after a deadline.
func readN(t *testing.T, src interface {
	Read(context.Context) ([]change.Record, error)
}, n int) []change.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []change.Record
	for len(got) < n {
		recs, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(got), n, err)
		}
		got = append(got, recs...)
	}
	if len(got) > n {
		t.Fatalf("got %d records, want %d: %s", len(got), n, ops(got))
	}
	return got
}

// readNone checks that nothing arrives for a while: polls keep running
// (the interval is milliseconds), so a wrongly delivered record would.
func readNone(t *testing.T, src interface {
	Read(context.Context) ([]change.Record, error)
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	recs, err := src.Read(ctx)
	if err == nil {
		t.Fatalf("unexpected records: %v", recs)
	}
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*logBuffer, *slog.Logger) {
	lb := &logBuffer{}
	return lb, slog.New(slog.NewTextHandler(lb, nil))
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, what, cond)
}

func ops(recs []change.Record) string {
	var parts []string
	for i := range recs {
		parts = append(parts, recs[i].String())
	}
	return strings.Join(parts, "; ")
}

func intKey(pairs ...any) change.Key {
	var k change.Key
	for i := 0; i < len(pairs); i += 2 {
		var v change.Value
		switch x := pairs[i+1].(type) {
		case int:
			v = change.Int(int64(x))
		case string:
			v = change.Text(x)
		}
		k = append(k, change.Column{Name: pairs[i].(string), Value: v})
	}
	return k
}
