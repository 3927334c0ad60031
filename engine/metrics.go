package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/change"
)

// metrics are the pipeline's Prometheus collectors. They exist even when
// nothing registers them, so the hot path never checks for nil.
//
// Record counters are labelled by table, the source table a record was
// read from (a mapping's identity), and op, its operation: the source's
// for read, failed and dead-lettered at the map stage; the written
// record's, after folding, for written and for failures at the write
// stage.
type metrics struct {
	read, written, failed *prometheus.CounterVec // table, op
	dead                  *prometheus.CounterVec // table, op, stage
	mapped, skipped       prometheus.Counter
	retries               prometheus.Counter
	deferred              prometheus.Counter
	batchSize             prometheus.Histogram
	writeSeconds          prometheus.Histogram
	lagSeconds            prometheus.Gauge
	collectors            []prometheus.Collector
}

func newMetrics(p *Pipeline) *metrics {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "dvsync", Subsystem: "engine", Name: name, Help: help}
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(opts(name, help))
	}
	tableOp := []string{"table", "op"}
	m := &metrics{
		read: prometheus.NewCounterVec(opts("records_read_total",
			"Records read from the source, by source table and operation."), tableOp),
		written: prometheus.NewCounterVec(opts("records_written_total",
			"Records the sink made durable, counted after folding changes to one key, by source table and operation."), tableOp),
		failed: prometheus.NewCounterVec(opts("records_failed_total",
			"Records that failed to map, or were in a sink write that failed (each failed attempt counts), by source table and operation."), tableOp),
		dead: prometheus.NewCounterVec(opts("records_dead_lettered_total",
			"Records sent to the dead-letter store, by source table, operation and the stage that failed (map or write)."),
			[]string{"table", "op", "stage"}),
		mapped:  counter("records_mapped_total", "Records the mapper mapped for writing."),
		skipped: counter("records_skipped_total", "Records the mapper left out of this pipeline; they are acked without a write."),
		retries: counter("write_retries_total", "Writes tried again after a retryable failure."),
		deferred: counter("records_deferred_total",
			"Record writes the sink deferred because a row they refer to was not there yet; they are parked and tried again."),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "dvsync", Subsystem: "engine", Name: "batch_size_records",
			Help:    "Records per sink write, after folding.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "dvsync", Subsystem: "engine", Name: "write_duration_seconds",
			Help:    "Time one sink write took, failed writes included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "dvsync", Subsystem: "engine", Name: "lag_seconds",
			Help: "End-to-end lag: at the last successful write, how long ago the newest change in it was committed at the source.",
		}),
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "dvsync", Subsystem: "engine", Name: "in_flight_records",
		Help: "Records read and not yet passed by the ack watermark.",
	}, func() float64 { return float64(p.tracker.inFlight()) })
	lastAck := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "dvsync", Subsystem: "engine", Name: "last_ack_timestamp_seconds",
		Help: "Unix time of the last position acked to the source; 0 before the first.",
	}, func() float64 {
		t := p.Stats().LastAck
		if t.IsZero() {
			return 0
		}
		return float64(t.UnixNano()) / 1e9
	})
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "dvsync", Subsystem: "engine", Name: "ready",
		Help: "1 while the pipeline runs and its source is connected, else 0 (see /readyz).",
	}, func() float64 {
		if p.Ready() != nil {
			return 0
		}
		return 1
	})
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "dvsync", Subsystem: "engine", Name: "paused_records",
		Help: "Records of paused tables held in memory until they resume.",
	}, func() float64 { return float64(p.pause.held.Load()) })
	parked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "dvsync", Subsystem: "engine", Name: "parked_records",
		Help: "Records parked behind writes deferred until the rows they refer to exist.",
	}, func() float64 { return float64(p.nParked.Load()) })
	m.collectors = []prometheus.Collector{
		m.read, m.written, m.failed, m.dead, m.mapped, m.skipped, m.retries, m.deferred,
		m.batchSize, m.writeSeconds, m.lagSeconds, inFlight, lastAck, ready, held, parked,
	}
	return m
}

// register registers every collector with reg, labelled with the pipeline
// name. On failure it unregisters what it registered.
func (m *metrics) register(reg prometheus.Registerer, pipeline string) error {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": pipeline}, reg)
	for i, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors[:i] {
				reg.Unregister(done)
			}
			var dup prometheus.AlreadyRegisteredError
			if errors.As(err, &dup) {
				return fmt.Errorf("engine: metrics of pipeline %q are already registered", pipeline)
			}
			return fmt.Errorf("engine: register metrics: %w", err)
		}
	}
	return nil
}

// observeLag sets the lag gauge from newest, the latest commit time among
// the records just written. Zero, when none had one (snapshot reads, a
// source that has none), says nothing about lag and leaves the gauge.
func (m *metrics) observeLag(newest time.Time) {
	if !newest.IsZero() {
		m.lagSeconds.Set(max(time.Since(newest).Seconds(), 0))
	}
}

// opLabel is the op label's value: words, since the change.Op letters
// (c, u, d, r) read poorly on a dashboard.
func opLabel(op change.Op) string {
	switch op {
	case change.OpInsert:
		return "insert"
	case change.OpUpdate:
		return "update"
	case change.OpDelete:
		return "delete"
	case change.OpRead:
		return "read"
	}
	return "unknown"
}

// tableOp is a table and operation, the key of counterCache.
type tableOp struct {
	table string
	op    change.Op
}

// counterCache finds a CounterVec's child for a table and operation
// without building the label slice and hashing it for every record; runs
// of records of one table and operation, the common case, skip even the
// map. It is not safe for concurrent use: each goroutine keeps its own.
type counterCache struct {
	vec  *prometheus.CounterVec
	m    map[tableOp]prometheus.Counter
	last tableOp
	ctr  prometheus.Counter // the counter of last, nil before the first add
}

func newCounterCache(vec *prometheus.CounterVec) *counterCache {
	return &counterCache{vec: vec, m: map[tableOp]prometheus.Counter{}}
}

// add adds n to the counter of table and op.
func (c *counterCache) add(table string, op change.Op, n int) {
	k := tableOp{table, op}
	if c.ctr == nil || k != c.last {
		ctr, ok := c.m[k]
		if !ok {
			ctr = c.vec.WithLabelValues(table, opLabel(op))
			c.m[k] = ctr
		}
		c.last, c.ctr = k, ctr
	}
	c.ctr.Add(float64(n))
}
