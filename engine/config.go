package engine

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultWorkers         = 8
	DefaultBatchSize       = 500
	DefaultBatchWait       = 20 * time.Millisecond
	DefaultMaxInFlight     = 50_000
	DefaultAckInterval     = 200 * time.Millisecond
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultMaxRetries is the retry limit dvsync's config file uses when it
	// sets none. It is not applied to a zero Config.MaxRetries, because zero
	// there means "retry forever".
	DefaultMaxRetries = 10
	// DefaultMaxDeferrals is how many times a deferred write is tried
	// again, by default, before its record is dead-lettered.
	DefaultMaxDeferrals = 10
	// DefaultMinBackoff and DefaultMaxBackoff bound the exponential backoff
	// between write retries when a Backoff leaves them zero.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
)

// Config tunes one pipeline. Zero fields take the defaults named on them.
type Config struct {
	// Name identifies the pipeline: its position is saved under this name
	// in the state store, and it labels logs and metrics. Required.
	Name string
	// Workers is how many batches may be written at once (default 8).
	// Records are hashed by destination table and key to a worker, so one
	// key is always written by one worker, in order.
	Workers int
	// BatchSize is how many records a worker gathers before it writes
	// (default 500). Changes to one key are folded, so the batch handed to
	// the sink may be smaller.
	BatchSize int
	// BatchWait is how long a worker waits for a batch to fill: it writes
	// when its oldest pending record is this old (default 20ms).
	BatchWait time.Duration
	// MaxInFlight bounds memory: reading pauses while this many records
	// have been read but not yet passed by the ack watermark
	// (default 50,000).
	MaxInFlight int
	// AckInterval is how often the watermark is persisted and acked to
	// the source when it has moved (default 200ms). When every record
	// read is done, nothing left in flight, it is done at once instead,
	// though not sooner than AckInterval/4 after the previous time, so
	// that a backfill's last rows are acked as soon as they are durable
	// and a trickle of changes does not save the position for each one.
	// It is also done once at shutdown.
	AckInterval time.Duration
	// MaxRetries is how many times one write is retried after a retryable
	// failure before the pipeline stops with that failure. Zero retries
	// forever; DefaultMaxRetries is the config file's default.
	MaxRetries int
	// RetryBackoff spaces retries when the sink did not say how long to
	// wait. A RetryableError's Wait, when positive, overrides it.
	RetryBackoff Backoff
	// MaxDeferrals is how many times a record whose write the sink
	// deferred (change.DeferredError: a row it refers to is not there yet)
	// is tried again, RetryBackoff apart, before it is dead-lettered with
	// the last reason (default DefaultMaxDeferrals). A parked record holds
	// back the ack watermark and counts toward MaxInFlight, so the row it
	// waits for must be read within MaxInFlight records of it.
	MaxDeferrals int
	// StopAfterFailures stops the pipeline when this many records in a row
	// were dead-lettered, on the grounds that the destination, not the
	// data, is broken. Zero never stops.
	StopAfterFailures int
	// ShutdownTimeout bounds the whole shutdown: flushing pending
	// batches, finishing in-flight writes, persisting and acking the final
	// watermark and closing the source and sink (default 30s). Writes
	// still running when a fifth of it (at most 5s) remains are cancelled;
	// their records are replayed after a restart.
	ShutdownTimeout time.Duration
	// Logger receives the pipeline's logs; nil means slog.Default().
	// Record values are never logged; tables and keys only at debug level.
	Logger *slog.Logger
	// Resolver, when set, makes the pipeline one direction of a
	// bidirectional mapping: see Resolver. Nil writes every mapped record
	// as it is.
	Resolver Resolver
	// Metrics registers the pipeline's Prometheus metrics, each labelled
	// with pipeline=Name. Nil registers none.
	Metrics prometheus.Registerer
}

// withDefaults returns c with every zero field that has a default set.
func (c Config) withDefaults() Config {
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchWait == 0 {
		c.BatchWait = DefaultBatchWait
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.AckInterval == 0 {
		c.AckInterval = DefaultAckInterval
	}
	if c.MaxDeferrals == 0 {
		c.MaxDeferrals = DefaultMaxDeferrals
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.RetryBackoff.Min == 0 {
		c.RetryBackoff.Min = DefaultMinBackoff
	}
	if c.RetryBackoff.Max == 0 {
		c.RetryBackoff.Max = max(DefaultMaxBackoff, c.RetryBackoff.Min)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports every problem with c (after defaults), each naming its
// field.
func (c Config) validate() error {
	var errs []error
	check := func(bad bool, msg string) {
		if bad {
			errs = append(errs, errors.New(msg))
		}
	}
	check(c.Name == "", "Name: required")
	check(c.Workers < 0, "Workers: must not be negative")
	check(c.BatchSize < 0, "BatchSize: must not be negative")
	check(c.BatchWait < 0, "BatchWait: must not be negative")
	check(c.MaxInFlight < 0, "MaxInFlight: must not be negative")
	check(c.AckInterval < 0, "AckInterval: must not be negative")
	check(c.MaxRetries < 0, "MaxRetries: must not be negative (0 retries forever)")
	check(c.RetryBackoff.Min < 0, "RetryBackoff.Min: must not be negative")
	check(c.RetryBackoff.Max < c.RetryBackoff.Min, "RetryBackoff.Max: must not be less than RetryBackoff.Min")
	check(c.MaxDeferrals < 0, "MaxDeferrals: must not be negative")
	check(c.StopAfterFailures < 0, "StopAfterFailures: must not be negative (0 never stops)")
	check(c.ShutdownTimeout < 0, "ShutdownTimeout: must not be negative")
	return errors.Join(errs...)
}

// Backoff is exponential backoff with jitter. New replaces a zero Min with
// DefaultMinBackoff and a zero Max with DefaultMaxBackoff.
type Backoff struct {
	// Min is the wait before the first retry.
	Min time.Duration
	// Max caps the wait.
	Max time.Duration
}

// Wait returns how long to wait before retry number attempt (1 for the
// first): Min doubled for each earlier attempt and capped at Max, less a
// random part of up to half, so that workers failing together do not all
// retry together. It is safe for concurrent use.
func (b Backoff) Wait(attempt int) time.Duration {
	d := b.Min
	for i := 1; i < attempt && d < b.Max; i++ {
		if d > b.Max/2 {
			d = b.Max
			break
		}
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 1 {
		return d
	}
	half := d / 2
	return d - half + rand.N(half+1)
}
