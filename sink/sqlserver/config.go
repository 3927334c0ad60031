package sqlserver

import (
	"errors"
	"fmt"
)

// DefaultContext is the change tracking context a Sink writes under when
// Config.Context is empty; dvsync's SQL Server source skips changes made
// under the same context.
const DefaultContext = "dvsync"

// maxContext is the size of a change tracking context, varbinary(128).
const maxContext = 128

// Config configures a Sink.
type Config struct {
	// DSN is the go-mssqldb connection string of the destination
	// database. It holds a password: it never appears in an error or a
	// log line. The login needs SELECT, INSERT, UPDATE and DELETE on the
	// tables written (which also lets it read their columns).
	DSN string `yaml:"dsn" secret:"true"`
	// Context is the change tracking context every write is made under
	// (WITH CHANGE_TRACKING_CONTEXT), DefaultContext when empty. A
	// SQL Server source with the same context skips these writes, so a
	// two-way sync does not echo them back.
	Context string `yaml:"context,omitempty"`
	// MaxConns bounds the connections, and so the batches written at
	// once (default 4).
	MaxConns int `yaml:"max_conns,omitempty"`
}

// DefaultMaxConns is Config.MaxConns's default.
const DefaultMaxConns = 4

func (c Config) withDefaults() Config {
	if c.Context == "" {
		c.Context = DefaultContext
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	return c
}

// Validate reports every problem in c, each prefixed by its field's YAML
// name. It never quotes the DSN.
func (c Config) Validate() error {
	var errs []error
	if c.DSN == "" {
		errs = append(errs, errors.New("dsn: required"))
	}
	if len(c.Context) > maxContext {
		errs = append(errs, fmt.Errorf("context: longer than %d bytes", maxContext))
	}
	if c.MaxConns < 0 {
		errs = append(errs, errors.New("max_conns: must not be negative"))
	}
	return errors.Join(errs...)
}
