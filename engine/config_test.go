package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestBackoffWait(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	for attempt, want := range map[int]time.Duration{
		1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 1000: time.Second,
	} {
		for range 50 {
			got := b.Wait(attempt)
			if got < want/2 || got > want {
				t.Fatalf("Wait(%d) = %s, want within [%s, %s]", attempt, got, want/2, want)
			}
		}
	}
	huge := Backoff{Min: time.Second, Max: 1<<63 - 1}
	if got := huge.Wait(200); got <= 0 {
		t.Fatalf("Wait overflowed to %s", got)
	}
}

func TestNewChecksConfig(t *testing.T) {
	st := newMemStore()
	_, err := New(Config{Workers: -1, MaxRetries: -1, RetryBackoff: Backoff{Min: time.Second, Max: time.Millisecond}},
		nil, passThrough, newMemSink(t), st)
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, want := range []string{"Name: required", "Workers:", "MaxRetries:", "RetryBackoff.Max:", "source: required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	p, err := New(Config{Name: "x"}, newFakeSource(t, st), passThrough, newMemSink(t), st)
	if err != nil {
		t.Fatal(err)
	}
	c := p.cfg
	if c.Workers != DefaultWorkers || c.BatchSize != DefaultBatchSize || c.BatchWait != DefaultBatchWait ||
		c.MaxInFlight != DefaultMaxInFlight || c.AckInterval != DefaultAckInterval ||
		c.ShutdownTimeout != DefaultShutdownTimeout || c.RetryBackoff.Min != DefaultMinBackoff ||
		c.RetryBackoff.Max != DefaultMaxBackoff || c.MaxRetries != 0 || c.StopAfterFailures != 0 || c.Logger == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestNewRejectsDuplicateMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	st := newMemStore()
	build := func(name string) error {
		cfg := testConfig()
		cfg.Name, cfg.Metrics = name, reg
		_, err := New(cfg, newFakeSource(t, st), passThrough, newMemSink(t), st)
		return err
	}
	if err := build("a"); err != nil {
		t.Fatal(err)
	}
	if err := build("b"); err != nil {
		t.Fatalf("a second pipeline of another name: %v", err)
	}
	if err := build("a"); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Fatalf("a second pipeline named a: %v", err)
	}
}
