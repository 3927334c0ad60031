// Package odataclient is a small client for the Microsoft Dataverse Web API
// (OData v4): create, update, upsert and delete by primary or alternate key,
// retrieve, paged queries; change tracking (TrackChanges, NextDelta);
// table metadata: definitions, columns and alternate keys, cached per table
// by a MetadataCache; $batch requests with change sets (Batch), the bulk
// messages CreateMultiple, UpdateMultiple, UpsertMultiple and
// DeleteMultiple; and OAuth 2.0 client credentials tokens from Microsoft
// Entra ID (NewClientCredentials).
//
// It follows the shape of a protocol library rather than an SDK. It starts
// no goroutines, never logs and never sleeps: every method makes one HTTP
// request under the caller's context (MetadataCache.Table three) and
// returns either the decoded answer or an error. The one resend is a
// request refused with 401 while the token source can drop its cached
// token (TokenInvalidator): it is sent once more with a fresh token.
// Retry policy, throttling back-off
// and concurrency limits belong to the caller, which is why every non-2xx
// answer comes back as an *Error carrying the status, the Dataverse error
// code and any Retry-After the service asked for, and DOPHint reports the
// parallelism the service last recommended. (The client credentials token
// source is the one part that keeps state: it caches its token.)
//
// A Client is safe for concurrent use by multiple goroutines. It keeps no
// cookies, so the service's server-affinity cookie is never sent back and
// parallel requests spread over the service's web servers, each of which
// applies its own service protection limits.
//
// The bearer token is sent only to the host of Options.BaseURL and never
// appears in an error.
package odataclient
