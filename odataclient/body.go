package odataclient

import "bytes"

// lend returns the body to give net/http, which may go on reading it after
// the call returned: a server can answer before it has read the whole
// body, and the transport then finishes writing it. A body the client
// built for this request (own) is lent as it is; a caller's is copied,
// since the caller may reuse its buffer as soon as the call returns.
//
// The body is then sent as a *bytes.Reader, which net/http knows to be in
// memory: it writes the headers and the body in one go, without flushing
// the headers first or allocating a buffer to copy the body through.
func (r *request) lend() []byte {
	if !r.own && len(r.body) > 0 {
		r.body, r.own = bytes.Clone(r.body), true
	}
	return r.body
}
