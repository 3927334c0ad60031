package dataverse

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// classify marks err, from one record's write, as retryable or permanent:
//
//   - context cancellation while ctx is done: returned as is;
//   - throttling and busy-server answers (odataclient.Error.Temporary):
//     retryable after the Retry-After the service sent;
//   - 401 and 403: fatal (change.Fatal). The client has already retried a
//     401 with a freshly issued token, so the credentials themselves are
//     refused, or the application user lacks a privilege: no record will
//     get through until someone changes the configuration;
//   - 404 for the entity set itself (Dataverse's OData URI code): fatal,
//     the table does not exist;
//   - 408 and 5xx other than 501: retryable;
//   - 404 with a "no such row" code: deferred (change.Deferred). Upserts
//     create their own row, and deletes of an absent row succeed before
//     reaching here, so such an answer to a write means a row it refers
//     to through "@odata.bind" (or a lookup in its key) does not exist
//     yet; the parent may arrive later in the stream;
//   - any other answer (400, 403, 404, 412, 413, 501, …): permanent for
//     this record;
//   - anything else (refused or reset connections, timeouts, token source
//     failures): retryable with the engine's backoff.
func classify(ctx context.Context, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return err
	}
	var oe *odataclient.Error
	if !errors.As(err, &oe) {
		return change.Retryable(err, 0)
	}
	switch {
	case oe.Temporary():
		return change.Retryable(err, oe.RetryAfter)
	case oe.StatusCode == http.StatusUnauthorized, oe.StatusCode == http.StatusForbidden:
		return change.Fatal(err)
	case oe.StatusCode == http.StatusNotFound && strings.EqualFold(oe.Code, codeODataURI):
		return change.Fatal(err)
	case oe.StatusCode == http.StatusRequestTimeout:
		return change.Retryable(err, oe.RetryAfter)
	case oe.StatusCode >= 500 && oe.StatusCode != http.StatusNotImplemented:
		return change.Retryable(err, oe.RetryAfter)
	case rowAbsent(err):
		return change.Deferred(err)
	}
	return change.Permanent(err)
}

// codeODataURI is Dataverse's code for a URL it cannot resolve; with 404,
// "Resource not found for the segment 'nosuchsets'".
const codeODataURI = "0x80060888"

// classifyLookup classifies the failure to read a table's definition. The
// table's metadata is not about any one record: a table that does not
// exist (404) or a refused caller stops the pipeline; anything else may
// pass, as classify says.
func classifyLookup(ctx context.Context, err error) error {
	var oe *odataclient.Error
	if errors.As(err, &oe) && oe.StatusCode == http.StatusNotFound {
		return change.Fatal(err)
	}
	c := classify(ctx, err)
	if change.IsDeferred(c) {
		return change.Permanent(err)
	}
	return c
}

// Dataverse's codes for "no such row"; a 404 with any other code (an
// unknown entity set, say) is a real failure, not an absent row.
var rowNotFoundCodes = [...]string{
	"",           // the documented examples often leave code empty
	"0x80040217", // ObjectDoesNotExist
	"0x80060891", // RecordNotFoundByEntityKey
}

// rowAbsent reports whether err says the addressed row does not exist.
func rowAbsent(err error) bool {
	var oe *odataclient.Error
	if !errors.As(err, &oe) || oe.StatusCode != http.StatusNotFound {
		return false
	}
	for _, c := range rowNotFoundCodes {
		if strings.EqualFold(oe.Code, c) {
			return true
		}
	}
	return false
}

// result turns the per-record errors of one Write into its return value
// (see Sink.Write).
func result(ctx context.Context, errs []error) error {
	var failed map[int]error
	retryable := 0
	var longest error
	longestWait := time.Duration(-1)
	for i, err := range errs {
		if err == nil {
			continue
		}
		if failed == nil {
			failed = make(map[int]error)
		}
		failed[i] = err
		if w, ok := change.RetryWait(err); ok {
			retryable++
			if w > longestWait {
				longest, longestWait = err, w
			}
		}
	}
	if failed == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, err := range errs {
		if change.IsFatal(err) {
			return err // the pipeline stops; no record is dead-lettered
		}
	}
	if retryable == len(errs) {
		return longest
	}
	return &change.BatchError{Failed: failed}
}
