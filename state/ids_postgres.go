package state

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/change"
)

// idTables records the Postgres stores whose id table exists.
var idTables sync.Map // *Postgres -> struct{}

func (s *Postgres) idTable(ctx context.Context) (string, error) {
	t := pgx.Identifier{s.schema, "dvsync_dataverse_ids"}.Sanitize()
	if _, ok := idTables.Load(s); ok {
		return t, nil
	}
	if _, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+t+` (
		space text NOT NULL, id text NOT NULL, key bytea NOT NULL, PRIMARY KEY (space, id))`); err != nil {
		return "", fmt.Errorf("create the row id table in schema %q: %w", s.schema, err)
	}
	idTables.Store(s, struct{}{})
	return t, nil
}

// PutIDKeys stores or forgets the entries' ids in one transaction.
func (s *Postgres) PutIDKeys(ctx context.Context, space string, entries []IDKey) error {
	if len(entries) == 0 {
		return ctx.Err()
	}
	t, err := s.idTable(ctx)
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, e := range entries {
			if e.Key == nil {
				b.Queue(`DELETE FROM `+t+` WHERE space = $1 AND id = $2`, space, e.ID)
			} else {
				b.Queue(`INSERT INTO `+t+` (space, id, key) VALUES ($1, $2, $3)
					ON CONFLICT (space, id) DO UPDATE SET key = excluded.key`, space, e.ID, encodeIDKey(e.Key))
			}
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("state: store row ids of %s: %w", space, err)
	}
	return nil
}

// IDKey returns the key attributes stored under id in space.
func (s *Postgres) IDKey(ctx context.Context, space, id string) (change.Row, bool, error) {
	t, err := s.idTable(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("state: %w", err)
	}
	var b []byte
	err = s.pool.QueryRow(ctx, `SELECT key FROM `+t+` WHERE space = $1 AND id = $2`, space, id).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: read row id %s of %s: %w", id, space, err)
	}
	key, err := decodeIDKey(b)
	if err != nil {
		return nil, false, fmt.Errorf("state: read row id %s of %s: %w", id, space, err)
	}
	return key, true, nil
}
