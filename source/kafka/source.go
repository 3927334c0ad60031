package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
)

// Source reads change records from Kafka topics as a member of a consumer
// group. It implements source.Source and source.HealthReporter.
//
// Each record is one message; its Position names the message's topic,
// partition and offset. Offsets are committed to the group only for
// messages the engine has acked, and per partition only up to the first
// message not yet acked, so a crash or a rebalance replays and never
// skips. Records of one partition are returned in offset order, which
// keeps each key's changes in order when producers partition by key.
//
// In a rebalance the source stops handing on messages of the partitions
// it holds, waits (up to Config.DrainTimeout) until those it has handed on
// are acked, commits them, and only then rejoins the group: the next owner
// of a partition resumes right after the last change this member wrote,
// and no two members write changes of one partition at the same time.
type Source struct {
	cfg       Config
	log       *slog.Logger
	skipUsers map[string]bool
	schemas   schemaCache // of Debezium events; the fetchers share it

	group  *kafka.ConsumerGroup
	msgs   chan fetched
	fatal  chan error
	acked  chan struct{} // signalled after each Ack, for drain
	closed chan struct{}
	stop   context.CancelFunc
	wg     sync.WaitGroup
	health atomic.Pointer[error]

	commitMu sync.Mutex // serializes commits; taken before mu

	batch []fetched // Read's, reused from one call to the next

	mu       sync.Mutex
	gen      *kafka.Generation // current generation; nil between two
	assigned map[partitionKey]bool
	draining bool // gen has ended; its messages are no longer handed on
	queue    pending
	toCommit map[partitionKey]int64 // acked, not yet committed
	closing  bool
}

// fetched is a message, decoded by the goroutine that fetched it, and the
// generation whose assignment fetched it.
type fetched struct {
	gen int32
	partitionKey
	offset int64
	decoded
}

// New returns an unopened Source. It validates cfg but does not connect.
func New(cfg Config, log *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka source: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	s := &Source{cfg: cfg, log: log, skipUsers: map[string]bool{}}
	for _, id := range cfg.SkipUserIDs {
		s.skipUsers[strings.ToLower(strings.Trim(id, "{}"))] = true
	}
	notOpen := errors.New("kafka source: not open")
	s.health.Store(&notOpen)
	return s, nil
}

// Open checks that the brokers accept the connection and that the topics
// exist, then joins the consumer group. Partitions are assigned in the
// background; Read waits for them.
//
// A source resumes from the group's committed offsets, which it commits
// only for acked records, so from is not needed to resume; it is checked
// to be a Kafka position, when given, and otherwise ignored.
func (s *Source) Open(ctx context.Context, from change.Position) error {
	if len(from) > 0 {
		if _, _, _, err := decodePosition(from); err != nil {
			return fmt.Errorf("kafka source: resume position: %w", err)
		}
	}
	if err := s.cfg.Connection.Check(ctx); err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	dialer, err := s.cfg.Connection.Dialer()
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	if err := s.checkTopics(ctx); err != nil {
		return err
	}
	topics := make([]string, len(s.cfg.Topics))
	for i, t := range s.cfg.Topics {
		topics[i] = t.Name
	}
	start := kafka.FirstOffset
	if s.cfg.StartOffset == "latest" {
		start = kafka.LastOffset
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    s.cfg.GroupID,
		Brokers:               s.cfg.Connection.Brokers,
		Dialer:                dialer,
		Topics:                topics,
		HeartbeatInterval:     s.cfg.SessionTimeout / 10,
		SessionTimeout:        s.cfg.SessionTimeout,
		RebalanceTimeout:      s.cfg.RebalanceTimeout,
		WatchPartitionChanges: true,
		StartOffset:           start,
		ErrorLogger:           kafka.LoggerFunc(s.logKafka),
	})
	if err != nil {
		return fmt.Errorf("kafka source: join group %s: %w", s.cfg.GroupID, err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.group, s.stop = group, stop
	s.msgs = make(chan fetched, s.cfg.MaxBatch)
	s.fatal = make(chan error, 1)
	s.acked = make(chan struct{}, 1)
	s.closed = make(chan struct{})
	s.toCommit = map[partitionKey]int64{}
	joining := errors.New("kafka source: joining consumer group " + s.cfg.GroupID)
	s.health.Store(&joining)
	s.wg.Add(1)
	go s.run(runCtx, dialer)
	return nil
}

// checkTopics fails with the names of the configured topics the cluster
// does not have. It asks for metadata without creating topics, which a
// broker with auto.create.topics.enable would otherwise do.
func (s *Source) checkTopics(ctx context.Context) error {
	tr, err := s.cfg.Connection.Transport()
	if err != nil {
		return fmt.Errorf("kafka source: %w", err)
	}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(s.cfg.Connection.Brokers...), Transport: tr}
	names := make([]string, len(s.cfg.Topics))
	for i, t := range s.cfg.Topics {
		names[i] = t.Name
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("kafka source: read topic metadata: %w", err)
	}
	unknown := map[string]bool{}
	for _, t := range md.Topics {
		switch {
		case errors.Is(t.Error, kafka.UnknownTopicOrPartition):
			unknown[t.Name] = true
		case t.Error != nil:
			return fmt.Errorf("kafka source: topic %s: %w", t.Name, t.Error)
		}
	}
	var missing []string
	for _, name := range names {
		if unknown[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("kafka source: topic(s) %s do not exist", strings.Join(missing, ", "))
	}
	return nil
}

// Read returns the records of the messages fetched since the last call,
// at most Config.MaxBatch, waiting for at least one. Messages that
// decode to no record (echoes of dvsync's own writes, Debezium heartbeats)
// are not returned. A message that cannot be decoded is returned as a
// record that carries MetaDecodeError (see there).
//
// Read returns an error only when the brokers refuse the source's
// credentials or ctx ends; other trouble (a broker down, a rebalance) is
// retried in the background and shows in Healthy.
func (s *Source) Read(ctx context.Context) ([]change.Record, error) {
	batch := s.batch[:0]
	defer func() {
		clear(batch) // let the records go; the engine holds them now
		s.batch = batch[:0]
	}()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-s.fatal:
			return nil, err
		case <-s.closed:
			return nil, errors.New("kafka source: closed")
		case f := <-s.msgs:
			clear(batch) // a previous round's, all skipped or stale
			batch = append(batch[:0], f)
		}
	more:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case f := <-s.msgs:
				batch = append(batch, f)
			default:
				break more
			}
		}
		if recs := s.emit(batch); len(recs) > 0 {
			return recs, nil
		}
	}
}

// emit registers what it hands on of batch. Messages fetched by a
// generation that has ended are dropped: their partitions may belong to
// another member by now, which reads them from the committed offsets.
func (s *Source) emit(batch []fetched) []change.Record {
	recs := make([]change.Record, 0, len(batch))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range batch {
		f := &batch[i]
		if s.gen == nil || f.gen != s.gen.ID || s.draining {
			continue
		}
		s.queue.add(entry{partitionKey: f.partitionKey, offset: f.offset, gen: f.gen, skipped: f.skip})
		if !f.skip {
			recs = append(recs, f.rec)
		}
	}
	return recs
}

// Ack commits, for each partition, the offset after the last message up
// to pos: pos's own message and everything the source returned before it
// have been made durable. Offsets of partitions the source no longer holds
// are not committed: their new owner reads them again and its writes are
// idempotent. A commit the group refuses (during a rebalance) is kept and
// tried again with the next Ack, and the error is returned as retryable.
//
// A pos this source did not return, or returned and released already, is
// ignored.
func (s *Source) Ack(ctx context.Context, pos change.Position) error {
	topic, partition, offset, err := decodePosition(pos)
	if err != nil {
		return fmt.Errorf("kafka source: ack: %w", err)
	}
	s.mu.Lock()
	s.queue.trailingSkips(s.toCommit)
	s.queue.release(partitionKey{topic, partition}, offset, s.toCommit)
	draining := s.draining
	s.mu.Unlock()
	select {
	case s.acked <- struct{}{}:
	default:
	}
	if draining {
		return nil // the drain commits once it has heard of every ack
	}
	if err := s.commitAcked(ctx); err != nil {
		return change.Retryable(err, 0)
	}
	return nil
}

// commitAcked commits the acked offsets of the partitions the current
// generation holds. Commits are serialized, so that an older set of
// offsets never lands after a newer one, and so that the drain's final
// commit waits for one in flight before the generation (and its
// connection) ends.
func (s *Source) commitAcked(ctx context.Context) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	gen, offsets := s.commitSet()
	s.mu.Unlock()
	if gen == nil || len(offsets) == 0 {
		return nil
	}
	return s.commit(ctx, gen, offsets)
}

// commitSet returns the current generation and the offsets to commit with
// it, dropping those of partitions it does not hold. The caller holds mu.
func (s *Source) commitSet() (*kafka.Generation, map[string]map[int]int64) {
	if s.gen == nil {
		return nil, nil
	}
	var offsets map[string]map[int]int64
	for k, off := range s.toCommit {
		if !s.assigned[k] {
			delete(s.toCommit, k)
			continue
		}
		if offsets == nil {
			offsets = map[string]map[int]int64{}
		}
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int]int64{}
		}
		offsets[k.topic][k.partition] = off
	}
	return s.gen, offsets
}

// commit commits offsets in gen and, once the group has them, forgets
// those that have not moved on meanwhile.
func (s *Source) commit(ctx context.Context, gen *kafka.Generation, offsets map[string]map[int]int64) error {
	errc := make(chan error, 1)
	// Generation.CommitOffsets takes no context; its connection has the
	// group's own timeout.
	go func() { errc <- gen.CommitOffsets(offsets) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("kafka source: commit offsets of group %s: %w", s.cfg.GroupID, err)
	}
	s.mu.Lock()
	for topic, parts := range offsets {
		for p, off := range parts {
			k := partitionKey{topic, p}
			if s.toCommit[k] == off {
				delete(s.toCommit, k)
			}
		}
	}
	s.mu.Unlock()
	return nil
}

// Close leaves the consumer group, so that the other members take over
// the partitions at once, and stops fetching. It commits offsets already
// acked but acks nothing itself. It waits for the background work to
// finish or ctx to end.
func (s *Source) Close(ctx context.Context) error {
	if s.group == nil {
		return nil
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	close(s.closed)
	s.stop()
	done := make(chan struct{})
	go func() {
		_ = s.group.Close() // always nil
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("kafka source: close: %w", ctx.Err())
	}
	closed := errors.New("kafka source: closed")
	s.health.Store(&closed)
	return nil
}

// Healthy returns nil while the source holds a place in the consumer
// group, and the last error otherwise: while it joins, while brokers
// cannot be reached, after Close.
func (s *Source) Healthy() error {
	return *s.health.Load()
}

func (s *Source) setHealth(err error) { s.health.Store(&err) }

// logKafka logs kafka-go's own error reports, which are retried
// connection and group troubles, at debug level: what matters of them
// shows in Healthy.
func (s *Source) logKafka(format string, args ...any) {
	s.log.Debug("kafka: " + fmt.Sprintf(format, args...))
}
