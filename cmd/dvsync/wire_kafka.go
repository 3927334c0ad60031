package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/internal/kafkaconn"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/sink"
	kafkasink "github.com/dvsync/dvsync/sink/kafka"
	"github.com/dvsync/dvsync/source"
	kafkasource "github.com/dvsync/dvsync/source/kafka"
	"github.com/dvsync/dvsync/state"
)

func init() {
	sourceFactories["kafka"] = kafkaSource
	sinkFactories["kafka"] = kafkaSink
	storeWrappers["kafka"] = kafkaDeadLetterStore
	eventHubSource = kafkaEventHubSource
}

// kafkaSessionTimeout is how long the consumer group waits to hear from a
// member before giving its partitions to the others: the time a crashed
// dvsync holds its share of a topic. Ten seconds, the Java consumer's
// long-standing default, lets a survivor take over quickly while riding
// out the pauses of a busy machine.
const kafkaSessionTimeout = 10 * time.Second

// kafkaConnection is the kafkaconn form of a kafka connection's settings.
func kafkaConnection(conn config.Connection) kafkaconn.Config {
	c := kafkaconn.Config{Brokers: conn.Brokers, ClientID: conn.ClientID}
	if conn.TLS.On() {
		t := conn.TLS
		c.TLS = &kafkaconn.TLSConfig{
			CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
			ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify,
		}
	}
	if s := conn.SASL; s.Mechanism != "" {
		c.SASL = &kafkaconn.SASLConfig{Mechanism: s.Mechanism, Username: s.Username, Password: s.Password.Reveal()}
	}
	return c
}

// readsFrom and writesTo report whether a mapping's changes flow from its
// source to Dataverse, and from Dataverse to its source.
func readsFrom(m *mapping.Mapping) bool {
	return m.Direction == mapping.ToDataverse || m.Direction == mapping.Both
}

func writesTo(m *mapping.Mapping) bool {
	return m.Direction == mapping.FromDataverse || m.Direction == mapping.Both
}

// kafkaSource reads the topics the connection's mappings apply to
// Dataverse, each in its mapping's format. Mappings of one topic must
// agree on format and key fields: a message is decoded once, before any
// mapping sees it.
func kafkaSource(ctx context.Context, a *adapters, name string, conn config.Connection, log *slog.Logger) (source.Source, error) {
	var (
		topics    []kafkasource.Topic
		published = map[string]bool{}
		events    bool
	)
	for _, m := range a.set.Mappings() {
		if m.Source.Connection != name {
			continue
		}
		if writesTo(m) {
			published[m.Source.Topic] = true
		}
		if !readsFrom(m) {
			continue
		}
		t := kafkasource.Topic{Name: m.Source.Topic, Format: kafkasource.Format(m.Source.Format), KeyFields: m.Source.KeyFields}
		if i := slices.IndexFunc(topics, func(o kafkasource.Topic) bool { return o.Name == t.Name }); i >= 0 {
			if o := topics[i]; o.Format != t.Format || !slices.Equal(o.KeyFields, t.KeyFields) {
				return nil, fmt.Errorf("%s:%d: topic %s is read by several mappings with different format or key_fields", m.File, m.Line, t.Name)
			}
			continue
		}
		events = events || t.Format == kafkasource.FormatDataverseEvent
		topics = append(topics, t)
	}
	cfg := kafkasource.Config{
		Connection:     kafkaConnection(conn),
		GroupID:        conn.GroupID,
		Topics:         topics,
		StartOffset:    conn.StartOffset,
		SessionTimeout: kafkaSessionTimeout,
	}
	for _, t := range topics {
		if published[t.Name] {
			// dvsync publishes Dataverse's changes to a topic it also
			// applies to Dataverse: its own messages must not come back.
			cfg.SkipOrigin = kafkaconn.DefaultOrigin
			break
		}
	}
	if events {
		own, err := a.ownUserID(ctx)
		if err != nil {
			return nil, err
		}
		cfg.SkipUserIDs = []string{own}
	}
	return kafkasource.New(cfg, log)
}

// kafkaEventHubSource reads the Dataverse events of
// dataverse.changes.event_hub for the pipeline writing them to conn: the
// RemoteExecutionContext messages a Dataverse service endpoint publishes
// to an Event Hub, through the hub's Kafka endpoint. The records carry
// Dataverse table names, so the pipeline's reverse mapper takes them from
// there like the webhook receiver's.
//
// It consumes in a group of its own, "<group_id>-dataverse", so that it
// never shares partitions or offsets with a pipeline reading topics of the
// same connection.
func kafkaEventHubSource(ctx context.Context, a *adapters, pipeline, _ string, log *slog.Logger) (source.Source, error) {
	hub := a.cfg.Dataverse.Changes.EventHub
	conn, ok := a.cfg.Connections[hub.Connection]
	if !ok || conn.Type != "kafka" {
		return nil, fmt.Errorf("dataverse.changes.event_hub.connection: %q is not a connection of type kafka", hub.Connection)
	}
	own, err := a.ownUserID(ctx)
	if err != nil {
		return nil, err
	}
	src, err := kafkasource.New(kafkasource.Config{
		Connection:     kafkaConnection(conn),
		GroupID:        conn.GroupID + "-dataverse",
		Topics:         []kafkasource.Topic{{Name: hub.Topic, Format: kafkasource.FormatDataverseEvent}},
		StartOffset:    conn.StartOffset,
		SessionTimeout: kafkaSessionTimeout,
		SkipUserIDs:    []string{own},
	}, log.With("event_hub", hub.Topic))
	if err != nil {
		return nil, fmt.Errorf("dataverse.changes.event_hub: %w", err)
	}
	return src, nil
}

// kafkaSink publishes Dataverse's changes to the topics of the
// connection's from-dataverse (and both) mappings. The reverse mapper
// names each record's table after its mapping's source, which for a Kafka
// connection is the topic, so the sink's tables are the topics.
func kafkaSink(ctx context.Context, a *adapters, name string, conn config.Connection) (sink.Sink, error) {
	tables := map[string]kafkasink.Table{}
	for _, m := range a.set.Mappings() {
		if m.Source.Connection != name || !writesTo(m) {
			continue
		}
		var f kafkasink.Format
		switch m.Source.Format {
		case mapping.FormatDebezium:
			f = kafkasink.FormatDebezium
		case mapping.FormatJSON:
			f = kafkasink.FormatJSON
		default:
			return nil, fmt.Errorf("%s:%d: source.format: dvsync writes topic %s as debezium or json, not %s", m.File, m.Line, m.Source.Topic, m.Source.Format)
		}
		t := kafkasink.Table{Topic: m.Source.Topic, Format: f, Tombstones: m.Source.TombstonesOn()}
		if o, ok := tables[t.Topic]; ok && o != t {
			return nil, fmt.Errorf("%s:%d: topic %s is written by several mappings with different format or tombstones", m.File, m.Line, t.Topic)
		}
		tables[t.Topic] = t
	}
	return kafkasink.New(ctx, kafkasink.Config{
		Connection:  kafkaConnection(conn),
		Tables:      tables,
		Origin:      kafkaconn.DefaultOrigin,
		Name:        name,
		Version:     version,
		Compression: conn.Compression,
	})
}

// kafkaDeadLetterStore wraps the store of a pipeline reading a connection
// with a dead_letter_topic, so that its dead letters are also published
// there.
func kafkaDeadLetterStore(ctx context.Context, a *adapters, name string, conn config.Connection, st state.Store) (state.Store, error) {
	if conn.DeadLetterTopic == "" {
		return st, nil
	}
	w, err := kafkasink.NewDeadLetterWriter(ctx, kafkasink.DeadLetterConfig{
		Connection:  kafkaConnection(conn),
		Topic:       conn.DeadLetterTopic,
		Origin:      kafkaconn.DefaultOrigin,
		Compression: conn.Compression,
	})
	if err != nil {
		return nil, fmt.Errorf("dead_letter_topic: %w", err)
	}
	return &deadLetterTopicStore{Store: st, w: w, topic: conn.DeadLetterTopic, log: a.log.With("pipeline", name)}, nil
}

// deadLetterTopicStore is a state store whose PutDeadLetters also
// publishes the letters to a Kafka topic, for operators who watch and
// replay failures with Kafka tools. The store stays the record of truth:
// letters are stored first, and a letter the topic did not take is logged
// and counted, never lost, as it is still in the store.
type deadLetterTopicStore struct {
	state.Store
	w      *kafkasink.DeadLetterWriter
	topic  string
	log    *slog.Logger
	failed atomic.Uint64
}

// deadLetterPublishTimeout bounds publishing one batch of dead letters,
// so that an unreachable cluster delays the pipeline, which waits for
// PutDeadLetters, only briefly.
const deadLetterPublishTimeout = 10 * time.Second

// PutDeadLetters stores the letters, then publishes them. It fails only
// when the store fails; a failure to publish is logged.
func (s *deadLetterTopicStore) PutDeadLetters(ctx context.Context, letters []state.DeadLetter) error {
	if err := s.Store.PutDeadLetters(ctx, letters); err != nil {
		return err
	}
	out := make([]kafkasink.DeadLetter, len(letters))
	for i, l := range letters {
		out[i] = kafkasink.DeadLetter{
			ID: l.ID, Pipeline: l.Pipeline, Stage: l.Stage, Reason: l.Reason, Time: l.Time,
			Record: l.Record, Sources: l.Sources,
		}
	}
	pctx, cancel := context.WithTimeout(ctx, deadLetterPublishTimeout)
	defer cancel()
	if err := s.w.Write(pctx, out...); err != nil {
		n := s.failed.Add(uint64(len(letters)))
		s.log.Warn("dead letters stored but not published to kafka", "topic", s.topic, "letters", len(letters), "unpublished_total", n, "err", err)
	}
	return nil
}

// Close closes the dead-letter producer. The wrapped store is the
// daemon's, shared with other pipelines, and is closed by its owner.
func (s *deadLetterTopicStore) Close() error { return s.w.Close() }

// publishSink writes a publish entry's tables to their topics.
func publishSink(ctx context.Context, a *adapters, pub config.Publish) (sink.Sink, error) {
	conn := a.cfg.Connections[pub.To]
	format := kafkasink.Format(pub.Format)
	if format == "" {
		format = kafkasink.FormatDebezium
	}
	tables := make(map[string]kafkasink.Table, len(pub.Tables))
	for _, t := range pub.Tables {
		tables[t] = kafkasink.Table{Topic: pub.Topic(t), Format: format, Tombstones: pub.TombstonesOn()}
	}
	return kafkasink.New(ctx, kafkasink.Config{
		Connection:  kafkaConnection(conn),
		Tables:      tables,
		Origin:      kafkaconn.DefaultOrigin,
		Name:        pub.From,
		Version:     version,
		Compression: conn.Compression,
	})
}
