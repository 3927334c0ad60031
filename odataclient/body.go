package odataclient

import (
	"errors"
	"io"
	"sync"
)

// errBodyReleased is what a request body read returns once the call that
// owned it has returned.
var errBodyReleased = errors.New("odataclient: request body read after the call returned")

// bodyGuard lends a caller's body to net/http for the duration of one call.
//
// net/http may return a response before it has finished writing the request
// body (a server can answer early) and keeps reading the body afterwards.
// Callers reuse their body buffers for the next request, so once the call
// returns the guard refuses further reads; such a late write then fails,
// and net/http discards that connection instead of sending mixed bytes.
type bodyGuard struct {
	mu       sync.Mutex
	b        []byte
	released bool
}

// reader returns a fresh reader over the body; net/http asks for one per
// attempt through Request.GetBody.
func (g *bodyGuard) reader() io.ReadCloser { return &guardedReader{g: g} }

// release forbids all further reads and drops the reference to the body.
func (g *bodyGuard) release() {
	g.mu.Lock()
	g.released = true
	g.b = nil
	g.mu.Unlock()
}

type guardedReader struct {
	g   *bodyGuard
	off int
}

func (r *guardedReader) Read(p []byte) (int, error) {
	r.g.mu.Lock()
	defer r.g.mu.Unlock()
	if r.g.released {
		return 0, errBodyReleased
	}
	if r.off >= len(r.g.b) {
		return 0, io.EOF
	}
	n := copy(p, r.g.b[r.off:])
	r.off += n
	return n, nil
}

func (r *guardedReader) Close() error { return nil }
