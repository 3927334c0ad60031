// Package kafka is dvsync's Kafka source: it reads change records from
// Kafka topics as a member of a consumer group, with
// github.com/segmentio/kafka-go, which supports brokers from Kafka 0.10.1
// on (and Redpanda, Amazon MSK, Confluent Cloud, Azure Event Hubs' Kafka
// endpoint).
//
// Each topic has a format: plain JSON rows, Debezium change events,
// CloudEvents with JSON data, or the RemoteExecutionContext messages
// Dataverse sends to an Event Hubs service endpoint. A message becomes one
// record whose Position names its topic, partition and offset.
//
// Delivery is at least once. The group's offsets are committed only for
// records the engine has acked, which it does only after the sink made
// them durable, and per partition only up to the first record not acked:
// a crash, a kill or a rebalance replays records and never skips one.
// Records of one partition keep their offset order, so the changes of a
// key stay in order when the producer partitions by key, as Debezium and
// dvsync's Kafka sink do.
//
// A message that cannot be decoded becomes a record carrying
// MetaDecodeError, for the dead-letter store, and the partition goes on.
// Messages that dvsync published itself (OriginHeader equal to
// Config.SkipOrigin) and Dataverse events made by dvsync's own user
// (Config.SkipUserIDs) are skipped, so a two-way sync does not echo.
//
// Consumer-group membership uses kafka-go's ConsumerGroup directly rather
// than a group Reader, because the source must know when a rebalance takes
// partitions away: it then finishes and commits what it has handed on
// before it rejoins (see Source).
package kafka
