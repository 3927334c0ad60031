package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/state"
)

// This file holds in-memory stand-ins for a source, a sink and a state
// store, each checking the contract the engine must keep with it, plus
// helpers to run a pipeline in a test.

const testPipeline = "test"

// posOf is the position of the i-th record a fakeSource emits (1-based).
func posOf(i int) change.Position { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// indexOf is the inverse of posOf; 0 for nil.
func indexOf(pos change.Position) int {
	if pos == nil {
		return 0
	}
	return int(binary.BigEndian.Uint64(pos))
}

// row builds a record of table "t" keyed by id, with the given columns.
func row(op change.Op, id int64, cols ...change.Column) change.Record {
	r := change.Record{Op: op, Table: "t", Key: change.Key{{Name: "id", Value: change.Int(id)}}}
	if op != change.OpDelete {
		r.After = append(change.Row{{Name: "id", Value: change.Int(id)}}, cols...)
	}
	return r
}

func col(name string, v change.Value) change.Column { return change.Column{Name: name, Value: v} }

// rowKey identifies a record's row in the fakes.
func rowKey(r *change.Record) string { return r.Table + "/" + r.Key.String() }

// fakeSource emits a script of records, a few per Read, and records what
// the engine opens, acks and closes. Its Ack checks that the position was
// persisted first and that acks never go backwards.
type fakeSource struct {
	t        testing.TB
	store    *memStore
	readSize int

	mu       sync.Mutex
	recs     []change.Record
	next     int // index in recs of the next record to emit
	more     chan struct{}
	failWith error // returned by Read once recs are exhausted
	from     change.Position
	opened   bool
	closed   bool
	acks     []change.Position
	onRead   func()
	onAck    func(change.Position)
	ackErr   func() error // decides the outcome of each Ack
}

func newFakeSource(t testing.TB, store *memStore) *fakeSource {
	return &fakeSource{t: t, store: store, readSize: 16, more: make(chan struct{}, 1)}
}

// add appends records to the script, giving each the next position.
func (s *fakeSource) add(recs ...change.Record) {
	s.mu.Lock()
	for _, r := range recs {
		r.Position = posOf(len(s.recs) + 1)
		s.recs = append(s.recs, r)
	}
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

func (s *fakeSource) Open(_ context.Context, from change.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		s.t.Errorf("source opened twice")
	}
	s.opened, s.from, s.next = true, from, indexOf(from)
	return nil
}

func (s *fakeSource) Read(ctx context.Context) ([]change.Record, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.t.Errorf("Read after Close")
		}
		if s.next < len(s.recs) {
			n := min(s.readSize, len(s.recs)-s.next)
			out := append([]change.Record(nil), s.recs[s.next:s.next+n]...)
			s.next += n
			onRead := s.onRead
			s.mu.Unlock()
			if onRead != nil {
				onRead()
			}
			return out, nil
		}
		if s.failWith != nil {
			err := s.failWith
			s.mu.Unlock()
			return nil, err
		}
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *fakeSource) Ack(ctx context.Context, pos change.Position) error {
	if s.ackErr != nil {
		if err := s.ackErr(); err != nil {
			return err
		}
	}
	saved, err := s.store.Position(ctx, testPipeline)
	if err != nil {
		return err
	}
	if indexOf(saved) < indexOf(pos) {
		s.t.Errorf("ack of position %d before it was persisted (saved: %d)", indexOf(pos), indexOf(saved))
	}
	s.mu.Lock()
	if s.closed {
		s.t.Errorf("Ack after Close")
	}
	if n := len(s.acks); n > 0 && indexOf(s.acks[n-1]) >= indexOf(pos) {
		s.t.Errorf("ack went from %d to %d", indexOf(s.acks[n-1]), indexOf(pos))
	}
	s.acks = append(s.acks, pos)
	onAck := s.onAck
	s.mu.Unlock()
	if onAck != nil {
		onAck(pos)
	}
	return nil
}

func (s *fakeSource) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.t.Errorf("source closed twice")
	}
	s.closed = true
	return nil
}

// emitted returns how many records Read has returned.
func (s *fakeSource) emitted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}

// lastAck returns the index of the last acked position; 0 if none.
func (s *fakeSource) lastAck() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.acks) == 0 {
		return 0
	}
	return indexOf(s.acks[len(s.acks)-1])
}

func (s *fakeSource) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// memSink keeps rows by key. It fails the test if one batch carries a key
// twice or two concurrent batches share a key. hook, if set, runs for
// every batch before it is applied and decides the write's outcome: for a
// *change.BatchError, the records not named are applied.
type memSink struct {
	t    testing.TB
	hook func(ctx context.Context, batch []change.Record) error

	mu      sync.Mutex
	rows    map[string]change.Row
	history map[string][]change.Record // every durable write, by key
	batches [][]change.Record          // every Write call's batch
	active  map[string]bool
	closed  bool
}

func newMemSink(t testing.TB) *memSink {
	return &memSink{t: t, rows: map[string]change.Row{}, history: map[string][]change.Record{}, active: map[string]bool{}}
}

func (s *memSink) Write(ctx context.Context, batch []change.Record) error {
	keys := make([]string, len(batch))
	s.mu.Lock()
	if s.closed {
		s.t.Errorf("Write after Close")
	}
	s.batches = append(s.batches, append([]change.Record(nil), batch...))
	inBatch := make(map[string]bool, len(batch))
	for i := range batch {
		k := rowKey(&batch[i])
		keys[i] = k
		if inBatch[k] {
			s.t.Errorf("key %s twice in one batch", k)
		}
		if s.active[k] {
			s.t.Errorf("key %s in two concurrent batches", k)
		}
		inBatch[k] = true
		s.active[k] = true
	}
	s.mu.Unlock()

	var err error
	if s.hook != nil {
		err = s.hook(ctx, batch)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.active, k)
	}
	var failed map[int]error
	var be *change.BatchError
	if errors.As(err, &be) {
		failed = be.Failed
	} else if err != nil {
		return err
	}
	for i := range batch {
		if _, ok := failed[i]; ok {
			continue
		}
		r := batch[i]
		s.history[keys[i]] = append(s.history[keys[i]], r)
		if r.Op == change.OpDelete {
			delete(s.rows, keys[i])
		} else {
			s.rows[keys[i]] = change.Merge(s.rows[keys[i]], r.After)
		}
	}
	return err
}

func (s *memSink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		s.t.Errorf("sink closed twice")
	}
	if len(s.active) > 0 {
		s.t.Errorf("sink closed during a Write")
	}
	s.closed = true
	return nil
}

func (s *memSink) row(id int64) (change.Row, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rows[fmt.Sprintf("t/id=%d", id)]
	return r, ok
}

func (s *memSink) writesOf(id int64) []change.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]change.Record(nil), s.history[fmt.Sprintf("t/id=%d", id)]...)
}

func (s *memSink) batchCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches)
}

func (s *memSink) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// memStore is an in-memory state.Store. putHook, if set, decides the
// outcome of PutDeadLetters.
type memStore struct {
	mu        sync.Mutex
	positions map[string]change.Position
	saves     int
	letters   []state.DeadLetter
	lastID    uint64
	putHook   func() error
}

func newMemStore() *memStore { return &memStore{positions: map[string]change.Position{}} }

func (s *memStore) Position(_ context.Context, pipeline string) (change.Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.positions[pipeline], nil
}

func (s *memStore) SavePosition(_ context.Context, pipeline string, pos change.Position) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.positions[pipeline] = pos
	s.saves++
	return nil
}

func (s *memStore) PutDeadLetters(_ context.Context, letters []state.DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.putHook != nil {
		if err := s.putHook(); err != nil {
			return err
		}
	}
	for _, l := range letters {
		s.lastID++
		l.ID = s.lastID
		s.letters = append(s.letters, l)
	}
	return nil
}

func (s *memStore) DeadLetter(_ context.Context, pipeline string, id uint64) (state.DeadLetter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.letters {
		if l.Pipeline == pipeline && l.ID == id {
			return l, nil
		}
	}
	return state.DeadLetter{}, fmt.Errorf("dead letter %d: %w", id, state.ErrNotFound)
}

func (s *memStore) DeleteDeadLetter(_ context.Context, pipeline string, id uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, l := range s.letters {
		if l.Pipeline == pipeline && l.ID == id {
			s.letters = append(s.letters[:i], s.letters[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("dead letter %d: %w", id, state.ErrNotFound)
}

func (s *memStore) DeadLetters(_ context.Context, pipeline string, limit int) ([]state.DeadLetter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []state.DeadLetter
	for _, l := range s.letters {
		if l.Pipeline == pipeline && (limit <= 0 || len(out) < limit) {
			out = append(out, l)
		}
	}
	return out, nil
}

func (s *memStore) Close() error { return nil }

func (s *memStore) deadLetters() []state.DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]state.DeadLetter(nil), s.letters...)
}

func (s *memStore) saved() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return indexOf(s.positions[testPipeline])
}

// sameWorker returns which of the records with ids 1..n p routes to the
// worker of record id.
func sameWorker(p *Pipeline, id int64, n int) map[int64]bool {
	of := func(id int64) int {
		r := row(change.OpInsert, id)
		return p.workerOf(appendRouteKey(nil, &r))
	}
	out := map[int64]bool{}
	for i := int64(1); i <= int64(n); i++ {
		out[i] = of(i) == of(id)
	}
	return out
}

// passThrough maps every record to itself.
var passThrough = MapperFunc(func(r *change.Record) (change.Record, bool, error) { return *r, true, nil })

// testConfig is a config with short waits, so tests run fast.
func testConfig() Config {
	return Config{
		Name:            testPipeline,
		Workers:         4,
		BatchSize:       16,
		BatchWait:       time.Millisecond,
		AckInterval:     2 * time.Millisecond,
		RetryBackoff:    Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond},
		ShutdownTimeout: 5 * time.Second,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// env is a source, sink and store wired to a pipeline under test.
type env struct {
	t     *testing.T
	src   *fakeSource
	dst   *memSink
	st    *memStore
	p     *Pipeline
	ctx   context.Context
	stop  context.CancelFunc
	done  chan struct{}
	err   error
	mapFn Mapper
}

// newEnv builds fakes and checks, at the end of the test, that the
// pipeline left no goroutine behind.
func newEnv(t *testing.T) *env {
	checkNoLeaks(t)
	st := newMemStore()
	return &env{t: t, src: newFakeSource(t, st), dst: newMemSink(t), st: st, mapFn: passThrough}
}

// start builds the pipeline from cfg and runs it until the test ends or
// stop is called.
func (e *env) start(cfg Config) *Pipeline {
	e.t.Helper()
	p, err := New(cfg, e.src, e.mapFn, e.dst, e.st)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.p = p
	e.ctx, e.stop = context.WithCancel(context.Background())
	e.done = make(chan struct{})
	go func() {
		defer close(e.done)
		e.err = p.Run(e.ctx)
	}()
	e.t.Cleanup(func() {
		e.stop()
		<-e.done
	})
	return p
}

// shutdown cancels Run and returns its result.
func (e *env) shutdown() error {
	e.t.Helper()
	e.stop()
	return e.wait()
}

// wait returns Run's result once it returns by itself.
func (e *env) wait() error {
	e.t.Helper()
	select {
	case <-e.done:
		return e.err
	case <-time.After(20 * time.Second):
		e.t.Fatalf("Run did not return")
		return nil
	}
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// checkNoLeaks fails the test if, once it and its cleanups are done, more
// goroutines run than when it began. Register it first, so it runs last.
func checkNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			<-tick.C
		}
	})
}
