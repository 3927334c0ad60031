// Package testenv starts real, throwaway dependencies for dvsync's tests:
// a PostgreSQL cluster with wal_level=logical, an in-process Kafka-protocol
// broker, and the Dataverse emulator. Each starts on a free port, is ready
// when its Start function returns, and is torn down by t.Cleanup, so tests
// need no Docker, no fixed ports and no sleeps.
package testenv
