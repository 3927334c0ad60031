package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
)

// Sink publishes records to Kafka. It is safe for concurrent use: Writes
// from several goroutines share one producer and may share produce
// requests, which is how batches from per-key workers reach the brokers
// together.
type Sink struct {
	cfg     Config
	w       *kafkago.Writer
	tr      *kafkago.Transport
	headers []kafkago.Header
	src     eventSource
	now     func() time.Time
}

// New connects to the cluster, checks that it accepts the configured
// credentials and, unless cfg.CreateTopics is set, that every topic of
// cfg.Tables exists, and returns a Sink ready to write. A refused login is
// a *kafkaconn.AuthError; a missing topic is reported by name.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	cfg = cfg.withDefaults()
	var topics []string
	for _, t := range cfg.Tables {
		topics = append(topics, t.Topic)
	}
	w, tr, err := newProducer(ctx, cfg, topics)
	if err != nil {
		return nil, fmt.Errorf("kafka sink: %w", err)
	}
	return &Sink{
		cfg:     cfg,
		w:       w,
		tr:      tr,
		headers: []kafkago.Header{{Key: kafkaconn.HeaderOrigin, Value: []byte(cfg.Origin)}},
		src:     eventSource{version: cfg.Version, name: cfg.Name},
		now:     time.Now,
	}, nil
}

// newProducer checks the connection and topics and returns a Writer for
// them with cfg's producer settings; cfg has its defaults applied.
func newProducer(ctx context.Context, cfg Config, topics []string) (*kafkago.Writer, *kafkago.Transport, error) {
	codec, err := compression(cfg.Compression)
	if err != nil {
		return nil, nil, err
	}
	if err := cfg.Connection.Check(ctx); err != nil {
		return nil, nil, err
	}
	tr, err := cfg.Connection.Transport()
	if err != nil {
		return nil, nil, err
	}
	if !cfg.CreateTopics {
		if err := checkTopics(ctx, cfg.Connection, tr, topics); err != nil {
			tr.CloseIdleConnections()
			return nil, nil, err
		}
	}
	w := &kafkago.Writer{
		Addr: kafkago.TCP(cfg.Connection.Brokers...),
		// The Java client's partitioner, so that a key lands on the
		// partition Debezium or any Java producer would choose.
		Balancer:     &kafkago.Murmur2Balancer{},
		BatchSize:    cfg.BatchSize,
		BatchBytes:   cfg.BatchBytes,
		BatchTimeout: cfg.BatchTimeout,
		WriteTimeout: cfg.WriteTimeout,
		RequiredAcks: kafkago.RequireAll,
		Compression:  codec,
		Transport:    tr,
		// The engine retries with its own backoff and knows what else
		// is waiting; kafka-go need not retry for long behind its back.
		MaxAttempts:            3,
		AllowAutoTopicCreation: cfg.CreateTopics,
	}
	return w, tr, nil
}

// checkTopics fails when a topic does not exist: kafka-go would
// otherwise retry the first write to it until it gave up.
func checkTopics(ctx context.Context, conn kafkaconn.Config, tr *kafkago.Transport, topics []string) error {
	topics = slices.Clone(topics)
	slices.Sort(topics)
	topics = slices.Compact(topics)
	c := &kafkago.Client{Addr: kafkago.TCP(conn.Brokers...), Transport: tr}
	res, err := c.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return fmt.Errorf("read topic metadata: %w", err)
	}
	var missing []string
	for _, t := range res.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafkago.UnknownTopicOrPartition) {
				missing = append(missing, t.Name)
				continue
			}
			return fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("topic(s) %s do not exist (create them, or set create_topics)", strings.Join(missing, ", "))
	}
	return nil
}

// Write publishes one message per record (two for a delete followed by
// a tombstone) and returns when the partition leaders have acknowledged
// all of them with acks=all.
//
// Messages of one key go to one partition in batch order, and a Write
// returns before the next Write of the same key starts (the engine's
// rule), so a key's messages are in the order its changes happened.
// Replays publish the messages again; consumers folding by key see the
// same final row.
//
// A record that cannot be published — no topic for its table, a value
// that does not encode, a message larger than BatchBytes, a broker's
// rejection of the message itself — fails permanently and the rest of
// the batch is still published (a *change.BatchError). Refused
// authorization is fatal. Anything else, such as a broker that cannot be
// reached, is retryable; after such a failure some messages may have been
// published, which a retry repeats harmlessly.
func (s *Sink) Write(ctx context.Context, batch []change.Record) error {
	if len(batch) == 0 {
		return nil
	}
	now := s.now()
	msgs := make([]kafkago.Message, 0, len(batch))
	owner := make([]int, 0, len(batch)) // message index → record index
	failed := map[int]error{}
	for i := range batch {
		rec := &batch[i]
		t, ok := s.cfg.Tables[rec.Table]
		if !ok {
			failed[i] = change.Permanent(fmt.Errorf("kafka sink: no topic configured for table %s", rec.Table))
			continue
		}
		e, err := encode(rec, t, s.src, now)
		if err != nil {
			failed[i] = change.Permanent(fmt.Errorf("kafka sink: %s: %w", rec, err))
			continue
		}
		m := kafkago.Message{Topic: t.Topic, Key: e.key, Value: e.value, Headers: s.headers}
		if n := messageSize(&m); n > s.cfg.BatchBytes {
			failed[i] = change.Permanent(fmt.Errorf("kafka sink: %s: message of %d bytes exceeds batch_bytes %d", rec, n, s.cfg.BatchBytes))
			continue
		}
		msgs = append(msgs, m)
		owner = append(owner, i)
		if e.follow {
			msgs = append(msgs, kafkago.Message{Topic: t.Topic, Key: e.key, Headers: s.headers})
			owner = append(owner, i)
		}
	}
	if len(msgs) > 0 {
		if err := s.w.WriteMessages(ctx, msgs...); err != nil {
			var werrs kafkago.WriteErrors
			if !errors.As(err, &werrs) || len(werrs) != len(msgs) {
				return classify(err)
			}
			for j, err := range werrs {
				if err == nil {
					continue
				}
				if _, ok := failed[owner[j]]; !ok {
					failed[owner[j]] = classify(err)
				}
			}
		}
	}
	return batchError(failed, len(batch))
}

// batchError turns the per-record failures into Write's result: nil when
// there are none, the error itself when it is fatal or when every record
// failed for a reason that is not the record's own, and a BatchError
// otherwise.
func batchError(failed map[int]error, n int) error {
	if len(failed) == 0 {
		return nil
	}
	permanent := 0
	var transient error
	for _, err := range failed {
		switch {
		case change.IsFatal(err):
			return err
		case change.IsPermanent(err):
			permanent++
		case transient == nil:
			transient = err
		}
	}
	if permanent == 0 && len(failed) == n {
		return transient
	}
	return &change.BatchError{Failed: failed}
}

// messageSize is an upper bound of a message's size in a record batch,
// the quantity kafka-go compares with BatchBytes.
func messageSize(m *kafkago.Message) int64 {
	n := 64 + len(m.Key) + len(m.Value) // record framing and varints
	for _, h := range m.Headers {
		n += 10 + len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// classify marks a kafka-go error the way the engine acts on it.
func classify(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kafka sink: %w", err)
	}
	if kafkaconn.IsAuthError(err) {
		return change.Fatal(fmt.Errorf("kafka sink: %w", err))
	}
	var mtl kafkago.MessageTooLargeError
	if errors.As(err, &mtl) {
		return change.Permanent(fmt.Errorf("kafka sink: %w", err))
	}
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		switch kerr {
		case kafkago.TopicAuthorizationFailed, kafkago.ClusterAuthorizationFailed,
			kafkago.InvalidTopic, kafkago.InvalidRequiredAcks, kafkago.UnsupportedCompressionType:
			// Configuration the brokers will refuse for every record.
			return change.Fatal(fmt.Errorf("kafka sink: %w", err))
		case kafkago.MessageSizeTooLarge, kafkago.RecordListTooLarge, kafkago.InvalidTimestamp,
			kafkago.PolicyViolation, kafkago.InvalidRecord:
			return change.Permanent(fmt.Errorf("kafka sink: %w", err))
		}
	}
	return change.Retryable(fmt.Errorf("kafka sink: %w", err), 0)
}

// Close flushes nothing — every Write has already waited for its acks —
// and releases the producer and its connections. Writes must have
// returned before Close is called.
func (s *Sink) Close(context.Context) error {
	err := s.w.Close()
	s.tr.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("kafka sink: close: %w", err)
	}
	return nil
}
