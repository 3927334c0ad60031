package main

import (
	"context"
	"log/slog"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/sink"
	pgsink "github.com/dvsync/dvsync/sink/postgres"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/postgres"
)

func init() {
	sourceFactories["postgres"] = postgresSource
	sinkFactories["postgres"] = postgresSink
}

// postgresOrigin is the replication origin dvsync writes Dataverse changes
// under on a PostgreSQL connection, and so the one its source skips.
func postgresOrigin(conn config.Connection) string {
	if conn.SkipOrigin != "" {
		return conn.SkipOrigin
	}
	return pgsink.DefaultOrigin
}

func postgresSource(_ context.Context, a *adapters, name string, conn config.Connection, log *slog.Logger) (source.Source, error) {
	skip := conn.SkipOrigin
	if skip == "" && a.writesBack(name) {
		// dvsync writes Dataverse's changes to this database itself: they
		// must not come back as new changes.
		skip = postgresOrigin(conn)
	}
	return postgres.New(postgres.Config{
		DSN:               conn.DSN.Reveal(),
		Slot:              conn.Slot,
		Publication:       conn.Publication,
		Tables:            a.sourceTables(name),
		Keys:              a.set.Keys(name),
		StatusInterval:    conn.StatusInterval,
		HeartbeatInterval: conn.HeartbeatInterval,
		DecodingWorkMem:   conn.DecodingWorkMem,
		SkipOrigin:        skip,
	}, log)
}

func postgresSink(_ context.Context, _ *adapters, _ string, conn config.Connection) (sink.Sink, error) {
	return pgsink.New(pgsink.Config{DSN: conn.DSN.Reveal(), Origin: postgresOrigin(conn)})
}
