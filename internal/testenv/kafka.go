package testenv

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Topics created by StartKafka have this many partitions, so that records
// of different keys land on different partitions and a consumer sees them
// interleaved across partitions, as it would in production.
const kafkaPartitions = 3

// Several brokers rather than one, so that partition leaders and the group
// coordinator sit on different connections and clients have to route
// requests the way they do against a real cluster.
const kafkaBrokers = 3

// Kafka is a throwaway Kafka cluster for one test, started by StartKafka.
//
// It is kfake (github.com/twmb/franz-go/pkg/kfake): an in-process server
// that speaks the Kafka wire protocol over real TCP, so clients talk to it
// exactly as they talk to Apache Kafka. It implements produce and fetch of
// v2 record batches (compressed or not), ListOffsets, Metadata, topic
// creation and deletion, classic consumer groups (join, sync, heartbeat,
// leave, OffsetCommit, OffsetFetch) and KIP-848 groups, idempotent and
// transactional producers with read_committed fetches, configs, SASL, ACLs
// and TLS. It does not replicate (acks=all means the same as acks=1) or
// throttle, and here it keeps its log in memory only: everything is gone
// when the cluster closes.
//
// Things about github.com/segmentio/kafka-go v0.4.51 worth knowing when
// testing with it:
//
//   - A Writer's zero RequiredAcks is RequireNone: WriteMessages returns
//     before any broker has stored the messages. Set kafka.RequireAll
//     wherever a write must be durable before the code goes on.
//   - A Writer flushes a partial batch only after BatchTimeout, 1s by
//     default, so each synchronous WriteMessages call of fewer than
//     BatchSize messages takes up to a second. Tests set a few
//     milliseconds.
//   - kafka.Hash is not the Java client's partitioner; producers that must
//     place keys on the same partitions as Java or Debezium producers use
//     kafka.Murmur2Balancer.
//   - A Reader with a GroupID commits synchronously in CommitMessages when
//     CommitInterval is zero, storing each partition's highest given offset
//     plus one. Close leaves the group, so the next member is assigned the
//     partitions at once instead of after the session timeout, and resumes
//     after the committed offsets (this package's tests check it);
//     StartOffset applies only to partitions the group has never committed.
type Kafka struct {
	// Addrs are the brokers' host:port addresses, all on 127.0.0.1, to be
	// used as bootstrap servers: kafka.TCP(k.Addrs...) for a Writer,
	// ReaderConfig.Brokers for a Reader.
	Addrs []string

	// Cluster is the broker itself, for tests that need more than a
	// running cluster: injecting responses or errors with Control, moving
	// partition leaders, or stopping the brokers early with Close (which
	// is idempotent, so the cleanup's own Close is harmless).
	Cluster *kfake.Cluster
}

// StartKafka starts a Kafka cluster listening on free ports of 127.0.0.1,
// creates the given topics with three partitions each, and closes the
// cluster when the test and its subtests finish. It fails the test if the
// cluster cannot start.
//
// Topics are also created on demand, with three partitions, when a client
// asks for it (kafka-go: Writer.AllowAutoTopicCreation); without that, a
// topic that was not listed here does not exist.
//
// Each call starts an independent cluster, which takes a few milliseconds,
// so tests never share brokers, groups or offsets.
func StartKafka(t testing.TB, topics ...string) *Kafka {
	t.Helper()
	return startKafka(t, nil, topics)
}

// startKafka starts a cluster as StartKafka describes, with extra options
// for the listeners or authentication.
func startKafka(t testing.TB, extra []kfake.Opt, topics []string) *Kafka {
	t.Helper()
	opts := []kfake.Opt{
		kfake.NumBrokers(kafkaBrokers),
		kfake.DefaultNumPartitions(kafkaPartitions),
		kfake.AllowAutoTopicCreation(),
	}
	if len(topics) > 0 {
		opts = append(opts, kfake.SeedTopics(kafkaPartitions, topics...))
	}
	opts = append(opts, extra...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatalf("testenv: start kafka: %v", err)
	}
	t.Cleanup(c.Close)
	return &Kafka{Addrs: c.ListenAddrs(), Cluster: c}
}
