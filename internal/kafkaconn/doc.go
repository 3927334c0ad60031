// Package kafkaconn turns dvsync's Kafka connection settings — bootstrap
// brokers, client id, TLS and SASL — into the kafka-go values that carry
// them: a *kafka.Dialer for Readers and Conns, a *kafka.Transport for
// Writers. The Kafka source and sink share it, so both connect to
// Confluent Cloud, Amazon MSK, Redpanda and Azure Event Hubs' Kafka
// endpoint the same way.
//
// Passwords never appear in an error this package returns, nor in the
// String form of a Config.
package kafkaconn
