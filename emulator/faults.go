package emulator

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Faults are failures injected into Web API requests, for testing how a
// client copes with a misbehaving service. They apply after authentication
// and service protection, so an injected delay counts as execution time and
// holds a concurrency slot. The zero Faults inject nothing.
//
// Faults can be given in Options and changed at run time through the admin
// endpoint /_emulator/faults (GET shows, PUT replaces, DELETE clears),
// which takes the same bearer token as the API and a JSON body such as
//
//	{"latency_ms":200,"error_rate":0.1,"throttle_rate":0,"drop_rate":0,"count":5,"match":"accounts"}
type Faults struct {
	// Latency delays every matching request before it is handled. The
	// delay ends early when the client gives up.
	Latency time.Duration
	// ErrorRate is the fraction (0 to 1) of matching requests answered
	// with ErrorStatus and a Dataverse error body.
	ErrorRate float64
	// ErrorStatus is the status of injected errors; default 503.
	ErrorStatus int
	// ThrottleRate is the fraction (0 to 1) of matching requests answered
	// 429 as the request-count service protection limit does; 1 is a 429
	// storm.
	ThrottleRate float64
	// RetryAfter is the Retry-After of injected 429s; default 1 second.
	RetryAfter time.Duration
	// DropRate is the fraction (0 to 1) of matching requests whose
	// connection is closed without an answer.
	DropRate float64
	// Count, when positive, limits the faults to the next Count matching
	// requests; then they clear themselves. Zero means until changed.
	Count int
	// Match, when set, limits the faults to requests whose path and query
	// contain it.
	Match string
}

// faultsJSON is the admin endpoint's wire form of Faults.
type faultsJSON struct {
	LatencyMS         int64   `json:"latency_ms"`
	ErrorRate         float64 `json:"error_rate"`
	ErrorStatus       int     `json:"error_status"`
	ThrottleRate      float64 `json:"throttle_rate"`
	RetryAfterSeconds float64 `json:"retry_after_seconds"`
	DropRate          float64 `json:"drop_rate"`
	Count             int     `json:"count"`
	Match             string  `json:"match"`
}

func (f Faults) toJSON() faultsJSON {
	return faultsJSON{f.Latency.Milliseconds(), f.ErrorRate, f.ErrorStatus, f.ThrottleRate,
		f.RetryAfter.Seconds(), f.DropRate, f.Count, f.Match}
}

func (j faultsJSON) faults() Faults {
	return Faults{
		Latency: time.Duration(j.LatencyMS) * time.Millisecond, ErrorRate: j.ErrorRate,
		ErrorStatus: j.ErrorStatus, ThrottleRate: j.ThrottleRate,
		RetryAfter: time.Duration(j.RetryAfterSeconds * float64(time.Second)),
		DropRate:   j.DropRate, Count: j.Count, Match: j.Match,
	}
}

// faultState holds the active Faults; Count counts down as requests match.
type faultState struct {
	mu     sync.Mutex
	faults Faults
}

func (fs *faultState) set(f Faults) {
	fs.mu.Lock()
	fs.faults = f
	fs.mu.Unlock()
}

func (fs *faultState) get() Faults {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.faults
}

// take returns the faults that apply to a request for target, consuming
// one of Count.
func (fs *faultState) take(target string) (Faults, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.faults
	if f == (Faults{}) || (f.Match != "" && !strings.Contains(target, f.Match)) {
		return Faults{}, false
	}
	if f.Count > 0 {
		fs.faults.Count--
		if fs.faults.Count == 0 {
			fs.faults = Faults{}
		}
	}
	return f, true
}

// injectFaults applies the active faults to r. A dropped connection ends
// the handler by panicking with http.ErrAbortHandler, which net/http turns
// into a closed connection without a response.
func (s *Server) injectFaults(w http.ResponseWriter, r *http.Request) error {
	f, ok := s.faults.take(r.URL.RequestURI())
	if !ok {
		return nil
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			// Nobody reads this answer; it only ends the handler.
			return &apiError{http.StatusServiceUnavailable, codeUnexpected, "The client closed the request."}
		}
	}
	switch {
	case f.DropRate > 0 && rand.Float64() < f.DropRate:
		panic(http.ErrAbortHandler)
	case f.ThrottleRate > 0 && rand.Float64() < f.ThrottleRate:
		retry := f.RetryAfter
		if retry <= 0 {
			retry = time.Second
		}
		w.Header().Set("Retry-After", retryAfterSeconds(retry))
		return &apiError{http.StatusTooManyRequests, codeThrottleRequests,
			"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}
	case f.ErrorRate > 0 && rand.Float64() < f.ErrorRate:
		status := f.ErrorStatus
		if status == 0 {
			status = http.StatusServiceUnavailable
		}
		return &apiError{status, codeUnexpected, "An injected fault: the dvsync Dataverse emulator was asked to fail this request."}
	}
	return nil
}

// serveAdmin serves the emulator's own endpoints under /_emulator/:
// faults (GET, PUT, DELETE) and reset (POST), which deletes every row.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) error {
	switch strings.TrimPrefix(r.URL.Path, "/_emulator/") {
	case "faults":
		switch r.Method {
		case http.MethodGet:
		case http.MethodPut, http.MethodPost:
			data, err := readBody(w, r)
			if err != nil {
				return err
			}
			var j faultsJSON
			dec := json.NewDecoder(strings.NewReader(string(data)))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&j); err != nil {
				return &apiError{http.StatusBadRequest, codePayload, "The faults body is not valid: " + err.Error()}
			}
			if err := j.validate(); err != nil {
				return &apiError{http.StatusBadRequest, codePayload, err.Error()}
			}
			s.faults.set(j.faults())
		case http.MethodDelete:
			s.faults.set(Faults{})
		default:
			return errMethodNotAllowed(r.Method)
		}
		body, _ := json.Marshal(s.faults.get().toJSON())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
		return nil
	case "reset":
		if r.Method != http.MethodPost {
			return errMethodNotAllowed(r.Method)
		}
		s.reset()
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return errSegmentNotFound(strings.TrimPrefix(r.URL.Path, "/"))
}

func (j faultsJSON) validate() error {
	for _, rate := range []float64{j.ErrorRate, j.ThrottleRate, j.DropRate} {
		if rate < 0 || rate > 1 {
			return errors.New("fault rates must be between 0 and 1")
		}
	}
	if j.ErrorStatus != 0 && (j.ErrorStatus < 500 || j.ErrorStatus > 599) {
		return errors.New("error_status must be a 5xx status")
	}
	if j.LatencyMS < 0 || j.Count < 0 || j.RetryAfterSeconds < 0 {
		return errors.New("latency_ms, count and retry_after_seconds must not be negative")
	}
	return nil
}

// reset deletes every row of every table but systemusers. It waits for writes in flight,
// including change sets, and keeps the version counter, so ETags issued
// before a reset never reappear.
func (s *Server) reset() {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	for _, ts := range s.tables {
		if ts.def.logical == systemUserLogical {
			continue // the users are configuration, not data
		}
		ts.mu.Lock()
		ts.clearRows()
		// Deletions before the reset are forgotten, so earlier delta
		// tokens expire.
		clear(ts.deleted)
		ts.floor = s.version.Add(1)
		ts.mu.Unlock()
	}
}
