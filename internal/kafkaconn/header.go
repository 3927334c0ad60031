package kafkaconn

// HeaderOrigin is the record header in which dvsync's Kafka sink names
// the dvsync deployment that published a message. dvsync's Kafka source
// skips messages whose HeaderOrigin equals its own configured origin, so
// a deployment that both publishes to and consumes from a topic never
// reads its own output back as new changes.
const HeaderOrigin = "dvsync-origin"

// DefaultOrigin is the origin the Kafka sink writes in HeaderOrigin, and
// the Kafka source skips, when neither is configured with another.
const DefaultOrigin = "dvsync"
