package benchenv

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// WebhookCounter is a bare HTTP receiver that answers every POST with
// 204 and counts them: the ceiling of any webhook receiver fed by the
// emulator.
type WebhookCounter struct {
	// URL is where to post.
	URL   string
	count atomic.Int64
	srv   *http.Server
}

// StartWebhookCounter listens on a free loopback port.
func StartWebhookCounter() (*WebhookCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	w := &WebhookCounter{URL: "http://" + ln.Addr().String() + "/hook"}
	w.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.count.Add(1)
		rw.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = w.srv.Serve(ln) }() // ends with ErrServerClosed at Stop
	return w, nil
}

// WaitFor returns once n requests have arrived, or ctx ends.
func (w *WebhookCounter) WaitFor(ctx context.Context, n int64) error {
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for w.count.Load() < n {
		select {
		case <-poll.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Stop closes the receiver.
func (w *WebhookCounter) Stop() { _ = w.srv.Close() }
