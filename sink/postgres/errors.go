package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dvsync/dvsync/change"
)

// recordError reports whether err is about the data of some record of the
// batch rather than about the connection or the server's state: a
// constraint it violates (class 23), a value the column's type rejects
// (22), a column or table that does not exist or may not be written (42),
// a view's check option (44). Writing the records one by one finds which.
func recordError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "42", "44":
		return true
	}
	return false
}

// classify marks err for the engine. Record errors are permanent; the
// failures that pass by themselves are retryable: serialization failures
// and deadlocks (40), lost or refused connections (08, and any error
// below the SQL level), lack of resources (53), shutdowns and
// cancellations (57), lock timeouts (55P03) and the replication origin
// being held by a session that has not ended yet (55006). Anything else
// is returned as it is, which the engine also retries, with its backoff.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if recordError(err) {
		return change.Permanent(err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		// No answer from the server: the connection failed or was closed.
		return change.Retryable(err, 0)
	}
	if len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "40", "08", "53", "57":
			return change.Retryable(err, 0)
		}
		switch pgErr.Code {
		case "55P03", "55006":
			return change.Retryable(err, 0)
		}
	}
	return err
}
