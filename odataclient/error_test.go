package odataclient

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestErrorDecoding(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		want       Error
		temporary  bool
		errorTexts []string
	}{
		{
			name:   "throttled",
			status: 429,
			header: map[string]string{"Retry-After": "7"},
			body:   `{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}`,
			want: Error{StatusCode: 429, Code: "0x80072322", RetryAfter: 7 * time.Second,
				Message: "Number of requests exceeded the limit of 6000 over time window of 300 seconds."},
			temporary:  true,
			errorTexts: []string{"POST /api/data/v9.2/accounts", "429 Too Many Requests", "0x80072322", "6000"},
		},
		{
			name:      "throttling code behind another status",
			status:    400,
			body:      `{"error":{"code":"0x80072326","message":"Number of concurrent requests exceeded the limit of 52."}}`,
			want:      Error{StatusCode: 400, Code: "0x80072326", Message: "Number of concurrent requests exceeded the limit of 52."},
			temporary: true,
		},
		{
			name:      "server busy",
			status:    500,
			body:      `{"error":{"code":"0x8004a001","message":"The server is busy and the request was not completed. Try again later."}}`,
			want:      Error{StatusCode: 500, Code: "0x8004a001", Message: "The server is busy and the request was not completed. Try again later."},
			temporary: true,
		},
		{
			name:       "gateway page",
			status:     502,
			body:       "<html><body>Bad gateway</body></html>",
			want:       Error{StatusCode: 502},
			temporary:  true,
			errorTexts: []string{"502 Bad Gateway"},
		},
		{
			name:      "plain text",
			status:    503,
			header:    map[string]string{"Retry-After": "2"},
			body:      "Service Unavailable\n",
			want:      Error{StatusCode: 503, Message: "Service Unavailable", RetryAfter: 2 * time.Second},
			temporary: true,
		},
		{name: "gateway timeout", status: 504, want: Error{StatusCode: 504}, temporary: true},
		{
			name:       "bad request",
			status:     400,
			body:       `{"error":{"code":"0x80048d19","message":"Error identified in Payload provided by the user for Entity :'accounts'"}}`,
			want:       Error{StatusCode: 400, Code: "0x80048d19", Message: "Error identified in Payload provided by the user for Entity :'accounts'"},
			errorTexts: []string{"400 Bad Request: 0x80048d19: Error identified"},
		},
		{
			name:       "unauthorized",
			status:     401,
			header:     map[string]string{"WWW-Authenticate": `Bearer authorization_uri=https://login.microsoftonline.com/x/oauth2/authorize`},
			want:       Error{StatusCode: 401},
			errorTexts: []string{"401 Unauthorized"},
		},
		{
			name:   "forbidden",
			status: 403,
			body:   `{"error":{"code":"0x80040220","message":"The user does not hold the necessary privileges."}}`,
			want:   Error{StatusCode: 403, Code: "0x80040220", Message: "The user does not hold the necessary privileges."},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			})
			c := newClient(t, s)
			_, err := c.Create(t.Context(), "accounts", []byte(`{"name":"x"}`), WriteOptions{})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v (%T), want *Error", err, err)
			}
			want := tc.want
			want.Method = http.MethodPost
			want.URL = s.URL + "/api/data/v9.2/accounts"
			if *e != want {
				t.Fatalf("got  %#v\nwant %#v", *e, want)
			}
			if e.Temporary() != tc.temporary {
				t.Errorf("Temporary() = %v, want %v", e.Temporary(), tc.temporary)
			}
			msg := e.Error()
			if strings.Contains(msg, testToken) {
				t.Fatalf("Error() leaks the token: %s", msg)
			}
			for _, text := range tc.errorTexts {
				if !strings.Contains(msg, text) {
					t.Errorf("Error() = %q, want it to contain %q", msg, text)
				}
			}
		})
	}
}

func TestErrorOmitsQuery(t *testing.T) {
	e := &Error{StatusCode: 400, Method: "GET", URL: "https://org/api/data/v9.2/accounts?$filter=secret%20eq%201"}
	if got := e.Error(); got != "odataclient: GET /api/data/v9.2/accounts: 400 Bad Request" {
		t.Fatalf("Error() = %q", got)
	}
}

func TestIsNotFoundUnwraps(t *testing.T) {
	err := fmt.Errorf("context: %w", &Error{StatusCode: 404})
	if !IsNotFound(err) || IsNotFound(&Error{StatusCode: 400}) || IsNotFound(errors.New("x")) || IsNotFound(nil) {
		t.Fatal("IsNotFound misclassifies")
	}
}
