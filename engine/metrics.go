package engine

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the pipeline's Prometheus collectors. They exist even when
// nothing registers them, so the hot path never checks for nil.
type metrics struct {
	read, mapped, skipped, written prometheus.Counter
	deadMap, deadWrite             prometheus.Counter
	retries                        prometheus.Counter
	batchSize                      prometheus.Histogram
	writeSeconds                   prometheus.Histogram
	collectors                     []prometheus.Collector
}

func newMetrics(p *Pipeline) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "dvsync", Subsystem: "engine", Name: name, Help: help,
		})
	}
	dead := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "dvsync", Subsystem: "engine", Name: "records_dead_lettered_total",
		Help: "Records sent to the dead-letter store, by the stage that failed (map or write).",
	}, []string{"stage"})
	m := &metrics{
		read:      counter("records_read_total", "Records read from the source."),
		mapped:    counter("records_mapped_total", "Records the mapper mapped for writing."),
		skipped:   counter("records_skipped_total", "Records the mapper left out of this pipeline; they are acked without a write."),
		written:   counter("records_written_total", "Records the sink made durable, counted after folding changes to one key."),
		deadMap:   dead.WithLabelValues(stageMap),
		deadWrite: dead.WithLabelValues(stageWrite),
		retries:   counter("write_retries_total", "Writes tried again after a retryable failure."),
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
	m.collectors = []prometheus.Collector{
		m.read, m.mapped, m.skipped, m.written, dead, m.retries,
		m.batchSize, m.writeSeconds, inFlight, lastAck,
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
