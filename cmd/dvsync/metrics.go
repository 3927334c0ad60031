package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/dataverse"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/postgres"
)

// registerAdapterMetrics registers, under the pipeline label, the figures
// the engine cannot see: the Dataverse sink's requests, throttling and
// concurrency, and, for a PostgreSQL source, the replication slot's lag.
//
// Every metric is read from the adapters at scrape time (GaugeFunc,
// CounterFunc, or a collector for the slot lag), so nothing is copied on
// the write path. Sinks built on one client share its limiter, so the
// Dataverse figures of pipelines sharing a client are the same figures
// under each pipeline label: aggregate them with max, not sum.
func registerAdapterMetrics(reg prometheus.Registerer, pipeline string, src source.Source, out sink.Sink) error {
	reg = prometheus.WrapRegistererWith(prometheus.Labels{"pipeline": pipeline}, reg)
	var cs []prometheus.Collector
	if dst, ok := out.(*dataverse.Sink); ok {
		cs = dataverseCollectors(dst)
	}
	if pg, ok := src.(*postgres.Source); ok {
		cs = append(cs, slotLagCollector{pg})
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// dataverseCollectors read a Dataverse sink's figures at scrape time.
func dataverseCollectors(dst *dataverse.Sink) []prometheus.Collector {
	stat := func(f func(dataverse.Stats) float64) func() float64 {
		return func() float64 { return f(dst.Stats()) }
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(dvOpts("requests_total",
			"HTTP requests sent to Dataverse, retries included."),
			stat(func(s dataverse.Stats) float64 { return float64(s.Requests) })),
		prometheus.NewCounterFunc(dvOpts("throttled_total",
			"Dataverse requests answered with throttling: 429 or a service protection error."),
			stat(func(s dataverse.Stats) float64 { return float64(s.Throttled) })),
		prometheus.NewCounterFunc(dvOpts("retries_total",
			"Dataverse requests sent again after a temporary failure or throttling."),
			stat(func(s dataverse.Stats) float64 { return float64(s.Retries) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(dvOpts("concurrency_limit",
			"Requests currently allowed in flight: halved on throttling, grown again by successes.")),
			stat(func(s dataverse.Stats) float64 { return float64(s.Limit) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(dvOpts("concurrency_ceiling",
			"The most requests ever allowed in flight: the configured concurrency, lowered to the service's x-ms-dop-hint.")),
			stat(func(s dataverse.Stats) float64 { return float64(s.Ceiling) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(dvOpts("requests_in_flight",
			"Dataverse requests being sent now.")),
			stat(func(s dataverse.Stats) float64 { return float64(s.InFlight) })),
	}
}

func dvOpts(name, help string) prometheus.CounterOpts {
	return prometheus.CounterOpts{Namespace: "dvsync", Subsystem: "dataverse", Name: name, Help: help}
}

var slotLagDesc = prometheus.NewDesc("dvsync_postgres_slot_lag_bytes",
	"WAL bytes the replication slot has yet to confirm, as the source's last heartbeat measured; absent before the first measurement.",
	nil, nil)

// slotLagCollector reports a PostgreSQL source's slot lag. It is a
// collector rather than a GaugeFunc so that a source with no measurement
// yet (before its first heartbeat, or with heartbeats off) reports no
// sample instead of a made-up zero that would read as "caught up".
type slotLagCollector struct{ src *postgres.Source }

func (c slotLagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- slotLagDesc }

func (c slotLagCollector) Collect(ch chan<- prometheus.Metric) {
	if n, ok := c.src.SlotLag(); ok {
		ch <- prometheus.MustNewConstMetric(slotLagDesc, prometheus.GaugeValue, float64(n))
	}
}
