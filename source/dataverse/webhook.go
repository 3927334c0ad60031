package dataverse

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/dvevent"
	"github.com/dvsync/dvsync/state"
)

// receiver is the webhook endpoint's HTTP server.
type receiver struct {
	srv    *http.Server
	ln     net.Listener
	served chan error
}

// Addr returns the address the webhook receiver listens on (useful with
// port 0), or nil when none runs. Call it between Open and Close.
func (s *Source) Addr() net.Addr {
	if s.hook == nil {
		return nil
	}
	return s.hook.ln.Addr()
}

func (s *Source) startReceiver() (*receiver, error) {
	w := s.cfg.Webhook
	ln, err := net.Listen("tcp", w.Listen)
	if err != nil {
		return nil, fmt.Errorf("dataverse source: webhook listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(w.Path, s.serveHook)
	r := &receiver{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			// Dataverse gives up after 60 seconds; a body that takes
			// longer is not worth waiting for.
			ReadTimeout: time.Minute,
		},
		ln:     ln,
		served: make(chan error, 1),
	}
	go func() {
		var err error
		if w.TLSCertFile != "" {
			err = r.srv.ServeTLS(ln, w.TLSCertFile, w.TLSKeyFile)
		} else {
			err = r.srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		if err != nil {
			s.fail(fmt.Errorf("dataverse source: webhook receiver: %w", err))
		}
		r.served <- err
	}()
	s.log.Info("webhook receiver listening", "addr", ln.Addr().String(), "path", w.Path, "tls", w.TLSCertFile != "")
	return r, nil
}

func (r *receiver) shutdown(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	if err != nil {
		_ = r.srv.Close()
	}
	if serveErr := <-r.served; err == nil {
		err = serveErr
	}
	return err
}

// authorized checks every configured credential in constant time. It
// returns which kind failed, for the log; never the value.
func (s *Source) authorized(r *http.Request) (bool, string) {
	a := &s.cfg.Webhook.Auth
	q := r.URL.Query()
	equal := func(got, want string) bool {
		return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
	}
	if a.WebhookKey != "" && !equal(q.Get("code"), a.WebhookKey) {
		return false, "webhook key"
	}
	for name, want := range a.Headers {
		if !equal(r.Header.Get(name), want) {
			return false, "header " + name
		}
	}
	for name, want := range a.Query {
		if !equal(q.Get(name), want) {
			return false, "query parameter " + name
		}
	}
	return true, ""
}

// serveHook accepts one RemoteExecutionContext. It answers 2xx only after
// the change is stored (or known to be a duplicate or dvsync's own), so
// Dataverse retries whatever it does not see accepted.
func (s *Source) serveHook(w http.ResponseWriter, r *http.Request) {
	defer s.hooks.Add(1)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "only POST", http.StatusMethodNotAllowed)
		return
	}
	if ok, failed := s.authorized(r); !ok {
		s.log.Warn("webhook request refused: wrong or missing credential", "credential", failed, "remote", r.RemoteAddr)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	limit := s.cfg.Webhook.MaxBodyBytes
	if r.ContentLength > limit {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		s.log.Warn("webhook body over the limit refused", "limit", limit, "remote", r.RemoteAddr)
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "reading the body failed", http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	ev, err := dvevent.Decode(body)
	var rec change.Record
	if err == nil {
		ev.SizeExceeded = strings.EqualFold(r.Header.Get("x-ms-dynamics-msg-size-exceeded"), "true")
		rec, err = ev.Record()
	}
	if err != nil {
		s.refuse(ctx, w, body, err)
		return
	}
	c := candidate{rec: rec, id: ev.PrimaryEntityID}
	c.version, c.hasVersion = ev.Version()
	c.echo = s.isOwn(ev.UserID) || s.isOwn(ev.InitiatingUserID) || (s.cfg.Tag != "" && ev.Tag() == s.cfg.Tag)
	c.delivery = ev.RequestID
	if c.delivery == "" {
		c.delivery = ev.OperationID
	}
	if c.delivery != "" {
		c.delivery += "/" + ev.MessageName + "/" + ev.PrimaryEntityID
	}
	c.rec.Meta["source"] = "webhook"
	if ev.SizeExceeded && rec.Op != change.OpDelete {
		// Dataverse emptied the target and images: there is nothing to
		// apply but the fact that the row changed, which the poller
		// (when it polls this table) brings with the row.
		s.log.Warn("webhook context trimmed by Dataverse; the change arrives only through the poller",
			"table", rec.Table, "id", ev.PrimaryEntityID, "message", ev.MessageName)
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := s.admitHook(ctx, c); err != nil {
		// 503 makes Dataverse retry an asynchronous step.
		s.log.Error("webhook event not stored", "table", rec.Table, "id", ev.PrimaryEntityID, "err", err)
		http.Error(w, "not stored", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// refuse keeps a body that does not decode, for an operator to look at,
// and answers 400, which Dataverse does not retry.
func (s *Source) refuse(ctx context.Context, w http.ResponseWriter, body []byte, reason error) {
	if err := s.store.InboxKeep(ctx, s.cfg.Name, state.KeptBody{Reason: reason.Error(), Body: body}); err != nil {
		s.log.Error("malformed webhook body not kept", "err", err)
		http.Error(w, "not stored", http.StatusServiceUnavailable)
		return
	}
	s.log.Warn("malformed webhook body refused and kept", "reason", reason.Error(), "bytes", len(body))
	http.Error(w, "malformed RemoteExecutionContext: "+reason.Error(), http.StatusBadRequest)
}
