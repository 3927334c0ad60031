package sqlserver

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Mode is how a Source reads changes.
type Mode string

const (
	// ModeChangeTracking polls CHANGETABLE(CHANGES …) for each table and
	// joins it to the table for the rows' current values. It needs
	// change tracking on the database and each table, and snapshot
	// isolation allowed on the database.
	ModeChangeTracking Mode = "change_tracking"
	// ModeCDC polls the capture instances' change functions
	// (cdc.fn_cdc_get_all_changes_<instance>), which carry every change
	// with its old and new values. It needs CDC on the database and a
	// capture instance per table.
	ModeCDC Mode = "cdc"
)

// Config configures a Source or a Snapshot. The zero value of every
// optional field selects its default.
type Config struct {
	// DSN is the go-mssqldb connection string
	// (sqlserver://user:password@host:1433?database=sales). It is a
	// secret: it never appears in errors or logs. The login needs SELECT
	// on the tables, VIEW CHANGE TRACKING on them in change tracking
	// mode, and membership of the capture instances' gating role (if
	// any) in CDC mode.
	DSN string `yaml:"dsn" secret:"true"`
	// Mode is ModeChangeTracking (default) or ModeCDC.
	Mode Mode `yaml:"mode"`
	// Tables are the schema-qualified tables to capture: dbo.customers,
	// or Sales.Order Lines (names are quoted by the source, never split
	// on anything but the first dot).
	Tables []string `yaml:"tables"`
	// Keys gives the key columns of tables without a primary key, by
	// table name as written in Tables (CDC mode only: change tracking
	// requires a primary key). The backfill pages by them, so they should
	// be unique and not null.
	Keys map[string][]string `yaml:"keys"`
	// CaptureInstances names the CDC capture instance of a table, by
	// table name; default schema_table, SQL Server's own default.
	CaptureInstances map[string]string `yaml:"capture_instances"`
	// Context is dvsync's change tracking context: dvsync's SQL Server
	// sink writes WITH CHANGE_TRACKING_CONTEXT carrying it, and this
	// source skips changes whose SYS_CHANGE_CONTEXT equals it, so a
	// two-way sync does not echo its own writes. Default "dvsync"; the
	// sink must use the same value. CDC does not record a context: in CDC
	// mode it is unused.
	Context string `yaml:"context"`
	// PollInterval is the interval between polls while changes keep
	// coming; MaxPollInterval bounds it while they do not: every empty
	// poll doubles the interval up to it, and a poll that finds changes
	// resets it. Defaults 200ms and 5s.
	PollInterval    time.Duration `yaml:"poll_interval"`
	MaxPollInterval time.Duration `yaml:"max_poll_interval"`
	// Start is where a table with no saved position starts streaming:
	// StartLatest (default), the changes committed after Open, or
	// StartEarliest, every change SQL Server still holds for it (from the
	// table's minimum valid change tracking version, or its capture
	// instance's minimum LSN). Run a Snapshot to read the rows
	// themselves.
	Start string `yaml:"start"`
	// PageSize bounds the rows one snapshot or CDC query reads (default
	// 2000).
	PageSize int `yaml:"page_size"`
}

// Values of Config.Start.
const (
	StartLatest   = "latest"
	StartEarliest = "earliest"
)

// Defaults of Config's optional fields.
const (
	DefaultContext         = "dvsync"
	DefaultPollInterval    = 200 * time.Millisecond
	DefaultMaxPollInterval = 5 * time.Second
	DefaultPageSize        = 2000
)

// maxContext is the size of SYS_CHANGE_CONTEXT, varbinary(128).
const maxContext = 128

func (c Config) withDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeChangeTracking
	}
	if c.Start == "" {
		c.Start = StartLatest
	}
	if c.Context == "" {
		c.Context = DefaultContext
	}
	if c.PollInterval == 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.MaxPollInterval == 0 {
		c.MaxPollInterval = max(DefaultMaxPollInterval, c.PollInterval)
	}
	if c.PageSize == 0 {
		c.PageSize = DefaultPageSize
	}
	return c
}

// Validate reports every problem of c at once, each naming its field.
// Defaults are applied first.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("dsn: required"))
	}
	if c.Mode != ModeChangeTracking && c.Mode != ModeCDC {
		errs = append(errs, fmt.Errorf("mode: %q is neither change_tracking nor cdc", c.Mode))
	}
	if c.Start != StartLatest && c.Start != StartEarliest {
		errs = append(errs, fmt.Errorf("start: %q is neither latest nor earliest", c.Start))
	}
	if c.PageSize == 1 {
		errs = append(errs, errors.New("page_size: must be at least 2, so an update's before and after images fit a page"))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("tables: at least one table is required"))
	}
	seen := map[string]bool{}
	for i, t := range c.Tables {
		s, n, ok := strings.Cut(t, ".")
		switch {
		case !ok || s == "" || n == "":
			errs = append(errs, fmt.Errorf("tables[%d]: %q is not schema-qualified (write e.g. dbo.%s)", i, t, t))
		case seen[t]:
			errs = append(errs, fmt.Errorf("tables[%d]: %q is listed twice", i, t))
		}
		seen[t] = true
	}
	for _, t := range slices.Sorted(maps.Keys(c.Keys)) {
		switch {
		case !seen[t]:
			errs = append(errs, fmt.Errorf("keys: %q is not one of tables", t))
		case c.Mode == ModeChangeTracking:
			errs = append(errs, fmt.Errorf("keys: %s: change tracking needs a primary key; keys apply in cdc mode only", t))
		case len(c.Keys[t]) == 0:
			errs = append(errs, fmt.Errorf("keys: %s: at least one column is required", t))
		}
	}
	for _, t := range slices.Sorted(maps.Keys(c.CaptureInstances)) {
		if !seen[t] {
			errs = append(errs, fmt.Errorf("capture_instances: %q is not one of tables", t))
		}
	}
	if len(c.Context) > maxContext {
		errs = append(errs, fmt.Errorf("context: longer than %d bytes", maxContext))
	}
	if c.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("poll_interval: %s is negative", c.PollInterval))
	}
	if c.MaxPollInterval < c.PollInterval {
		errs = append(errs, fmt.Errorf("max_poll_interval: %s is below poll_interval %s", c.MaxPollInterval, c.PollInterval))
	}
	if c.PageSize < 0 {
		errs = append(errs, errors.New("page_size: must not be negative"))
	}
	return errors.Join(errs...)
}

// captureInstance returns the capture instance of table t.
func (c Config) captureInstance(t string) string {
	if ci := c.CaptureInstances[t]; ci != "" {
		return ci
	}
	s, n, _ := strings.Cut(t, ".")
	return s + "_" + n
}
