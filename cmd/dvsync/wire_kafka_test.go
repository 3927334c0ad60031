package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/state"
)

// letterStore keeps dead letters in memory; other methods are not used.
type letterStore struct {
	state.Store
	letters []state.DeadLetter
}

func (s *letterStore) PutDeadLetters(_ context.Context, l []state.DeadLetter) error {
	s.letters = append(s.letters, l...)
	return nil
}

// TestDeadLetterTopicStoreKeepsLettersTheTopicRefused stops the cluster
// before a dead letter is put: the store keeps it, PutDeadLetters
// succeeds, and the letter is counted as unpublished.
func TestDeadLetterTopicStoreKeepsLettersTheTopicRefused(t *testing.T) {
	k := testenv.StartKafka(t, "dead")
	inner := &letterStore{}
	a := &adapters{log: slog.New(slog.DiscardHandler)}
	st, err := kafkaDeadLetterStore(context.Background(), a, "bus",
		config.Connection{Type: "kafka", Brokers: k.Addrs, ClientID: "dvsync", Compression: "none", DeadLetterTopic: "dead"}, inner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	k.Cluster.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	letter := state.DeadLetter{Pipeline: "bus", Stage: "map", Reason: "bad", Time: time.Now(),
		Record: change.Record{Op: change.OpInsert, Table: "suppliers", Key: change.Key{{Name: "code", Value: change.Text("S1")}}}}
	if err := st.PutDeadLetters(ctx, []state.DeadLetter{letter}); err != nil {
		t.Fatalf("PutDeadLetters failed although the store took the letter: %v", err)
	}
	if len(inner.letters) != 1 {
		t.Errorf("the store holds %d letters, want 1", len(inner.letters))
	}
	if n := st.(*deadLetterTopicStore).failed.Load(); n != 1 {
		t.Errorf("%d letters counted as unpublished, want 1", n)
	}
}

// TestKafkaStoreWithoutDeadLetterTopic leaves the store as it is.
func TestKafkaStoreWithoutDeadLetterTopic(t *testing.T) {
	inner := &letterStore{}
	st, err := kafkaDeadLetterStore(context.Background(), &adapters{}, "bus", config.Connection{Type: "kafka"}, inner)
	if err != nil || st != state.Store(inner) {
		t.Fatalf("got %T, %v; want the store itself", st, err)
	}
}
