package kafka

import (
	"errors"
	"fmt"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/internal/kafkaconn"
)

// Format is how a record is encoded in a message's value.
type Format string

const (
	// FormatDebezium is a Debezium change event without the schema
	// wrapper: {"before":…,"after":…,"source":{…},"op":"c","ts_ms":…}.
	// It is what Debezium's JSON converter produces with
	// schemas.enable=false, so consumers of Debezium topics read it
	// unchanged. A delete has "after":null; a truncate is op "t".
	FormatDebezium Format = "debezium"
	// FormatJSON is the row itself as a JSON object: the record's After
	// for inserts, updates and reads. A delete is a tombstone, the only
	// way plain rows can say that a key is gone; a truncate cannot be
	// expressed and is rejected as a permanent error.
	FormatJSON Format = "json"
)

// Defaults for the zero fields of Config.
const (
	DefaultCompression  = "snappy"
	DefaultBatchSize    = 1000
	DefaultBatchBytes   = 1 << 20
	DefaultBatchTimeout = 5 * time.Millisecond
	DefaultWriteTimeout = 30 * time.Second
)

// Config configures a Sink.
type Config struct {
	// Connection is how to reach the cluster.
	Connection kafkaconn.Config `yaml:"connection"`
	// Tables maps a record's Table (the destination table named by the
	// mapping) to where its records go. A record whose table is not
	// listed fails with a permanent error.
	Tables map[string]Table `yaml:"tables"`
	// Origin is written in every message's kafkaconn.HeaderOrigin
	// header; kafkaconn.DefaultOrigin when empty. A dvsync that consumes
	// the same topics must be configured with the same origin to skip
	// its own output.
	Origin string `yaml:"origin,omitempty"`
	// Name is the logical name of this pipeline, written as source.name
	// in Debezium events (Debezium's topic prefix); "dvsync" when empty.
	Name string `yaml:"name,omitempty"`
	// Version is written as source.version in Debezium events: the
	// dvsync release that published the event.
	Version string `yaml:"version,omitempty"`
	// Compression is the codec of produced batches: none, gzip, snappy,
	// lz4 or zstd. DefaultCompression when empty.
	Compression string `yaml:"compression,omitempty"`
	// BatchSize is the most messages sent to one partition in one
	// request; DefaultBatchSize when zero.
	BatchSize int `yaml:"batch_size,omitempty"`
	// BatchBytes is the largest request to one partition, and therefore
	// the largest message; DefaultBatchBytes (the brokers' default
	// message.max.bytes) when zero. A larger message fails permanently.
	BatchBytes int64 `yaml:"batch_bytes,omitempty"`
	// BatchTimeout is how long a partial batch waits for more messages
	// from concurrent Writes before it is sent (the producer's linger);
	// DefaultBatchTimeout when zero. It adds to every Write's latency.
	BatchTimeout time.Duration `yaml:"batch_timeout,omitempty"`
	// WriteTimeout bounds one produce request; DefaultWriteTimeout when
	// zero.
	WriteTimeout time.Duration `yaml:"write_timeout,omitempty"`
	// CreateTopics lets the brokers create missing topics with their
	// default partition count on first use. Otherwise New fails when a
	// topic of Tables does not exist.
	CreateTopics bool `yaml:"create_topics,omitempty"`
}

// Table is where one destination table's records go.
type Table struct {
	// Topic receives the table's records. Several tables may share one.
	Topic string `yaml:"topic"`
	// Format encodes the message values; FormatDebezium when empty.
	Format Format `yaml:"format,omitempty"`
	// Tombstones follows every Debezium delete event with a tombstone, as
	// Debezium does by default (tombstones.on.delete), so that log
	// compaction can drop the row. FormatJSON always writes deletes as
	// tombstones.
	Tombstones bool `yaml:"tombstones,omitempty"`
}

func (c Config) withDefaults() Config {
	if c.Origin == "" {
		c.Origin = kafkaconn.DefaultOrigin
	}
	if c.Name == "" {
		c.Name = "dvsync"
	}
	if c.Compression == "" {
		c.Compression = DefaultCompression
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchBytes <= 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.BatchTimeout <= 0 {
		c.BatchTimeout = DefaultBatchTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	return c
}

// Validate reports every problem in c without touching the network, each
// prefixed by its field's YAML name. It never quotes a password.
func (c Config) Validate() error {
	var errs []error
	if err := c.Connection.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("connection: %w", err))
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("tables: at least one table is required"))
	}
	for name, t := range c.Tables {
		if t.Topic == "" {
			errs = append(errs, fmt.Errorf("tables.%s.topic: required", name))
		} else if err := validTopic(t.Topic); err != nil {
			errs = append(errs, fmt.Errorf("tables.%s.topic: %w", name, err))
		}
		switch t.Format {
		case "", FormatDebezium, FormatJSON:
		default:
			errs = append(errs, fmt.Errorf("tables.%s.format: %q is not debezium or json", name, t.Format))
		}
	}
	if _, err := compression(c.Compression); err != nil {
		errs = append(errs, fmt.Errorf("compression: %w", err))
	}
	return errors.Join(errs...)
}

// validTopic applies Kafka's rule for topic names, so that a typo fails
// at startup rather than as an InvalidTopicException on the first write.
func validTopic(name string) error {
	if name == "." || name == ".." {
		return fmt.Errorf("%q is not a valid topic name", name)
	}
	if len(name) > 249 {
		return errors.New("longer than 249 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%q holds %q; topic names use only ASCII letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
}

func compression(name string) (kafkago.Compression, error) {
	switch strings.ToLower(name) {
	case "", "none":
		return 0, nil
	case "gzip":
		return kafkago.Gzip, nil
	case "snappy":
		return kafkago.Snappy, nil
	case "lz4":
		return kafkago.Lz4, nil
	case "zstd":
		return kafkago.Zstd, nil
	}
	return 0, fmt.Errorf("%q is not none, gzip, snappy, lz4 or zstd", name)
}
