// Package kafka is the sink that publishes change records to Kafka topics,
// one topic per destination table.
//
// Each record becomes one message whose key is the record's key as a JSON
// object ({"id":42}, composite keys in key order), so that log compaction
// keeps the latest message per row and a Murmur2 partitioner — the Java
// client's — puts every change of a row on the same partition, in order.
// The value is a Debezium-compatible change event by default, or the plain
// row as JSON; see Format. A delete may be followed by a tombstone (a
// message with the same key and no value) so that compaction eventually
// drops the row.
//
// Every message carries the header kafkaconn.HeaderOrigin naming the
// dvsync deployment that published it; dvsync's Kafka source skips
// messages with its own origin, so a deployment never consumes its own
// output as new changes.
//
// Write returns only after the partition leaders have acknowledged every
// message with acks=all, so the engine acks the source only for changes a
// broker has made durable.
package kafka
