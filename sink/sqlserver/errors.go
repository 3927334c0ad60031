package sqlserver

import (
	"context"
	"errors"

	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dvsync/dvsync/change"
)

// Record errors: SQL Server error numbers that are about the data of the
// statement that raised them, so writing the records one by one finds
// the culprit.
var recordErrors = map[int32]bool{
	206:  true, // operand type clash
	207:  true, // invalid column name
	241:  true, // conversion of a date or time from a string
	242:  true, // conversion to datetime out of range
	245:  true, // conversion failed
	515:  true, // NULL into a NOT NULL column
	517:  true, // date arithmetic overflow
	547:  true, // foreign key or check constraint
	2601: true, // duplicate key in a unique index
	2627: true, // primary key or unique constraint
	2628: true, // string or binary data would be truncated
	8114: true, // conversion of a value to a type
	8115: true, // arithmetic overflow
	8152: true, // string or binary data would be truncated (older servers)
	8169: true, // conversion to uniqueidentifier
}

// Transient errors: retrying the batch later may succeed.
var transientErrors = map[int32]bool{
	1205:  true, // chosen as deadlock victim
	1222:  true, // lock request timeout
	4060:  true, // cannot open database (starting, failing over)
	40197: true, // Azure SQL: service error processing the request
	40501: true, // Azure SQL: service busy
	40613: true, // Azure SQL: database unavailable
	49918: true, // Azure SQL: not enough resources
}

// Fatal errors: the pipeline cannot write anything until an operator acts.
var fatalErrors = map[int32]bool{
	208:   true, // invalid object name: the table does not exist
	229:   true, // permission denied on an object
	230:   true, // permission denied on a column
	18456: true, // login failed
}

func sqlError(err error) (mssql.Error, bool) {
	var e mssql.Error
	if errors.As(err, &e) {
		return e, true
	}
	var p *mssql.Error
	if errors.As(err, &p) && p != nil {
		return *p, true
	}
	return mssql.Error{}, false
}

// recordError reports whether err is about a record's data.
func recordError(err error) bool {
	e, ok := sqlError(err)
	return ok && recordErrors[e.Number]
}

// classify marks err for the engine: record errors permanent, missing
// tables and refused permissions fatal, deadlocks, timeouts and lost
// connections retryable; anything else is returned as it is, which the
// engine also retries with its backoff.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	e, ok := sqlError(err)
	switch {
	case !ok:
		// No answer from the server: the connection failed or was closed.
		return change.Retryable(err, 0)
	case recordErrors[e.Number]:
		return change.Permanent(err)
	case fatalErrors[e.Number]:
		return change.Fatal(err)
	case transientErrors[e.Number]:
		return change.Retryable(err, 0)
	}
	return err
}
