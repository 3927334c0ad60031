package odataclient

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Error is a non-2xx answer from the Web API, decoded from the
// {"error":{"code":…,"message":…}} body Dataverse sends with every failure.
// 401 and 403 answers are Errors too. Transport failures (refused
// connections, resets, timeouts) are not: they are returned wrapped, with
// the method and path, for the caller to classify.
type Error struct {
	// StatusCode is the HTTP status, e.g. 404 or 429.
	StatusCode int
	// Code is the Dataverse error code, usually hexadecimal such as
	// "0x80060891". It is often empty, and unrelated to StatusCode.
	Code string
	// Message is the service's description of the failure.
	Message string
	// RetryAfter is the wait the service asked for in Retry-After (sent
	// with 429 throttling answers); zero when absent.
	RetryAfter time.Duration
	// Method and URL identify the request. URL never carries credentials.
	Method, URL string
}

// Error describes the failure by method, path, status, code and message.
// It never includes the bearer token or the query string.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("odataclient: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	if u, err := url.Parse(e.URL); err == nil {
		b.WriteString(u.EscapedPath())
	}
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteByte(' ')
		b.WriteString(t)
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Service protection (throttling) and server-busy codes. The service
// answers them with 429 today; the codes are checked too so that a proxy
// rewriting the status does not turn throttling into a permanent failure.
var temporaryCodes = [...]string{
	"0x80072322", // number of requests exceeded the limit
	"0x80072321", // combined execution time exceeded the limit
	"0x80072326", // number of concurrent requests exceeded the limit
	"0x8004A001", // the server is busy (SQL governor)
}

// Temporary reports whether the same request may succeed later without
// change: throttling (429 and the service protection codes), a busy server,
// and the gateway failures 502, 503 and 504.
func (e *Error) Temporary() bool {
	switch e.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	for _, c := range temporaryCodes {
		if strings.EqualFold(e.Code, c) {
			return true
		}
	}
	return false
}

// IsNotFound reports whether err is, or wraps, an *Error with status 404.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// newError decodes a non-2xx answer. A body that is not the documented
// JSON shape (an HTML page from a gateway, say) leaves Code empty; short
// plain text is kept as the message.
func newError(method string, u *url.URL, resp *http.Response, body []byte) *Error {
	e := &Error{
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Method:     method,
		URL:        u.String(),
	}
	var doc struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Error != nil {
		e.Code = doc.Error.Code
		e.Message = doc.Error.Message
		return e
	}
	text := strings.TrimSpace(string(body))
	if len(text) <= 200 && utf8.ValidString(text) && !strings.HasPrefix(text, "<") {
		e.Message = text
	}
	return e
}
