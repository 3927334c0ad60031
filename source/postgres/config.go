package postgres

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Config configures a Source. The zero value of every optional field
// selects its default.
type Config struct {
	// DSN is the libpq connection string or URL of the database. It is a
	// secret: it may hold a password, and it never appears in errors or
	// logs. The role needs the REPLICATION attribute, and ownership of the
	// tables (or superuser) if the publication must be created or extended.
	DSN string `yaml:"dsn" secret:"true"`
	// Slot is the logical replication slot; it is created (with the
	// pgoutput plugin) when missing. Default "dvsync".
	Slot string `yaml:"slot"`
	// Publication is the publication the slot streams; it is created for
	// Tables when missing, and missing Tables are added to it. Default
	// "dvsync".
	Publication string `yaml:"publication"`
	// Tables are the schema-qualified tables to capture, written as in
	// SQL: public.customers, or "Sales"."Orders" for mixed case. Changes
	// of other tables the publication may cover are ignored.
	Tables []string `yaml:"tables"`
	// Keys gives the key columns of tables that have no primary key, by
	// table name as written in Tables. Such a table must have REPLICA
	// IDENTITY FULL, so that its updates and deletes carry the old values
	// of those columns; its records are keyed by them, in column order.
	// The columns should identify a row: two rows sharing them become one
	// row downstream. The backfill pages by them, so it also needs a
	// unique index on exactly these columns, all NOT NULL. Tables with a
	// primary key or a replica identity index must not be listed: they
	// are keyed by it. A table without a primary key that is not listed
	// is refused at Open.
	Keys map[string][]string `yaml:"keys"`
	// StatusInterval is how often the source reports its confirmed
	// position to the server (which lets the server recycle WAL), and the
	// longest the server waits to hear from us. Default 10s; keep it well
	// under the server's wal_sender_timeout.
	StatusInterval time.Duration `yaml:"status_interval"`
	// HeartbeatInterval is how often the source writes a heartbeat (a
	// non-transactional pg_logical_emit_message) on an ordinary
	// connection and measures the slot's lag. The heartbeat gives a
	// quiet database WAL to decode, so its slot keeps advancing and the
	// server can recycle WAL; the measurement also notices a slot the
	// server has invalidated. Default 30s; negative turns both off.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// DecodingWorkMem is logical_decoding_work_mem for the replication
	// session, written as in postgresql.conf ("64MB"): how much of the
	// changes of running transactions the server holds in memory before
	// it streams the largest one to the source, which keeps it in a
	// temporary file until the transaction ends. Default "64MB".
	DecodingWorkMem string `yaml:"logical_decoding_work_mem"`
	// SkipOrigin names a replication origin whose transactions are not
	// captured: their changes are skipped, and the slot moves past them
	// as if they had been acked. dvsync's own PostgreSQL sink writes
	// inside such an origin (with pg_replication_origin_xact_setup, so
	// that pgoutput names it), and skipping its writes keeps a two-way
	// sync from echoing them back. Empty captures every transaction.
	SkipOrigin string `yaml:"skip_origin"`
}

// Defaults of Config's optional fields.
const (
	DefaultSlot              = "dvsync"
	DefaultPublication       = "dvsync"
	DefaultStatusInterval    = 10 * time.Second
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultDecodingWorkMem   = "64MB"
)

// withDefaults returns c with defaults in its zero fields.
func (c Config) withDefaults() Config {
	if c.Slot == "" {
		c.Slot = DefaultSlot
	}
	if c.Publication == "" {
		c.Publication = DefaultPublication
	}
	if c.StatusInterval == 0 {
		c.StatusInterval = DefaultStatusInterval
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if c.DecodingWorkMem == "" {
		c.DecodingWorkMem = DefaultDecodingWorkMem
	}
	return c
}

// Slot and publication names go into replication commands unquoted, so
// they are restricted to what PostgreSQL accepts without quotes (slot
// names allow exactly this set).
var simpleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// memorySize is a memory setting as postgresql.conf writes it.
var memorySize = regexp.MustCompile(`^[0-9]+(kB|MB|GB|TB)?$`)

// Validate reports every problem of c at once, each naming its field.
// Defaults are applied first, so empty optional fields are fine.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("dsn: required"))
	}
	if !simpleName.MatchString(c.Slot) {
		errs = append(errs, fmt.Errorf("slot: %q is not a valid slot name (lower-case letters, digits and underscores, at most 63)", c.Slot))
	}
	if !simpleName.MatchString(c.Publication) {
		errs = append(errs, fmt.Errorf("publication: %q must be lower-case letters, digits and underscores, at most 63", c.Publication))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("tables: at least one table is required"))
	}
	seen := map[string]bool{}
	for i, t := range c.Tables {
		switch {
		case !strings.Contains(t, "."):
			errs = append(errs, fmt.Errorf("tables[%d]: %q is not schema-qualified (write e.g. public.%s)", i, t, t))
		case seen[t]:
			errs = append(errs, fmt.Errorf("tables[%d]: %q is listed twice", i, t))
		}
		seen[t] = true
	}
	for _, t := range slices.Sorted(maps.Keys(c.Keys)) {
		cols := c.Keys[t]
		switch {
		case !seen[t]:
			errs = append(errs, fmt.Errorf("keys: %q is not one of tables", t))
		case len(cols) == 0:
			errs = append(errs, fmt.Errorf("keys: %s: at least one column is required", t))
		}
		for i, col := range cols {
			switch {
			case col == "":
				errs = append(errs, fmt.Errorf("keys: %s[%d]: empty column name", t, i))
			case slices.Index(cols, col) < i:
				errs = append(errs, fmt.Errorf("keys: %s[%d]: column %s is listed twice", t, i, col))
			}
		}
	}
	if !memorySize.MatchString(c.DecodingWorkMem) {
		errs = append(errs, fmt.Errorf("logical_decoding_work_mem: %q is not a memory size such as 64MB", c.DecodingWorkMem))
	}
	if c.StatusInterval < 0 {
		errs = append(errs, fmt.Errorf("status_interval: %s is negative", c.StatusInterval))
	}
	return errors.Join(errs...)
}
