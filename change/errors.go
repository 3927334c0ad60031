package change

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors are classified once, by the adapter that understands them, and
// acted on in one place, the engine:
//
//   - a RetryableError (for example HTTP 429 with Retry-After, a dropped
//     connection) makes the engine wait and try the same write again;
//   - a PermanentError for one record sends that record to the dead-letter
//     store with the reason, and the pipeline carries on;
//   - a BatchError says which records of a batch failed, and how;
//   - anything else is treated as retryable with the engine's own backoff.

// RetryableError is a failure that may succeed if tried again later.
type RetryableError struct {
	Err error
	// Wait is how long the other side asked us to wait; zero means the
	// engine chooses with its backoff.
	Wait time.Duration
}

func (e *RetryableError) Error() string {
	if e.Wait > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.Wait)
	}
	return e.Err.Error()
}

func (e *RetryableError) Unwrap() error { return e.Err }

// Retryable marks err as retryable after wait (zero: engine's backoff).
func Retryable(err error, wait time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err, Wait: wait}
}

// PermanentError is a failure that retrying will not fix: the record is
// malformed for its destination, violates a constraint, or names a column
// that does not exist.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent for the record it concerns.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is marked permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryWait returns the wait a RetryableError asks for, and whether err is
// explicitly retryable.
func RetryWait(err error) (time.Duration, bool) {
	var r *RetryableError
	if errors.As(err, &r) {
		return r.Wait, true
	}
	return 0, false
}

// BatchError reports a partially failed batch write. Records whose index
// is absent from Failed were made durable. Each failure is classified as
// above; a sink never returns a BatchError whose Failed is empty.
type BatchError struct {
	// Failed maps the index of a record in the written batch to its error.
	Failed map[int]error
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d record(s) failed", len(e.Failed))
	n := 0
	for i, err := range e.Failed {
		if n == 3 {
			b.WriteString("; ...")
			break
		}
		fmt.Fprintf(&b, "; #%d: %v", i, err)
		n++
	}
	return b.String()
}

// DeferredError is a failure caused by ordering, not by the record: the
// record refers to something that is not at the destination yet (for
// example a lookup whose parent row has not been written), and the write
// should be tried again after the records that follow it in the stream
// have been written. The engine parks such a record rather than
// dead-lettering it, holds back later records of the same key behind it,
// and dead-letters it only after a bounded number of retries.
type DeferredError struct{ Err error }

func (e *DeferredError) Error() string { return e.Err.Error() }
func (e *DeferredError) Unwrap() error { return e.Err }

// Deferred marks err as deferred: the record it concerns cannot be written
// yet because something it refers to is missing, and should be retried
// after the records that follow it have been written.
func Deferred(err error) error {
	if err == nil {
		return nil
	}
	return &DeferredError{Err: err}
}

// IsDeferred reports whether err is marked deferred.
func IsDeferred(err error) bool {
	var d *DeferredError
	return errors.As(err, &d)
}

// FatalError is a failure that is not the fault of any record and that no
// retry will fix: the destination refuses the pipeline's credentials after
// a fresh token, or the table written to does not exist. Dead-lettering
// every record would empty the stream into the dead-letter store, so a
// sink returns it as Write's whole error (never inside a BatchError) and
// the engine stops the pipeline with it.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Fatal marks err as fatal for the pipeline.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return &FatalError{Err: err}
}

// IsFatal reports whether err is marked fatal.
func IsFatal(err error) bool {
	var f *FatalError
	return errors.As(err, &f)
}

// MetaExpectedVersion is the Record.Meta key by which the engine asks a
// sink for a conditional write: its value is the version the destination
// row must still have. A sink that honours it writes the record only if
// the row is at that version, and fails the record with a ConflictError
// otherwise. For Dataverse the version is an ETag such as W/"1234"; for a
// SQL table, whose rows have no version, it is ExpectedRow or
// ExpectedAbsent.
const MetaExpectedVersion = "dvsync.expected_version"

// Values of MetaExpectedVersion for SQL tables.
const (
	// ExpectedRow: the row must exist and hold the values of the record's
	// Before in the columns Before names.
	ExpectedRow = "row"
	// ExpectedAbsent: the row must not exist.
	ExpectedAbsent = "absent"
)

// ConflictError is a conditional write refused because the destination row
// changed since the version the write expected (HTTP 412, or a SQL row no
// longer equal to the last synced values). It concerns one record, inside
// a BatchError or alone for a batch of one. The engine hands it to its
// conflict resolver rather than retrying or dead-lettering the record.
type ConflictError struct {
	Err error
	// Current is the destination row as the sink found it, in the
	// destination's names; nil when the row is gone or was not read.
	Current Row
	// Deleted is true when the destination row no longer exists.
	Deleted bool
	// Version is the destination row's current version (ETag); empty when
	// unknown.
	Version string
	// Time is when the destination row was last modified; zero when
	// unknown.
	Time time.Time
}

func (e *ConflictError) Error() string { return e.Err.Error() }
func (e *ConflictError) Unwrap() error { return e.Err }

// AsConflict returns the ConflictError in err's chain, or nil.
func AsConflict(err error) *ConflictError {
	var c *ConflictError
	if errors.As(err, &c) {
		return c
	}
	return nil
}

// MetaVersion is the Record.Meta key under which a sink that honoured
// MetaExpectedVersion leaves the row's new version after a successful
// write (a Dataverse ETag). The sink sets it in the record's own Meta map,
// which the engine created for that purpose, so that the engine reads it
// once Write has returned. A record whose Meta has the
// MetaExpectedVersion key with an empty value is written unconditionally
// and still has its new version reported.
const MetaVersion = "dvsync.version"
