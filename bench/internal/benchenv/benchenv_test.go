package benchenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/dataverse"
)

// TestMain lets the test binary serve as the emulator's child process,
// as the benchmark program does.
func TestMain(m *testing.M) {
	if child, err := ServeEmulatorChild(); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func start(t *testing.T) (context.Context, *Postgres, *Emulator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	pg, err := StartPostgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	em, err := StartEmulator(emulator.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(em.Stop)
	return ctx, pg, em
}

// A benchmark whose target lost or changed a row must fail: Compare is
// what makes a lossy run a failure.
func TestCompareCatchesLossyTarget(t *testing.T) {
	ctx, pg, em := start(t)
	if err := pg.Insert(ctx, 1, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := em.Ingest(ctx, 1, 9, 4, 2); err != nil {
		t.Fatal(err)
	}
	if _, err := Compare(ctx, pg, em); err == nil || !strings.Contains(err.Error(), "1 source rows missing") {
		t.Fatalf("Compare with row 10 missing: %v, want 1 source row missing", err)
	}
	if _, err := CompareGenerated(ctx, 10, em); err == nil {
		t.Fatal("CompareGenerated with row 10 missing: nil error")
	}
	if _, err := em.Ingest(ctx, 10, 1, 4, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := Compare(ctx, pg, em); err != nil || n != 10 {
		t.Fatalf("Compare of equal sides: %d rows, %v; want 10, nil", n, err)
	}
	if n, err := CompareGenerated(ctx, 10, em); err != nil || n != 10 {
		t.Fatalf("CompareGenerated of equal sides: %d rows, %v; want 10, nil", n, err)
	}
	if err := pg.Exec(ctx, "UPDATE "+Table+" SET employees = employees + 1 WHERE id = 5"); err != nil {
		t.Fatal(err)
	}
	if _, err := Compare(ctx, pg, em); err == nil || !strings.Contains(err.Error(), "1 accounts wrong") {
		t.Fatalf("Compare with a changed value: %v, want 1 account wrong", err)
	}
}

// The wiring the scenarios use carries rows end to end: a backfill, then
// streamed inserts.
func TestBackfillThenStreaming(t *testing.T) {
	ctx, pg, em := start(t)
	if err := pg.Insert(ctx, 1, 300); err != nil {
		t.Fatal(err)
	}
	dst, client, err := NewSink(em, dataverse.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	if n, err := Backfill(ctx, pg.DSN(), "test_backfill", dst); err != nil || n != 300 {
		t.Fatalf("Backfill: %d rows, %v; want 300, nil", n, err)
	}
	if err := pg.DropSlot(ctx, "test_backfill"); err != nil {
		t.Fatal(err)
	}
	s := startStreaming(ctx, t, pg, em, "test_stream")
	if err := pg.Insert(ctx, 301, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx, 50); err != nil {
		t.Fatal(err)
	}
	if ph := s.Take(); ph.Records != 50 || ph.Latencies.Len() != 50 || ph.Span() <= 0 {
		t.Fatalf("phase: %d records, %d latencies, span %s; want 50, 50, positive", ph.Records, ph.Latencies.Len(), ph.Span())
	}
	if n, err := Compare(ctx, pg, em); err != nil || n != 350 {
		t.Fatalf("Compare: %d rows, %v; want 350, nil", n, err)
	}
}

// newSink is a Dataverse sink writing to em, its idle connections closed
// when the test ends.
func newSink(t *testing.T, em *Emulator) sink.Sink {
	t.Helper()
	dst, client, err := NewSink(em, dataverse.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return dst
}

// startStreaming starts the streaming pipeline on slot into em, stopped
// when the test ends.
func startStreaming(ctx context.Context, t *testing.T, pg *Postgres, em *Emulator, slot string) *Streaming {
	t.Helper()
	s, err := StartStreaming(ctx, pg.DSN(), slot, newSink(t, em))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// A paused pipeline, resumed on the state it kept, streams the changes
// committed meanwhile, each once.
func TestStreamingPauseResume(t *testing.T) {
	ctx, pg, em := start(t)
	s := startStreaming(ctx, t, pg, em, "test_pause")
	if err := pg.Insert(ctx, 1, 50); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx, 50); err != nil {
		t.Fatal(err)
	}
	s.Take()
	if err := s.Pause(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Insert(ctx, 51, 30); err != nil {
		t.Fatal(err)
	}
	if err := s.Resume(ctx, newSink(t, em)); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(ctx, 30); err != nil {
		t.Fatal(err)
	}
	if n, err := Compare(ctx, pg, em); err != nil || n != 80 {
		t.Fatalf("Compare: %d rows, %v; want 80, nil", n, err)
	}
}

// The Dataverse → Kafka pipeline publishes every account, and the check
// that reads the topic back notices one too few.
func TestOutboundPublishesEveryAccount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := StartOutbound(ctx, c.ListenAddrs(), "out", Delta)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = out.Stop() }()
	if _, err := out.Emulator.Ingest(ctx, 1, 40, 10, 2); err != nil {
		t.Fatal(err)
	}
	if err := out.Wait(ctx, 40); err != nil {
		t.Fatal(err)
	}
	if err := CompareOutbound(ctx, c.ListenAddrs(), "out", 40); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 3*time.Second)
	defer cancelShort()
	if err := CompareOutbound(short, c.ListenAddrs(), "out", 41); err == nil {
		t.Fatal("CompareOutbound of 41 accounts on a topic holding 40: nil error")
	}
}
