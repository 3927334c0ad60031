package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/internal/kafkaconn"
)

// run takes part in the consumer group until ctx ends: for each
// generation it starts a fetcher per assigned partition, and a drainer
// that holds the generation open, when it ends, until what it handed on
// is committed.
func (s *Source) run(ctx context.Context, dialer *kafka.Dialer) {
	defer s.wg.Done()
	for {
		gen, err := s.group.Next(ctx)
		switch {
		case ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed):
			return
		case kafkaconn.IsAuthError(err):
			err = fmt.Errorf("kafka source: group %s: %w", s.cfg.GroupID, err)
			s.setHealth(err)
			select {
			case s.fatal <- err:
			default:
			}
			return
		case err != nil:
			// The group retries by itself, with a backoff.
			s.setHealth(fmt.Errorf("kafka source: group %s: %w", s.cfg.GroupID, err))
			continue
		}
		s.begin(gen)
		for topic, parts := range gen.Assignments {
			for _, p := range parts {
				gen.Start(func(ctx context.Context) { s.fetch(ctx, dialer, gen.ID, topic, p) })
			}
		}
		gen.Start(func(ctx context.Context) {
			<-ctx.Done()
			s.drain(gen)
		})
	}
}

// begin makes gen the current generation.
func (s *Source) begin(gen *kafka.Generation) {
	n := 0
	s.mu.Lock()
	s.gen, s.draining = gen, false
	s.assigned = map[partitionKey]bool{}
	for topic, parts := range gen.Assignments {
		for _, p := range parts {
			s.assigned[partitionKey{topic, p.ID}] = true
			n++
		}
	}
	s.mu.Unlock()
	s.setHealth(nil)
	s.log.Info("kafka consumer group joined", "group", s.cfg.GroupID, "generation", gen.ID,
		"member", gen.MemberID, "partitions", n)
}

// fetch reads one partition from its assigned offset and hands its
// messages to Read in offset order, until the generation ends. It decodes
// them too, so that the partitions are decoded in parallel and Read, on
// the engine's one reading goroutine, only collects them.
func (s *Source) fetch(ctx context.Context, dialer *kafka.Dialer, gen int32, topic string, p kafka.PartitionAssignment) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     s.cfg.Connection.Brokers,
		Topic:       topic,
		Partition:   p.ID,
		Dialer:      dialer,
		MaxWait:     500 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(s.logKafka),
	})
	defer r.Close()
	// The assignment's offset is the group's committed one, or
	// FirstOffset/LastOffset for a partition never committed.
	if err := r.SetOffset(p.Offset); err != nil {
		s.log.Warn("kafka: cannot position partition reader", "topic", topic, "partition", p.ID, "err", err)
		return
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				// Returning ends the generation: the group rejoins and
				// the partition is read again from the committed offset.
				s.setHealth(fmt.Errorf("kafka source: fetch %s/%d: %w", topic, p.ID, err))
			}
			return
		}
		f := fetched{gen: gen, partitionKey: partitionKey{m.Topic, m.Partition}, offset: m.Offset, decoded: s.decode(&m)}
		select {
		case s.msgs <- f:
		case <-ctx.Done():
			return
		}
	}
}

// drain runs when gen ends, before the group may rejoin: it stops Read
// from handing on more of gen's messages, waits until those it handed on
// are acked (or Config.DrainTimeout passes), and commits them. Without it
// the next owner of a partition would start from older offsets while this
// member still writes the newer ones, and could overwrite a key's newer
// value with an older one.
func (s *Source) drain(gen *kafka.Generation) {
	s.mu.Lock()
	s.draining = true
	closing := s.closing
	s.mu.Unlock()

	start := time.Now()
	if !closing && !s.waitAcked(gen.ID) {
		s.log.Warn("kafka: rebalance: records handed on were not acked in time; the partitions' next owner reads them again",
			"group", s.cfg.GroupID, "generation", gen.ID, "drain_timeout", s.cfg.DrainTimeout)
	}

	s.mu.Lock()
	s.queue.trailingSkips(s.toCommit)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RebalanceTimeout-time.Since(start))
	if err := s.commitAcked(ctx); err != nil {
		s.log.Warn("kafka: rebalance: final commit failed; the partitions' next owner reads some records again",
			"group", s.cfg.GroupID, "generation", gen.ID, "err", err)
	}
	cancel()

	s.mu.Lock()
	s.queue.dropGeneration(gen.ID)
	if s.gen == gen {
		s.gen, s.assigned = nil, nil
	}
	s.mu.Unlock()
}

// waitAcked waits until every record of generation gen that Read handed
// on is acked, or the source closes, and reports true; or until
// Config.DrainTimeout passes, and reports false.
func (s *Source) waitAcked(gen int32) bool {
	timeout := time.NewTimer(s.cfg.DrainTimeout)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		busy := s.queue.outstanding(gen)
		s.mu.Unlock()
		if !busy {
			return true
		}
		select {
		case <-s.acked:
		case <-s.closed:
			return true
		case <-timeout.C:
			return false
		}
	}
}
