// Package dataverse is the sink that writes change records to Microsoft
// Dataverse, or anything speaking its Web API, through odataclient.
//
// Records reach it already mapped: Table is the Dataverse table's logical
// name, Key holds the alternate-key attributes in the key's declared order,
// and After the attribute values under their Dataverse names. Inserts,
// updates and snapshot reads become upserts by alternate key
// (PATCH accounts(accountnumber='A1') without If-Match), deletes become
// deletes by alternate key. Both are idempotent, so a replayed batch leaves
// Dataverse as the first delivery left it.
package dataverse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// DefaultConcurrency is the number of parallel requests per Write when
// Config.Concurrency is zero. Dataverse allows 52 concurrent requests per
// user by default; several sinks and the engine's own reads share them.
const DefaultConcurrency = 16

// Config configures a Sink.
type Config struct {
	// Concurrency is the number of records of one batch written in
	// parallel; DefaultConcurrency when zero.
	Concurrency int `yaml:"concurrency,omitempty"`
	// EntitySets maps a table's logical name to its entity set name,
	// skipping the metadata lookup for it (and overriding its answer).
	EntitySets map[string]string `yaml:"entity_sets,omitempty"`
}

// Validate reports every problem in c, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 0 {
		errs = append(errs, fmt.Errorf("concurrency: %d is negative", c.Concurrency))
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
// use: Write may be called from several goroutines at once.
type Sink struct {
	client      *odataclient.Client
	concurrency int
	sets        *entitySets
	closed      atomic.Bool
}

// New returns a Sink writing through c. It makes no request; entity set
// names are looked up on first use. A non-positive cfg.Concurrency selects
// DefaultConcurrency.
func New(c *odataclient.Client, cfg Config) *Sink {
	n := cfg.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	return &Sink{client: c, concurrency: n, sets: newEntitySets(c, cfg.EntitySets)}
}

// bufferPool holds request body buffers. Bodies are a few hundred bytes;
// one buffer per worker is reused across records and batches.
var bufferPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledBuffer keeps a rare huge body from pinning its buffer forever.
const maxPooledBuffer = 64 << 10

// Write makes every record of batch durable in Dataverse, writing up to
// Concurrency records at a time, in no particular order (the engine never
// puts two records for one key in a batch). It returns when every request
// has finished; it leaves no goroutine behind.
//
// Errors: nil when every record is durable. When ctx is cancelled before
// all records are written, ctx's error. When every record failed with a
// retryable error, that error alone (the one asking for the longest wait),
// so the engine retries the batch whole. Otherwise a *change.BatchError
// naming each failed record, classified as change.Retryable (throttling,
// busy or unreachable service, expired token) or change.Permanent (any
// other rejection of the record).
func (s *Sink) Write(ctx context.Context, batch []change.Record) error {
	if s.closed.Load() {
		return errors.New("dataverse sink: Write after Close")
	}
	if len(batch) == 0 {
		return nil
	}
	errs := make([]error, len(batch))
	workers := min(s.concurrency, len(batch))
	if workers == 1 {
		s.work(ctx, batch, errs, new(atomic.Int64))
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() { s.work(ctx, batch, errs, &next) })
		}
		wg.Wait()
	}
	return result(ctx, errs)
}

// work writes records, taking the next unwritten index from next, until
// the batch is exhausted.
func (s *Sink) work(ctx context.Context, batch []change.Record, errs []error, next *atomic.Int64) {
	buf := bufferPool.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledBuffer {
			bufferPool.Put(buf)
		}
	}()
	for {
		i := int(next.Add(1) - 1)
		if i >= len(batch) {
			return
		}
		if err := ctx.Err(); err != nil {
			errs[i] = err // don't start writes that nobody waits for
			continue
		}
		errs[i] = s.writeRecord(ctx, &batch[i], buf)
	}
}

// writeRecord writes one record and returns its classified error.
func (s *Sink) writeRecord(ctx context.Context, rec *change.Record, buf *[]byte) error {
	set, err := s.sets.lookup(ctx, rec.Table)
	if err != nil {
		return classify(ctx, fmt.Errorf("dataverse sink: entity set of %s: %w", rec.Table, err))
	}
	key, err := alternateKey(rec.Key)
	if err != nil {
		return change.Permanent(fmt.Errorf("dataverse sink: %s: %w", rec, err))
	}
	switch rec.Op {
	case change.OpDelete:
		err = s.client.Delete(ctx, set, key, odataclient.WriteOptions{})
		if rowAbsent(err) {
			return nil // deletes are idempotent: the row is already gone
		}
	case change.OpInsert, change.OpUpdate, change.OpRead:
		body, encErr := appendBody((*buf)[:0], rec.After)
		*buf = body[:0]
		if encErr != nil {
			return change.Permanent(fmt.Errorf("dataverse sink: %s: %w", rec, encErr))
		}
		_, err = s.client.Upsert(ctx, set, key, body, odataclient.WriteOptions{})
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
	s.closed.Store(true)
	s.client.CloseIdleConnections()
	return nil
}
