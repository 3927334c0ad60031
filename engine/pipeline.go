package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/state"
)

// Pipeline moves records from one source, through one mapper, to one sink,
// and acks the source as they become durable. Build it with New and run it
// once with Run; Stats may be called at any time from any goroutine.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	src     source.Source
	mapper  atomic.Pointer[mapperBox] // replaced by SetMapper
	dst     sink.Sink
	st      state.Store
	tracker *tracker
	metrics *metrics
	workers []*worker
	pause   pauser
	seed    maphash.Seed // routes keys to workers; routing need not survive a restart
	epoch   time.Time    // origin of item.at

	started atomic.Bool
	running atomic.Bool
	stopRun context.CancelCauseFunc // set by Run before any goroutine starts

	nRead, nMapped, nSkipped, nWritten, nDead, nRetries, nDeferred atomic.Uint64
	// nSettled counts records the Resolver answered Done for.
	nSettled atomic.Uint64
	// nParked counts records parked behind deferred writes, across workers.
	nParked atomic.Int64
	// consecutiveDead counts records dead-lettered since the last
	// successful write, across workers.
	consecutiveDead atomic.Int64

	failMu sync.Mutex
	fatal  error // the first error that stopped the pipeline

	// savedSeq, savedPos and ackedSeq belong to commit, which one
	// goroutine at a time calls.
	savedSeq, ackedSeq uint64
	savedPos           change.Position

	ackMu   sync.Mutex // guards acked and lastAck, read by Stats
	acked   change.Position
	lastAck time.Time
}

// Stats is a snapshot of a pipeline's progress, for health checks and
// tests. Counters only grow.
type Stats struct {
	// Read counts records returned by the source.
	Read uint64
	// Mapped counts records the mapper mapped; Skipped those it left out.
	Mapped, Skipped uint64
	// Written counts records the sink made durable, after changes to one
	// key were folded, so it may be less than Mapped.
	Written uint64
	// DeadLettered counts records stored as dead letters, both stages.
	DeadLettered uint64
	// Retries counts write retries after retryable failures.
	Retries uint64
	// Deferred counts writes the sink deferred because a row they refer
	// to was not there yet; each deferral of a record counts.
	Deferred uint64
	// Settled counts records the Resolver settled without a write: echoes
	// of dvsync's own writes, changes already decided in a conflict,
	// conflicts parked for an operator.
	Settled uint64
	// Parked counts records waiting behind deferred writes: the deferred
	// records and later changes to their keys.
	Parked int
	// SchemaPaused gives, by source table, why the pipeline paused it on
	// its own after a schema change; nil when none is. The map is the
	// caller's.
	SchemaPaused map[string]string
	// Acked is the last position acked to the source; nil before the first.
	Acked change.Position
	// LastAck is when Acked was acked; zero before the first.
	LastAck time.Time
	// InFlight counts records read and not yet passed by the ack watermark.
	InFlight int
	// Running is true from the moment the source is open (it is capturing
	// changes) until Run returns.
	Running bool
}

// New checks cfg, applies its defaults and returns a pipeline ready to
// Run. It registers the pipeline's metrics with cfg.Metrics; a second
// pipeline of the same name on one registry is an error.
//
// The pipeline takes ownership of src and dst: Run closes them. Pipelines
// that share one sink should each get a wrapper whose Close does nothing,
// and the owner closes the sink once every Run has returned.
func New(cfg Config, src source.Source, m Mapper, dst sink.Sink, st state.Store) (*Pipeline, error) {
	cfg = cfg.withDefaults()
	errs := []error{cfg.validate()}
	for _, nilArg := range []struct {
		name  string
		isNil bool
	}{{"source", src == nil}, {"mapper", m == nil}, {"sink", dst == nil}, {"state store", st == nil}} {
		if nilArg.isNil {
			errs = append(errs, fmt.Errorf("%s: required", nilArg.name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("engine: invalid pipeline config: %w", err)
	}
	p := &Pipeline{
		cfg:     cfg,
		log:     cfg.Logger.With("pipeline", cfg.Name),
		src:     src,
		dst:     dst,
		st:      st,
		tracker: newTracker(cfg.MaxInFlight),
		seed:    maphash.MakeSeed(),
		epoch:   time.Now(),
	}
	p.mapper.Store(&mapperBox{m})
	p.pause.tables = map[string][]heldRecord{}
	p.pause.reasons = map[string]string{}
	p.metrics = newMetrics(p)
	for range cfg.Workers {
		p.workers = append(p.workers, newWorker(p))
	}
	if cfg.Metrics != nil {
		if err := p.metrics.register(cfg.Metrics, cfg.Name); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Run opens the source at the position saved in the state store (nil if
// none) and runs the pipeline until ctx is cancelled or a fatal error:
// the source fails, a write still fails after MaxRetries retries, the
// state store fails, or StopAfterFailures records in a row were
// dead-lettered.
//
// It then shuts down in two phases. First it stops reading. Then workers
// write what they hold and finish their writes, and the final watermark is
// persisted and acked, all within ShutdownTimeout; what is not durable by
// then is abandoned, to be replayed after a restart. Finally the source
// and sink are closed, and every goroutine Run started has returned
// unless a Write or Read ignored cancellation: Run then leaves that
// adapter unclosed, rather than close it under a running call, and says
// so in its error.
//
// Run returns nil after a shutdown caused by ctx, and otherwise the fatal
// error, joined with any error from the final ack or from closing. It may
// be called once.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.started.CompareAndSwap(false, true) {
		return errors.New("engine: Run called more than once")
	}
	from, err := p.st.Position(ctx, p.cfg.Name)
	if err != nil {
		err = fmt.Errorf("engine: load position of pipeline %q: %w", p.cfg.Name, err)
		return errors.Join(err, p.closeSink(ctx))
	}
	if err := p.src.Open(ctx, from); err != nil {
		err = fmt.Errorf("engine: open source: %w", err)
		return errors.Join(err, p.closeSink(ctx))
	}
	// Running only from here: readiness must mean the source is capturing,
	// so that a change committed after it is never missed.
	p.running.Store(true)
	defer p.running.Store(false)
	p.log.Info("pipeline started", "resumed", from != nil, "workers", len(p.workers))

	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	p.stopRun = stopRun
	// Writes outlive ctx: shutdown lets them finish, and cancels them
	// only when it stops waiting.
	writeCtx, cancelWrites := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWrites()

	var workers sync.WaitGroup
	for _, w := range p.workers {
		workers.Go(func() { w.run(writeCtx) })
	}
	workersDone := make(chan struct{})
	go func() {
		workers.Wait()
		close(workersDone)
	}()
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		p.readLoop(runCtx)
	}()
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		p.ackLoop(runCtx)
	}()

	<-runCtx.Done()
	return p.shutdown(ctx, shutdownWait{reader: readerDone, workers: workersDone, acker: ackerDone}, cancelWrites)
}

// shutdownWait holds the channels closed as Run's goroutines return.
type shutdownWait struct {
	reader, workers, acker <-chan struct{}
}

// shutdown is phase two of Run. Reading has stopped; the reader closes
// the workers' inboxes as it returns. shutdown waits for the workers to
// write what they hold, cancelling their writes when only a fifth of
// ShutdownTimeout is left, then persists and acks the final watermark and
// closes the source and sink.
func (p *Pipeline) shutdown(ctx context.Context, wait shutdownWait, cancelWrites context.CancelFunc) error {
	begun := time.Now()
	total := p.cfg.ShutdownTimeout
	reserve := min(total/5, 5*time.Second)
	finalCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), begun.Add(total))
	defer cancel()
	fatal := p.fatalErr()
	p.log.Info("pipeline stopping", "fatal", fatal != nil, "in_flight", p.tracker.inFlight())

	drainTimer := time.NewTimer(total - reserve)
	select {
	case <-wait.workers:
		drainTimer.Stop()
	case <-drainTimer.C:
		cancelWrites()
		p.log.Warn("shutdown timeout: cancelling unfinished writes; their records will be replayed",
			"in_flight", p.tracker.inFlight())
		graceTimer := time.NewTimer(reserve / 2)
		select {
		case <-wait.workers:
			graceTimer.Stop()
		case <-graceTimer.C:
		}
	}

	errs := []error{fatal}
	select {
	case <-wait.acker:
		errs = append(errs, p.commit(finalCtx))
	case <-finalCtx.Done():
		errs = append(errs, errors.New("engine: final ack skipped: an earlier ack has not returned"))
	}
	select {
	case <-wait.reader:
		if err := p.src.Close(finalCtx); err != nil {
			errs = append(errs, fmt.Errorf("engine: close source: %w", err))
		}
	case <-finalCtx.Done():
		errs = append(errs, errors.New("engine: source not closed: Read did not return when cancelled"))
	}
	select {
	case <-wait.workers:
		errs = append(errs, p.closeSink(finalCtx))
	default:
		errs = append(errs, errors.New("engine: sink not closed: Write did not return when cancelled"))
	}
	p.log.Info("pipeline stopped", "in_flight", p.tracker.inFlight(), "took", time.Since(begun).Round(time.Millisecond))
	return errors.Join(errs...)
}

func (p *Pipeline) closeSink(ctx context.Context) error {
	if err := p.dst.Close(ctx); err != nil {
		return fmt.Errorf("engine: close sink: %w", err)
	}
	return nil
}

// fail records err as the reason the pipeline stops, unless an earlier
// error already is, and starts the shutdown.
func (p *Pipeline) fail(err error) {
	p.failMu.Lock()
	if p.fatal == nil {
		p.fatal = err
	}
	p.failMu.Unlock()
	p.stopRun(err)
}

func (p *Pipeline) fatalErr() error {
	p.failMu.Lock()
	defer p.failMu.Unlock()
	return p.fatal
}

// Stats returns a snapshot of the pipeline's counters. It is safe to call
// concurrently with Run, before it and after it.
func (p *Pipeline) Stats() Stats {
	p.ackMu.Lock()
	acked, lastAck := p.acked, p.lastAck
	p.ackMu.Unlock()
	return Stats{
		Read:         p.nRead.Load(),
		Mapped:       p.nMapped.Load(),
		Skipped:      p.nSkipped.Load(),
		Written:      p.nWritten.Load(),
		DeadLettered: p.nDead.Load(),
		Retries:      p.nRetries.Load(),
		Deferred:     p.nDeferred.Load(),
		Settled:      p.nSettled.Load(),
		Parked:       int(p.nParked.Load()),
		SchemaPaused: p.schemaPaused(),
		Acked:        acked,
		LastAck:      lastAck,
		InFlight:     p.tracker.inFlight(),
		Running:      p.running.Load(),
	}
}

// mapperBox lets an interface value live in an atomic.Pointer.
type mapperBox struct{ m Mapper }

// SetMapper replaces the pipeline's mapper, for a reload of the mappings
// without a restart. The reader picks it up between two reads from the
// source: every record is mapped wholly by the old mapper or wholly by the
// new one, and records mapped before the switch are written as they were
// mapped. It is safe to call at any time from any goroutine.
func (p *Pipeline) SetMapper(m Mapper) error {
	if m == nil {
		return errors.New("engine: SetMapper: nil mapper")
	}
	p.mapper.Store(&mapperBox{m})
	return nil
}

// Ready returns nil while the pipeline is ready to be relied on, and
// otherwise an error saying why not: it is not running (not yet started,
// or stopped), it is stopping after a fatal error, its source reports
// through source.HealthReporter that it is not connected, or it paused a
// table after a schema change and waits for an operator to resume it. It is safe to
// call at any time from any goroutine.
func (p *Pipeline) Ready() error {
	if fatal := p.fatalErr(); fatal != nil {
		return fmt.Errorf("pipeline %q stopped: %w", p.cfg.Name, fatal)
	}
	if !p.running.Load() {
		return fmt.Errorf("pipeline %q is not running", p.cfg.Name)
	}
	if h, ok := p.src.(source.HealthReporter); ok {
		if err := h.Healthy(); err != nil {
			return fmt.Errorf("pipeline %q: source not connected: %w", p.cfg.Name, err)
		}
	}
	if paused := p.schemaPaused(); len(paused) > 0 {
		tables := slices.Sorted(maps.Keys(paused))
		return fmt.Errorf("pipeline %q: table %s paused: %s", p.cfg.Name, tables[0], paused[tables[0]])
	}
	return nil
}

// now returns the time since the pipeline was built, the clock of item.at.
func (p *Pipeline) now() int64 { return int64(time.Since(p.epoch)) }
