package main

import (
	"context"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/state"
)

// openState opens the state store the config names: the PostgreSQL tables
// of state.postgres when given, else the bbolt file at state.path. Either
// store is held by this process until closed, so a second dvsync on the
// same state fails here rather than interleaving positions.
func openState(ctx context.Context, cfg *config.Config) (state.Store, error) {
	if pg := cfg.State.Postgres; pg.DSN != "" {
		return state.OpenPostgres(ctx, pg.DSN.Reveal(), pg.Schema)
	}
	return state.OpenBolt(cfg.State.Path)
}
