package config

import (
	"fmt"
	"log/slog"
)

// Secret is a string that must not leak: a token or a DSN with a password.
// Every way of printing or encoding it (fmt verbs, slog, encoding.TextMarshaler
// and so JSON and YAML) yields "[redacted]"; Reveal returns the value for the
// one place that needs it.
type Secret string

const redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (s Secret) String() string { return redacted }

// GoString returns "[redacted]", so %#v of a struct holding s does not leak.
func (s Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb, including %d and %x, which
// would otherwise bypass String.
func (s Secret) Format(f fmt.State, verb rune) { fmt.Fprint(f, redacted) }

// LogValue makes slog log "[redacted]".
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText returns "[redacted]", so encoding a Config never writes the
// secret out.
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
