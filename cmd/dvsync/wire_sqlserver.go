package main

import (
	"context"
	"log/slog"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/sink"
	mssqlsink "github.com/dvsync/dvsync/sink/sqlserver"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/sqlserver"
)

func init() {
	sourceFactories["sqlserver"] = sqlserverSource
	sinkFactories["sqlserver"] = sqlserverSink
}

// sqlserverConfig is the source configuration of a SQL Server connection
// reading the tables its mappings name. Source and backfill share it, so
// a backfill's final position is one the source can stream from.
func sqlserverConfig(set *mapping.Set, name string, conn config.Connection) sqlserver.Config {
	return sqlserver.Config{
		DSN:             conn.DSN.Reveal(),
		Mode:            sqlserver.Mode(conn.Mode),
		Tables:          set.Tables(name),
		Keys:            set.Keys(name),
		Context:         conn.Context,
		PollInterval:    conn.PollInterval,
		MaxPollInterval: conn.MaxPollInterval,
	}
}

func sqlserverSource(_ context.Context, a *adapters, name string, conn config.Connection, log *slog.Logger) (source.Source, error) {
	cfg := sqlserverConfig(a.set, name, conn)
	cfg.Tables = a.sourceTables(name) // a published connection's tables
	return sqlserver.New(cfg, log)
}

// sqlserverSink writes under the connection's change tracking context,
// the one its source skips, so that a two-way sync does not read its own
// writes back.
func sqlserverSink(_ context.Context, _ *adapters, _ string, conn config.Connection) (sink.Sink, error) {
	return mssqlsink.New(mssqlsink.Config{DSN: conn.DSN.Reveal(), Context: conn.Context})
}
