package kafka

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dvsync/dvsync/internal/kafkaconn"
)

// Format is how the messages of one topic encode their rows.
type Format string

// The formats a topic may be read in.
const (
	// FormatJSON reads each message's value as one JSON object: the row's
	// current state, written downstream as an upsert. A message with no
	// value (a tombstone) deletes the row its key names.
	FormatJSON Format = "json"
	// FormatDebezium reads Debezium change events: the before/after/op/
	// source envelope, bare or inside Kafka Connect's schema/payload
	// wrapper. Tombstones delete by the message key.
	FormatDebezium Format = "debezium"
	// FormatCloudEvents reads CloudEvents whose data is a JSON row, in
	// structured mode (the whole event is the value) or binary mode
	// (ce_ headers, the value is the data).
	FormatCloudEvents Format = "cloudevents"
	// FormatDataverseEvent reads the RemoteExecutionContext JSON that
	// Dataverse posts to an Azure Event Hubs service endpoint, read through
	// the Event Hubs Kafka endpoint.
	FormatDataverseEvent Format = "dataverse-event"
)

// Topic says how to read one topic.
type Topic struct {
	// Name is the topic. Records read from it carry it as their Table.
	Name string `yaml:"name"`
	// Format is the topic's message format; FormatJSON when empty.
	Format Format `yaml:"format"`
	// KeyFields are the fields of the row that identify it, in key order.
	// When empty, the message key identifies the row: a JSON object gives
	// its fields, a JSON scalar or other text gives one column named
	// "key". Debezium keys are objects, so Debezium topics rarely need it.
	KeyFields []string `yaml:"key_fields"`
}

// Config configures a Source. The zero value of every optional field
// selects its default.
type Config struct {
	// Connection is how to reach the cluster: brokers, TLS and SASL.
	Connection kafkaconn.Config `yaml:"connection"`
	// GroupID is the consumer group. Sources sharing it share the topics'
	// partitions, and the group's committed offsets are where a source
	// resumes. Required.
	GroupID string `yaml:"group_id"`
	// Topics are the topics to consume, each with its format. Required.
	Topics []Topic `yaml:"topics"`
	// StartOffset is where a partition the group has never committed
	// starts: "earliest" (the default) or "latest".
	StartOffset string `yaml:"start_offset"`
	// SessionTimeout is how long the group waits to hear from a member
	// before it gives the member's partitions to the others: the time a
	// killed process holds its partitions. Default 30s; brokers refuse
	// values outside their group.min/max.session.timeout.ms (6s to 30m by
	// default).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long the group waits for its members to
	// rejoin in a rebalance, and so the longest a source spends finishing
	// the records of partitions it gives up (see DrainTimeout). Default
	// 30s.
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// DrainTimeout bounds how long, in a rebalance, a source waits for the
	// records it has already returned from the partitions it holds to be
	// acked, so that it can commit them before another member takes the
	// partitions over. Records still unacked after it are read again by
	// the next owner. Default two thirds of RebalanceTimeout; it must be
	// shorter.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// MaxBatch is the most records one Read returns. Default 500.
	MaxBatch int `yaml:"max_batch"`
	// SkipOrigin is dvsync's own origin name as the Kafka sink writes it
	// in the OriginHeader of the messages it publishes: messages carrying
	// it are skipped, so that a topic dvsync both writes and reads does
	// not echo dvsync's writes back. Empty reads every message, which is
	// what the consumers of a scale-out topology (one dvsync publishes,
	// others apply) need.
	SkipOrigin string `yaml:"skip_origin"`
	// SkipUserIDs are the Dataverse user ids (GUIDs) whose changes are
	// skipped in dataverse-event topics: dvsync's own application user,
	// so that its writes to Dataverse do not come back. An event is
	// skipped when its UserId or InitiatingUserId is one of them.
	SkipUserIDs []string `yaml:"skip_user_ids"`
}

// Defaults of Config's optional fields.
const (
	DefaultStartOffset      = "earliest"
	DefaultSessionTimeout   = 30 * time.Second
	DefaultRebalanceTimeout = 30 * time.Second
	DefaultMaxBatch         = 500
)

// withDefaults returns c with defaults in its zero fields.
func (c Config) withDefaults() Config {
	if c.StartOffset == "" {
		c.StartOffset = DefaultStartOffset
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = c.RebalanceTimeout * 2 / 3
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	for i := range c.Topics {
		if c.Topics[i].Format == "" {
			c.Topics[i].Format = FormatJSON
		}
	}
	return c
}

// Validate reports every problem of c at once, each naming its field.
// Defaults are applied first, so empty optional fields are fine. It does
// not touch the network; Open checks that the brokers and topics exist.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := c.Connection.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("connection: %w", err))
	}
	if c.GroupID == "" {
		errs = append(errs, errors.New("group_id: required"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("topics: at least one topic is required"))
	}
	seen := map[string]bool{}
	for i, t := range c.Topics {
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("topics[%d].name: required", i))
		case seen[t.Name]:
			errs = append(errs, fmt.Errorf("topics[%d].name: %q is listed twice", i, t.Name))
		}
		seen[t.Name] = true
		switch t.Format {
		case FormatJSON, FormatDebezium, FormatCloudEvents, FormatDataverseEvent:
		default:
			errs = append(errs, fmt.Errorf("topics[%d].format: %q is not one of json, debezium, cloudevents, dataverse-event", i, t.Format))
		}
		for j, f := range t.KeyFields {
			switch {
			case f == "":
				errs = append(errs, fmt.Errorf("topics[%d].key_fields[%d]: empty field name", i, j))
			case slices.Index(t.KeyFields, f) < j:
				errs = append(errs, fmt.Errorf("topics[%d].key_fields[%d]: %s is listed twice", i, j, f))
			}
		}
	}
	if c.StartOffset != "earliest" && c.StartOffset != "latest" {
		errs = append(errs, fmt.Errorf("start_offset: %q is neither earliest nor latest", c.StartOffset))
	}
	if c.SessionTimeout < 0 {
		errs = append(errs, fmt.Errorf("session_timeout: %s is negative", c.SessionTimeout))
	}
	if c.RebalanceTimeout < 0 {
		errs = append(errs, fmt.Errorf("rebalance_timeout: %s is negative", c.RebalanceTimeout))
	}
	if c.DrainTimeout < 0 || c.DrainTimeout >= c.RebalanceTimeout {
		errs = append(errs, fmt.Errorf("drain_timeout: %s must be positive and shorter than rebalance_timeout (%s)", c.DrainTimeout, c.RebalanceTimeout))
	}
	if c.MaxBatch < 0 {
		errs = append(errs, fmt.Errorf("max_batch: %d is negative", c.MaxBatch))
	}
	for i, id := range c.SkipUserIDs {
		if id == "" {
			errs = append(errs, fmt.Errorf("skip_user_ids[%d]: empty", i))
		}
	}
	return errors.Join(errs...)
}

// topic returns the configuration of the named topic.
func (c *Config) topic(name string) *Topic {
	for i := range c.Topics {
		if c.Topics[i].Name == name {
			return &c.Topics[i]
		}
	}
	return nil
}
