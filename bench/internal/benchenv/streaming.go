package benchenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/internal/kafkaconn"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/kafka"
	"github.com/dvsync/dvsync/source/postgres"
	"github.com/dvsync/dvsync/state"
)

// Streaming is a running streaming pipeline, source/postgres → mapping →
// engine → dst, as 'dvsync run' wires it, with every record's
// commit-to-durable latency recorded as its sink Write returns.
type Streaming struct {
	p      *engine.Pipeline
	rec    *recorder
	cancel context.CancelFunc
	done   chan error
	st     *state.Bolt
	dir    string

	// What Resume builds the pipeline again from.
	name      string
	newSource func(*state.Bolt) (source.Source, error)
	mapper    engine.Mapper
}

// StartStreaming starts the pipeline on a new slot and publication of
// that name and returns once it is streaming, so that every change
// committed afterwards reaches dst.
func StartStreaming(ctx context.Context, dsn, slot string, dst sink.Sink) (*Streaming, error) {
	set, err := compileMapping()
	if err != nil {
		return nil, err
	}
	newSource := func(*state.Bolt) (source.Source, error) {
		return postgres.New(postgres.Config{
			DSN: dsn, Slot: slot, Publication: slot, Tables: set.Tables(connection), Keys: set.Keys(connection),
		}, discardLogger)
	}
	return startPipelineWith(ctx, connection, newSource, set.Mapper(connection), dst)
}

// StartKafka starts a pipeline reading KafkaTopic from the brokers as
// consumer group group, through KafkaMapping, into dst, and returns once
// the pipeline is running.
func StartKafka(ctx context.Context, brokers []string, group string, dst sink.Sink) (*Streaming, error) {
	set, err := compile(KafkaMapping)
	if err != nil {
		return nil, err
	}
	src, err := kafka.New(kafka.Config{
		Connection: kafkaconn.Config{Brokers: brokers},
		GroupID:    group,
		Topics:     []kafka.Topic{{Name: KafkaTopic, Format: kafka.FormatJSON, KeyFields: []string{"id"}}},
	}, discardLogger)
	if err != nil {
		return nil, err
	}
	return startPipeline(ctx, kafkaConnection, src, set.Mapper(kafkaConnection), dst)
}

// startPipeline runs an engine pipeline from src through mapper into dst,
// recording each record's latency, and returns once it is ready.
func startPipeline(ctx context.Context, name string, src source.Source, mapper engine.Mapper, dst sink.Sink) (*Streaming, error) {
	return startPipelineWith(ctx, name, func(*state.Bolt) (source.Source, error) { return src, nil }, mapper, dst)
}

// startPipelineWith is startPipeline for a source that keeps its own
// data in the pipeline's state store: newSource makes it.
func startPipelineWith(ctx context.Context, name string, newSource func(*state.Bolt) (source.Source, error), mapper engine.Mapper, dst sink.Sink) (*Streaming, error) {
	dir, err := os.MkdirTemp("", "dvbench-")
	if err != nil {
		return nil, err
	}
	st, err := state.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Streaming{rec: &recorder{dst: dst}, st: st, dir: dir, name: name, newSource: newSource, mapper: mapper}
	if err := s.start(ctx); err != nil {
		st.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// start builds the pipeline on the state store and runs it, returning
// once it is ready.
func (s *Streaming) start(ctx context.Context) error {
	src, err := s.newSource(s.st)
	if err != nil {
		return err
	}
	p, err := engine.New(engine.Config{Name: s.name, Logger: discardLogger}, src, s.mapper, s.rec, s.st)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.p, s.cancel, s.done = p, cancel, make(chan error, 1)
	go func() { s.done <- p.Run(runCtx) }()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for p.Ready() != nil {
		select {
		case <-poll.C:
		case err := <-s.done:
			s.done <- err
			return fmt.Errorf("pipeline stopped before it was ready: %w", err)
		case <-ctx.Done():
			err := errors.Join(ctx.Err(), p.Ready())
			cancel()
			s.done <- <-s.done
			return fmt.Errorf("pipeline not ready: %w", err)
		}
	}
	return nil
}

// Pause stops the pipeline as a restart of dvsync would, keeping its
// state: Resume goes on from the position it saved.
func (s *Streaming) Pause() error {
	s.cancel()
	err := <-s.done
	s.done <- nil // a later Stop finds the pipeline stopped
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Resume starts the pipeline again on the state Pause kept, writing to
// dst (a stopped pipeline has closed its sink), and returns once it is
// ready.
func (s *Streaming) Resume(ctx context.Context, dst sink.Sink) error {
	s.rec.dst = dst
	return s.start(ctx)
}

// Wait returns once n records have been written since the last Take, or
// fails when the pipeline stops or ctx ends first.
func (s *Streaming) Wait(ctx context.Context, n int) error {
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for s.rec.count.Load() < int64(n) {
		select {
		case <-poll.C:
			if err := s.p.Ready(); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("%d of %d records durable: %w", s.rec.count.Load(), n, ctx.Err())
		}
	}
	if got := s.rec.count.Load(); got != int64(n) {
		return fmt.Errorf("%d records written, want %d", got, n)
	}
	if d := s.p.Stats().DeadLettered; d > 0 {
		return fmt.Errorf("%d records dead-lettered", d)
	}
	return nil
}

// Phase is what a streaming pipeline recorded between two Takes.
type Phase struct {
	// Latencies are each record's time from its source commit to its
	// sink Write returning.
	Latencies *Latencies
	// First is the earliest commit time seen; FirstDurable the moment
	// the first write returned, Last the moment the last one did.
	First, FirstDurable, Last time.Time
	// Records is the number of records written.
	Records int64
}

// Span is the time from the first commit to the last durable write.
func (ph Phase) Span() time.Duration { return ph.Last.Sub(ph.First) }

// Take returns what was recorded since the last Take and starts again.
func (s *Streaming) Take() Phase { return s.rec.take() }

// Stop stops the pipeline, waits for it, and removes its state. It
// returns the pipeline's error, if it failed rather than stopped.
func (s *Streaming) Stop() error {
	s.cancel()
	err := <-s.done
	s.st.Close()
	os.RemoveAll(s.dir)
	return err
}

// recorder wraps the sink, timing each record as its Write returns.
// Writes run concurrently, one per engine worker.
type recorder struct {
	dst sink.Sink

	mu                        sync.Mutex
	lat                       *Latencies
	first, firstDurable, last time.Time
	count                     atomic.Int64
}

func (r *recorder) Write(ctx context.Context, batch []change.Record) error {
	if err := r.dst.Write(ctx, batch); err != nil {
		return err
	}
	now := time.Now()
	r.mu.Lock()
	if r.lat == nil {
		r.lat = &Latencies{}
	}
	for i := range batch {
		ct := batch[i].CommitTime
		r.lat.Add(now.Sub(ct))
		if r.first.IsZero() || ct.Before(r.first) {
			r.first = ct
		}
	}
	if r.firstDurable.IsZero() {
		r.firstDurable = now
	}
	r.last = now
	r.mu.Unlock()
	r.count.Add(int64(len(batch)))
	return nil
}

func (r *recorder) Close(ctx context.Context) error { return r.dst.Close(ctx) }

func (r *recorder) take() Phase {
	r.mu.Lock()
	defer r.mu.Unlock()
	ph := Phase{Latencies: r.lat, First: r.first, FirstDurable: r.firstDurable, Last: r.last, Records: r.count.Load()}
	if ph.Latencies == nil {
		ph.Latencies = &Latencies{}
	}
	r.lat, r.first, r.firstDurable, r.last = nil, time.Time{}, time.Time{}, time.Time{}
	r.count.Store(0)
	return ph
}
