// Package dataverse is the sink that writes change records to Microsoft
// Dataverse, or anything speaking its Web API, through odataclient.
//
// Records reach it already mapped: Table is the Dataverse table's logical
// name, Key holds the alternate-key attributes in the key's declared order,
// and After the attribute values under their Dataverse names. Inserts,
// updates and snapshot reads become upserts by alternate key
// (PATCH accounts(accountnumber='A1') without If-Match), deletes become
// deletes by alternate key. Both are idempotent, so a replayed batch leaves
// Dataverse as the first delivery left it, and the sink may resend any
// request whose outcome it does not know.
//
// For throughput a batch is written per table in bulk: upserts as
// UpsertMultiple messages (rows addressed by "@odata.id"), deletes, and
// upserts to tables without bulk support, as $batch requests of
// independent parts. One limiter per odataclient.Client, shared by every
// Sink built on it, bounds the requests in flight, adapting to throttling
// and to the service's x-ms-dop-hint.
package dataverse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// DefaultConcurrency is the number of requests a Sink has in flight when
// Config.Concurrency is zero: Dataverse's per-user limit. The limiter
// lowers it as soon as the service throttles or hints at less.
const DefaultConcurrency = MaxConcurrency

// DefaultBatchSize is the number of rows per bulk message or $batch when
// Config.BatchSize is zero. The service suggests starting bulk messages
// around 1,000 small rows; 100 keeps a failed all-or-nothing call cheap to
// redo and spreads one engine batch over several parallel requests.
const DefaultBatchSize = 100

// DefaultRetries is the number of times a Sink resends a request that
// failed temporarily before it reports the failure to the engine.
const DefaultRetries = 5

// maxThrottleWait bounds how long one request is held back by throttling,
// in total, before the sink gives it to the engine as retryable: long
// enough for the service's usual Retry-After of seconds to a few minutes.
const maxThrottleWait = 5 * time.Minute

// Write modes: how a Sink sends a batch's records.
const (
	// ModeAuto writes upserts with UpsertMultiple where the table supports
	// it, else in a $batch, and deletes in a $batch; a service without
	// $batch gets single requests.
	ModeAuto = "auto"
	// ModeBatch writes every record in $batch requests.
	ModeBatch = "batch"
	// ModeSingle writes every record with its own request.
	ModeSingle = "single"
)

// Config configures a Sink.
type Config struct {
	// Concurrency is the most requests in flight at once, across every
	// Write and every other Sink on the same Client (the lowest setting
	// among them applies); DefaultConcurrency when zero, at most
	// MaxConcurrency.
	Concurrency int `yaml:"concurrency,omitempty"`
	// EntitySets maps a table's logical name to its entity set name,
	// skipping the metadata lookup for it (and overriding its answer).
	EntitySets map[string]string `yaml:"entity_sets,omitempty"`
	// Mode is ModeAuto (when empty), ModeBatch or ModeSingle.
	Mode string `yaml:"mode,omitempty"`
	// BatchSize is the number of rows per bulk message or $batch;
	// DefaultBatchSize when zero, at most odataclient.MaxBatchRequests.
	BatchSize int `yaml:"batch_size,omitempty"`
	// Retries is the number of resends of a request that failed
	// temporarily other than by throttling (5xx, busy service, broken
	// connection); DefaultRetries when zero, none when negative. Throttled
	// requests are resent after the service's Retry-After for up to 5
	// minutes of waiting in total, or not at all when Retries is negative.
	Retries int `yaml:"retries,omitempty"`
	// Write holds the optional headers and the tag sent with every write.
	// A Tag identifying dvsync lets its own writes be recognised when they
	// come back as changes.
	Write odataclient.WriteOptions `yaml:"-"`
}

// Validate reports every problem in c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 0 || c.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency: %d is not between 0 and %d", c.Concurrency, MaxConcurrency))
	}
	if c.BatchSize < 0 || c.BatchSize > odataclient.MaxBatchRequests {
		errs = append(errs, fmt.Errorf("batch_size: %d is not between 0 and %d", c.BatchSize, odataclient.MaxBatchRequests))
	}
	switch c.Mode {
	case "", ModeAuto, ModeBatch, ModeSingle:
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not auto, batch or single", c.Mode))
	}
	for table, set := range c.EntitySets {
		if table == "" {
			errs = append(errs, errors.New("entity_sets: empty table name"))
		}
		if !validSetName(set) {
			errs = append(errs, fmt.Errorf("entity_sets.%s: %q is not an entity set name", table, set))
		}
	}
	return errors.Join(errs...)
}

func validSetName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Sink writes batches of records to Dataverse. It is safe for concurrent
// use: Write may be called from several goroutines at once, and all of
// them share one concurrency limit.
//
// Sinks built on the same *odataclient.Client share that limit too (and
// throttling pauses), because the service counts its limits per user:
// however many pipelines write through one Client, at most the lowest of
// their Concurrency settings (never above MaxConcurrency) are in flight
// together. Close each Sink so the shared limiter can be released.
type Sink struct {
	client    *odataclient.Client
	sets      *entitySets
	mode      string
	batchSize int
	retry     retryPolicy
	workers   int      // the configured concurrency
	limiter   *limiter // shared by every Sink on client
	opts      odataclient.WriteOptions
	noBulk    sync.Map // table logical name → struct{}: no UpsertMultiple
	noBatch   atomic.Bool
	closed    atomic.Bool
	scratch   sync.Pool // *writeScratch
}

// New returns a Sink writing through c. It makes no request; entity set
// names are looked up on first use. Zero fields of cfg select their
// defaults; out-of-range ones are clamped.
func New(c *odataclient.Client, cfg Config) *Sink {
	n := cfg.Concurrency
	if n <= 0 || n > MaxConcurrency {
		n = DefaultConcurrency
	}
	size := cfg.BatchSize
	if size <= 0 || size > odataclient.MaxBatchRequests {
		size = DefaultBatchSize
	}
	retries := cfg.Retries
	switch {
	case retries == 0:
		retries = DefaultRetries
	case retries < 0:
		retries = 0
	}
	throttleLimit := maxThrottleWait
	if cfg.Retries < 0 {
		throttleLimit = 0
	}
	mode := cfg.Mode
	if mode == "" {
		mode = ModeAuto
	}
	s := &Sink{
		client:    c,
		mode:      mode,
		batchSize: size,
		retry: retryPolicy{
			attempts: retries + 1, base: 500 * time.Millisecond, cap: 30 * time.Second,
			throttleLimit: throttleLimit,
		},
		workers: n,
		limiter: sharedLimiter(c, n),
		opts:    cfg.Write,
	}
	// Metadata requests count against the same limits as writes.
	s.sets = newEntitySets(func(ctx context.Context, table string) (def odataclient.EntityDefinition, err error) {
		err = s.send(ctx, func(ctx context.Context) error {
			def, err = c.EntityDefinition(ctx, table)
			return err
		})
		return def, err
	}, cfg.EntitySets)
	return s
}

// Stats returns the current throttling figures of the limiter the Sink
// shares with every other Sink on the same odataclient.Client. It is safe
// to call at any time, from any goroutine.
func (s *Sink) Stats() Stats { return s.limiter.snapshot() }

// bufferPool holds request body buffers. Bodies are a few hundred bytes;
// one buffer per worker is reused across records and batches.
var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBuffer keeps a rare huge body from pinning its buffer forever.
const maxPooledBuffer = 64 << 10

// Write makes every record of batch durable in Dataverse and returns when
// every request has finished; it leaves no goroutine behind. Records are
// written in no particular order: the engine never puts two records for
// one key in a batch.
//
// Records are grouped per table into bulk messages or $batch requests of
// up to BatchSize rows (see Mode), sent in parallel within the Sink's
// concurrency limit. Each record's outcome is known exactly: a $batch
// answers per request, and an all-or-nothing bulk message that fails for
// one row is redone as a $batch, so that the good rows land and only the
// bad one is reported. Temporary failures (throttling, busy service, 5xx,
// broken connections) are resent up to Retries times, honouring
// Retry-After.
//
// A record whose Meta holds change.MetaExpectedVersion is written with a
// request of its own: the value, unless empty, is sent as If-Match, the
// row's new ETag is left in the record's Meta under change.MetaVersion,
// and a refusal because the row changed or is gone fails that record alone
// with a *change.ConflictError holding the row as it now is.
//
// Errors: nil when every record is durable. When ctx is cancelled before
// all records are written, ctx's error. When every record failed with a
// retryable error, that error alone (the one asking for the longest wait),
// so the engine retries the batch whole. When any record failed for a
// reason that is no record's fault and that no retry fixes (credentials
// refused after a fresh token, missing privilege, unknown table), that
// change.Fatal error alone: the pipeline must stop rather than dead-letter
// every record. Otherwise a *change.BatchError naming each failed record,
// classified as change.Retryable (throttling, busy or unreachable
// service), change.Deferred (a row it binds to through "@odata.bind" does
// not exist yet) or change.Permanent (any other rejection of the record).
func (s *Sink) Write(ctx context.Context, batch []change.Record) error {
	if s.closed.Load() {
		return errors.New("dataverse sink: Write after Close")
	}
	if len(batch) == 0 {
		return nil
	}
	if batch[0].Op == change.OpTruncate {
		// The engine writes a truncate alone, after everything before it.
		if len(batch) != 1 {
			return change.Permanent(errors.New("dataverse sink: a truncate must be written alone"))
		}
		return s.truncate(ctx, &batch[0])
	}
	errs := make([]error, len(batch))
	if versioned := splitVersioned(batch); len(versioned) > 0 {
		// Conditional writes need a request each; the rest go the usual
		// way, at the same time.
		var rest []change.Record
		var at []int
		for i, j := 0, 0; i < len(batch); i++ {
			if j < len(versioned) && versioned[j] == i {
				j++
				continue
			}
			rest = append(rest, batch[i])
			at = append(at, i)
		}
		restErrs := make([]error, len(rest))
		var wg sync.WaitGroup
		if len(rest) > 0 {
			wg.Go(func() { s.writeAny(ctx, rest, restErrs) })
		}
		s.writeSingles(ctx, batch, versioned, errs)
		wg.Wait()
		for j, i := range at {
			errs[i] = restErrs[j]
		}
		return result(ctx, errs)
	}
	s.writeAny(ctx, batch, errs)
	return result(ctx, errs)
}

// writeAny writes batch as Mode says, leaving each record's error in errs.
func (s *Sink) writeAny(ctx context.Context, batch []change.Record, errs []error) {
	if s.mode == ModeSingle || s.mode == ModeAuto && s.noBatch.Load() {
		s.writeSingles(ctx, batch, indexes(len(batch)), errs)
	} else {
		s.writeGrouped(ctx, batch, errs)
	}
}

func indexes(n int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// writeSingles writes the records batch[idx[…]] one request each, up to
// the concurrency limit at a time.
func (s *Sink) writeSingles(ctx context.Context, batch []change.Record, idx []int, errs []error) {
	var next atomic.Int64
	work := func() {
		buf := bufferPool.Get().(*[]byte)
		defer func() {
			if cap(*buf) <= maxPooledBuffer {
				bufferPool.Put(buf)
			}
		}()
		for {
			j := int(next.Add(1) - 1)
			if j >= len(idx) {
				return
			}
			i := idx[j]
			if err := ctx.Err(); err != nil {
				errs[i] = err // don't start writes that nobody waits for
				continue
			}
			errs[i] = s.writeRecord(ctx, &batch[i], buf)
		}
	}
	workers := min(s.workers, len(idx))
	if workers == 1 {
		work()
		return
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(work)
	}
	wg.Wait()
}

// writeRecord writes one record and returns its classified error.
func (s *Sink) writeRecord(ctx context.Context, rec *change.Record, buf *[]byte) error {
	if _, ok := expected(rec); ok {
		return s.writeVersioned(ctx, rec, buf)
	}
	set, err := s.sets.lookup(ctx, rec.Table)
	if err != nil {
		return classifyLookup(ctx, fmt.Errorf("dataverse sink: entity set of %s: %w", rec.Table, err))
	}
	key, err := rowKey(rec.Table, rec.Key)
	if err != nil {
		return change.Permanent(fmt.Errorf("dataverse sink: %s: %w", rec, err))
	}
	switch rec.Op {
	case change.OpDelete:
		err = s.send(ctx, func(ctx context.Context) error {
			return s.client.Delete(ctx, set, key, s.opts)
		})
		if rowAbsent(err) {
			return nil // deletes are idempotent: the row is already gone
		}
	case change.OpInsert, change.OpUpdate, change.OpRead:
		body, encErr := appendBody((*buf)[:0], rec.After)
		*buf = body[:0]
		if encErr != nil {
			return change.Permanent(fmt.Errorf("dataverse sink: %s: %w", rec, encErr))
		}
		err = s.send(ctx, func(ctx context.Context) error {
			_, err := s.client.Upsert(ctx, set, key, body, s.opts)
			return err
		})
	default:
		return change.Permanent(fmt.Errorf("dataverse sink: %s: unknown operation", rec))
	}
	if err != nil {
		return classify(ctx, fmt.Errorf("dataverse sink: %s %s: %w", opName(rec.Op), rec.Table, err))
	}
	return nil
}

func opName(op change.Op) string {
	if op == change.OpDelete {
		return "delete"
	}
	return "upsert"
}

// Close releases the idle connections the Sink's writes left open. It must
// be called after the last Write has returned; later Writes fail. The
// odataclient.Client stays usable by others.
func (s *Sink) Close(context.Context) error {
	if !s.closed.Swap(true) {
		releaseLimiter(s.client)
	}
	s.client.CloseIdleConnections()
	return nil
}
