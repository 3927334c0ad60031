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

// TokenInvalidator is implemented by token sources that cache tokens. The
// Client calls Invalidate with the token a request was refused with (401)
// before trying that request once more; the next Token call must then
// return a different, freshly issued token. Invalidate must be safe for
// concurrent use, and must ignore a token that has been replaced already,
// so that a burst of 401s fetches one new token, not one per request.
type TokenInvalidator interface {
	Invalidate(token string)
}
