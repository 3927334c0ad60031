package postgres

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultOrigin is the replication origin a Sink writes under when
// Config.Origin is empty. A PostgreSQL source configured with the same
// name as its skip_origin ignores dvsync's own writes.
const DefaultOrigin = "dvsync"

// maxOriginName is PostgreSQL's limit on a replication origin's name.
const maxOriginName = 512

// Config configures a Sink.
type Config struct {
	// DSN is the connection string of the destination database, as a URL
	// or as key=value pairs. It holds a password: it never appears in an
	// error or a log line. The user needs INSERT, UPDATE and DELETE on the
	// tables written, and permission to use replication origins (a
	// superuser, or EXECUTE granted on pg_replication_origin_create and
	// pg_replication_origin_session_setup).
	DSN string `yaml:"dsn"`
	// Origin is the replication origin every write is made under, created
	// when missing. DefaultOrigin when empty. Names starting with "pg_"
	// are reserved by PostgreSQL.
	Origin string `yaml:"origin,omitempty"`
	// SoftDelete names a boolean column that a delete sets to true instead
	// of removing the row, and that an upsert sets to false unless the
	// record carries the column itself. Empty: deletes remove rows.
	SoftDelete string `yaml:"soft_delete,omitempty"`
}

// withDefaults returns c with empty optional fields set.
func (c Config) withDefaults() Config {
	if c.Origin == "" {
		c.Origin = DefaultOrigin
	}
	return c
}

// Validate reports every problem in c, each prefixed by its field's YAML
// name. It never quotes the DSN.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("dsn: required"))
	} else if _, err := parseDSN(c.DSN); err != nil {
		errs = append(errs, fmt.Errorf("dsn: %w", err))
	}
	c = c.withDefaults()
	switch {
	case strings.HasPrefix(c.Origin, "pg_"):
		errs = append(errs, fmt.Errorf("origin: %q is reserved: names starting with pg_ belong to PostgreSQL", c.Origin))
	case len(c.Origin) > maxOriginName:
		errs = append(errs, fmt.Errorf("origin: longer than %d bytes", maxOriginName))
	case strings.ContainsRune(c.Origin, 0):
		errs = append(errs, errors.New("origin: contains a NUL byte"))
	}
	if strings.ContainsRune(c.SoftDelete, 0) {
		errs = append(errs, errors.New("soft_delete: contains a NUL byte"))
	}
	return errors.Join(errs...)
}

// errBadDSN is all a malformed DSN is reported as: pgconn's parse errors
// redact passwords only on a best-effort basis, and the standard library's
// URL errors quote the whole URL.
var errBadDSN = errors.New("not a valid PostgreSQL connection string (see the libpq connection string formats)")

func parseDSN(dsn string) (*pgxpool.Config, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errBadDSN
	}
	return pc, nil
}
