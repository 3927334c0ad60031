package emulator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

const (
	// defaultWebhookTimeout is Dataverse's timeout for a webhook request.
	defaultWebhookTimeout = 60 * time.Second
	// webhookWorkers deliver the asynchronous runs, each one at a time.
	webhookWorkers = 4
	// maxWebhookFailures bounds the failures kept; the oldest go first.
	maxWebhookFailures = 1000
	codeIsvAborted     = "0x80040265"
)

// WebhookFailure is a webhook delivery that failed for good, as Dataverse
// records it on a failed system job (asynchronous steps) or as the error
// of the write (synchronous steps).
type WebhookFailure struct {
	Webhook  string    // the service endpoint's name
	Step     string    // the step's name
	StepID   uuid.UUID // the step's sdkmessageprocessingstepid
	Message  string    // Create, Update or Delete
	Table    string    // logical name
	RecordID uuid.UUID
	// Sync marks a synchronous step, whose failure failed the write.
	Sync bool
	// StatusCode is the receiver's last answer; 0 when there was none.
	StatusCode int
	// Err describes the failure; it never contains the endpoint's key.
	Err string
	// Attempts is the number of requests made: 0 when the run never
	// started (queue at Options.WebhookQueueLimit, emulator closed), 2
	// after a retried 5xx.
	Attempts int
	At       time.Time // when the failure was recorded, UTC
}

// compiledHook is a Webhook ready to post to: the URL with its query-string
// auth appended and its header auth.
type compiledHook struct {
	name    string
	url     string
	headers http.Header
	// hub, for an EventHub endpoint, publishes instead of posting.
	hub *eventHub
}

// compiledStep is a WebhookStep bound to its endpoint and table.
type compiledStep struct {
	id      uuid.UUID
	name    string
	hook    *compiledHook
	message string
	stage   int
	sync    bool
	filter  map[string]bool // nil: every update
	images  []compiledImage
}

type compiledImage struct {
	alias     string
	pre, post bool
	cols      map[string]bool // nil: all columns
}

// tableHooks are the steps registered on one table. It is immutable after
// New; a nil *tableHooks has no steps.
type tableHooks struct {
	d     *dispatcher
	steps map[string][]*compiledStep // by message, by stage then declaration
}

// delivery is one asynchronous step run waiting for a worker.
type delivery struct {
	step *compiledStep
	ev   *writeEvent
}

// dispatcher posts contexts to webhooks: synchronous steps on the writing
// goroutine, asynchronous ones from a queue served by workers.
type dispatcher struct {
	client       *http.Client
	orgName      string
	businessUnit uuid.UUID
	organization uuid.UUID

	queue  *runQueue
	ctx    context.Context // cancelled by Close to abort deliveries in flight
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex // guards closed and failures, and puts on the queues
	closed   bool
	failures []WebhookFailure

	hubs []*eventHub // closed once the workers have stopped
}

// compileWebhooks binds the schema's webhooks and event hubs to the tables
// and starts the workers; it returns nil when there are none.
func (s *Server) compileWebhooks(hooks []Webhook, hubs []EventHub, opts Options) *dispatcher {
	if len(hooks)+len(hubs) == 0 {
		return nil
	}
	timeout := opts.WebhookTimeout
	if timeout <= 0 {
		timeout = defaultWebhookTimeout
	}
	// Every worker keeps its connection between runs: the default
	// transport keeps two per host, so the other workers would dial
	// afresh for each run.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = webhookWorkers
	d := &dispatcher{
		client:       &http.Client{Timeout: timeout, Transport: tr},
		orgName:      opts.OrganizationName,
		businessUnit: s.businessUnitID,
		organization: s.organizationID,
		queue:        newRunQueue(opts.WebhookQueueLimit),
	}
	if d.orgName == "" {
		d.orgName = "emulator"
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	for _, w := range hooks {
		s.bindSteps(d, compileHook(w), "webhook", w.Steps)
	}
	for _, e := range hubs {
		hub := newEventHub(e, opts.WebhookQueueLimit)
		d.hubs = append(d.hubs, hub)
		s.bindSteps(d, &compiledHook{name: e.Name, hub: hub}, "eventhub", e.Steps)
		d.wg.Add(1)
		go d.publishLoop(hub)
	}
	for _, ts := range s.tables {
		if ts.hooks != nil {
			for _, steps := range ts.hooks.steps {
				sort.SliceStable(steps, func(i, j int) bool { return steps[i].stage < steps[j].stage })
			}
		}
	}
	d.wg.Add(webhookWorkers)
	for range webhookWorkers {
		go d.work()
	}
	return d
}

// bindSteps registers the steps of endpoint h, of the given kind, on their
// tables.
func (s *Server) bindSteps(d *dispatcher, h *compiledHook, kind string, steps []WebhookStep) {
	for i, ws := range steps {
		ts := s.byLogical[ws.Table]
		if ts.hooks == nil {
			ts.hooks = &tableHooks{d: d, steps: map[string][]*compiledStep{}}
		}
		st := &compiledStep{
			// Stable across restarts, so receivers can key on it.
			id:      uuid.NewSHA1(uuid.NameSpaceURL, fmt.Appendf(nil, "dvsync-emulator:%s:%s:%d", kind, h.name, i)),
			name:    ws.Name,
			hook:    h,
			message: ws.Message,
			stage:   stageOf(&ws),
			sync:    ws.Mode == "sync",
		}
		if st.name == "" {
			st.name = fmt.Sprintf("%s: %s of %s", h.name, ws.Message, ws.Table)
		}
		if len(ws.FilteringAttributes) > 0 {
			st.filter = setOf(ws.FilteringAttributes)
		}
		for _, im := range ws.Images {
			ci := compiledImage{alias: imageAlias(im), pre: im.Type != "post", post: im.Type != "pre"}
			if len(im.Attributes) > 0 {
				ci.cols = setOf(im.Attributes)
			}
			st.images = append(st.images, ci)
		}
		ts.hooks.steps[ws.Message] = append(ts.hooks.steps[ws.Message], st)
	}
}

func compileHook(w Webhook) *compiledHook {
	h := &compiledHook{name: w.Name, url: w.URL, headers: http.Header{}}
	q := url.Values{}
	switch w.Auth.Type {
	case "webhookkey":
		q.Set("code", w.Auth.Value)
	case "querystring":
		for k, v := range w.Auth.Values {
			q.Set(k, v)
		}
	case "header":
		for k, v := range w.Auth.Values {
			h.headers.Set(k, v)
		}
	}
	if len(q) > 0 {
		sep := "?"
		if strings.Contains(h.url, "?") {
			sep = "&"
		}
		h.url += sep + q.Encode()
	}
	return h
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// fire runs the steps registered for a write of table d (see run). It
// does nothing, and allocates nothing, on a table without steps, so that
// writes without webhooks pay for none.
func (h *tableHooks) fire(message string, d *tableDef, before, after *row, cols []colVal, st stamp) ([]*delivery, error) {
	if h == nil || len(h.steps[message]) == 0 {
		return nil, nil
	}
	var sent map[string]any
	if cols != nil {
		sent = make(map[string]any, len(cols))
		for _, c := range cols {
			sent[c.attr.name] = c.v
		}
	}
	return h.run(&writeEvent{message: message, def: d, before: before, after: after, sent: sent, st: st, correlation: uuid.New()})
}

// run runs the synchronous steps registered for ev, in stage order, and
// returns the asynchronous runs to start once the write commits. The
// caller holds the table's lock and has not stored the write yet, so a
// failing synchronous step leaves nothing to undo; its error is the
// write's answer, Dataverse's ISV-aborted error.
func (h *tableHooks) run(ev *writeEvent) ([]*delivery, error) {
	var async []*delivery
	for _, st := range h.steps[ev.message] {
		if !st.fires(ev) {
			continue
		}
		if !st.sync {
			async = append(async, &delivery{step: st, ev: ev})
			continue
		}
		// Not d.ctx: a synchronous step belongs to its write, which
		// Close does not abort; the client timeout bounds it.
		if f := h.d.deliver(context.Background(), st, ev, 1); f != nil {
			return nil, &apiError{http.StatusBadRequest, codeIsvAborted, fmt.Sprintf(
				"The synchronous webhook step '%s' failed, so the %s was cancelled: %s", st.name, ev.message, f.Err)}
		}
	}
	return async, nil
}

// fires reports whether the step runs for ev: an Update step with filtering
// attributes runs when the request set at least one of them.
func (st *compiledStep) fires(ev *writeEvent) bool {
	if st.filter == nil {
		return true
	}
	for name := range ev.sent {
		if st.filter[name] {
			return true
		}
	}
	return false
}

// commit starts the asynchronous runs of a stored write, or, inside an
// atomic group (j non-nil), attaches them to the group's journal so that
// they start only if the group commits.
func (h *tableHooks) commit(j *journal, runs []*delivery) {
	if len(runs) == 0 {
		return
	}
	if j != nil && len(j.entries) > 0 {
		e := &j.entries[len(j.entries)-1]
		e.runs = append(e.runs, runs...)
		return
	}
	h.d.enqueue(runs)
}

// enqueue hands runs to the workers without waiting, so that slow
// receivers never slow down writers. A closed dispatcher, or a queue at
// the operator's limit, fails the run instead.
func (d *dispatcher) enqueue(runs []*delivery) {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range runs {
		why := ""
		switch {
		case d.closed:
			why = "the emulator was closed before the step ran"
		default:
			q := d.queue
			if r.step.hook.hub != nil {
				q = r.step.hook.hub.queue // published in order by its own loop
			}
			if q.put(r) {
				continue
			}
			why = fmt.Sprintf("the asynchronous queue is full (%d runs waiting)", q.limit)
		}
		d.recordLocked(r.step, r.ev, 0, 0, why)
	}
}

func (d *dispatcher) work() {
	defer d.wg.Done()
	buf := make([]*delivery, 0, 1)
	for {
		var ok bool
		if buf, ok = d.queue.take(buf[:0], 1); !ok {
			return
		}
		r := buf[0]
		if d.ctx.Err() != nil {
			d.record(r.step, r.ev, 0, 0, "the emulator was closed before the step ran")
			continue
		}
		// An asynchronous step gets one more attempt after 502, 503 or 504.
		d.deliver(d.ctx, r.step, r.ev, 2)
	}
}

// deliver posts the context of ev to the step's endpoint, making up to
// attempts attempts while the answer is 502, 503 or 504. It records and
// returns the failure, or returns nil on a 2xx answer.
func (d *dispatcher) deliver(ctx context.Context, st *compiledStep, ev *writeEvent, attempts int) *WebhookFailure {
	body, trimmed, err := d.buildContext(st, ev, uuid.New())
	if err != nil {
		return d.record(st, ev, 0, 0, err.Error())
	}
	var status int
	for n := 1; ; n++ {
		status, err = d.post(ctx, st, ev, body, trimmed)
		if err == nil && status >= 200 && status < 300 {
			return nil
		}
		retryable := status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
		if n >= attempts || !retryable {
			why := fmt.Sprintf("the endpoint answered %d %s", status, http.StatusText(status))
			if err != nil {
				why = err.Error()
			}
			return d.record(st, ev, status, n, why)
		}
	}
}

// post sends one request with Dataverse's headers and the endpoint's auth.
// Only the status is read; the body is discarded.
func (d *dispatcher) post(ctx context.Context, st *compiledStep, ev *writeEvent, body []byte, trimmed bool) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.hook.url, bytes.NewReader(body))
	if err != nil {
		return 0, errors.New("the endpoint URL is not valid")
	}
	for k, v := range st.hook.headers {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-ms-dynamics-organization", d.orgName)
	req.Header.Set("x-ms-dynamics-entity-name", ev.def.logical)
	req.Header.Set("x-ms-dynamics-request-name", ev.message)
	req.Header.Set("x-ms-correlation-request-id", ev.correlation.String())
	if trimmed {
		req.Header.Set("x-ms-dynamics-msg-size-exceeded", "true")
	}
	resp, err := d.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, which may hold the webhook key.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return 0, fmt.Errorf("POST to webhook %s: %w", st.hook.name, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (d *dispatcher) record(st *compiledStep, ev *writeEvent, status, attempts int, why string) *WebhookFailure {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recordLocked(st, ev, status, attempts, why)
}

func (d *dispatcher) recordLocked(st *compiledStep, ev *writeEvent, status, attempts int, why string) *WebhookFailure {
	f := WebhookFailure{
		Webhook: st.hook.name, Step: st.name, StepID: st.id, Message: ev.message,
		Table: ev.def.logical, RecordID: ev.id(), Sync: st.sync,
		StatusCode: status, Err: why, Attempts: attempts, At: time.Now().UTC(),
	}
	if len(d.failures) == maxWebhookFailures {
		d.failures = append(d.failures[:0], d.failures[1:]...)
	}
	d.failures = append(d.failures, f)
	return &f
}

// shutdown stops taking runs, lets the workers finish the queued ones until
// ctx is done, then aborts what is left.
func (d *dispatcher) shutdown(ctx context.Context) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		d.queue.close()
		for _, h := range d.hubs {
			h.queue.close()
		}
	}
	d.mu.Unlock()
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	defer func() {
		for _, h := range d.hubs {
			h.close()
		}
	}()
	select {
	case <-done:
		d.cancel()
		return nil
	case <-ctx.Done():
		d.cancel()
		<-done
		return fmt.Errorf("emulator: webhook deliveries abandoned: %w", ctx.Err())
	}
}

// WebhookFailures returns the webhook runs that failed for good, oldest
// first (at most the last 1000): asynchronous runs whose attempts failed,
// and synchronous runs that failed their write. It is safe for concurrent
// use.
func (s *Server) WebhookFailures() []WebhookFailure {
	if s.hooks == nil {
		return nil
	}
	s.hooks.mu.Lock()
	defer s.hooks.mu.Unlock()
	return append([]WebhookFailure(nil), s.hooks.failures...)
}

// Shutdown stops webhook delivery: writes after it record their
// asynchronous runs as failed, queued runs are delivered until ctx is done,
// and then the runs in flight are aborted. It returns when the workers have
// stopped; the error is non-nil when ctx ended first. The Server keeps
// serving the Web API. Calling it again is harmless.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.hooks.shutdown(ctx)
}

// Close stops webhook delivery at once: runs in flight are aborted and
// queued runs are recorded as failed. It returns when the workers have
// stopped. A Server without webhooks has nothing to stop.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if s.hooks != nil {
		s.hooks.cancel()
	}
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
