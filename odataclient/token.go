package odataclient

import "context"

// TokenSource supplies the OAuth bearer token for each request. Token is
// called once per request, from as many goroutines as there are requests
// in flight, so implementations must be safe for concurrent use; one that
// fetches tokens from Entra ID should cache them until shortly before they
// expire. An error from Token fails the request before anything is sent.
type TokenSource interface {
	Token(ctx context.Context) (string, error)
}

// StaticToken returns a TokenSource that always supplies token. It suits
// tests, the emulator and tokens managed outside the process.
func StaticToken(token string) TokenSource { return staticToken(token) }

type staticToken string

func (s staticToken) Token(context.Context) (string, error) { return string(s), nil }
