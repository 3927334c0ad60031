package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The tables of bidirectional sync live beside the others in the store's
// schema and are created by the first statement that finds them missing:
//
//	dvsync_sync_entries   (mapping bytea, key bytea, entry bytea, primary key (mapping, key))
//	dvsync_sync_conflicts (id bigint identity primary key, mapping bytea, conflict bytea)
func (s *Postgres) syncTables() (entries, conflicts string) {
	return pgx.Identifier{s.schema, "dvsync_sync_entries"}.Sanitize(),
		pgx.Identifier{s.schema, "dvsync_sync_conflicts"}.Sanitize()
}

func (s *Postgres) createSyncTables(ctx context.Context) error {
	entries, conflicts := s.syncTables()
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+entries+` (
	mapping bytea NOT NULL,
	key     bytea NOT NULL,
	entry   bytea NOT NULL,
	PRIMARY KEY (mapping, key)
);
CREATE TABLE IF NOT EXISTS `+conflicts+` (
	id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	mapping  bytea NOT NULL,
	conflict bytea NOT NULL
);`)
	return err
}

// withSyncTables runs f, and if it fails because a sync table does not
// exist yet, creates the tables and runs f once more.
func (s *Postgres) withSyncTables(ctx context.Context, f func() error) error {
	err := f()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42P01" { // undefined_table
		return err
	}
	if err := s.createSyncTables(ctx); err != nil {
		return fmt.Errorf("create sync tables: %w", err)
	}
	return f()
}

// SyncEntries returns mapping's entries under keys in one query.
func (s *Postgres) SyncEntries(ctx context.Context, mapping string, keys [][]byte) ([]SyncEntry, []bool, error) {
	entries := make([]SyncEntry, len(keys))
	found := make([]bool, len(keys))
	if len(keys) == 0 {
		return entries, found, nil
	}
	table, _ := s.syncTables()
	index := make(map[string][]int, len(keys))
	for i, k := range keys {
		index[string(k)] = append(index[string(k)], i)
	}
	err := s.withSyncTables(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT key, entry FROM `+table+` WHERE mapping = $1 AND key = ANY($2)`,
			[]byte(mapping), keys)
		if err != nil {
			return err
		}
		var key, entry []byte
		_, err = pgx.ForEachRow(rows, []any{&key, &entry}, func() error {
			e, err := decodeSyncEntry(entry)
			if err != nil {
				return fmt.Errorf("entry %x: %w", key, err)
			}
			for _, i := range index[string(key)] {
				entries[i], found[i] = e, true
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("state: read sync entries of %s: %w", mapping, err)
	}
	return entries, found, nil
}

// PutSyncEntries stores entries in one transaction.
func (s *Postgres) PutSyncEntries(ctx context.Context, mapping string, keys [][]byte, entries []SyncEntry) error {
	if len(keys) != len(entries) {
		return fmt.Errorf("state: put sync entries: %d keys for %d entries", len(keys), len(entries))
	}
	if len(keys) == 0 {
		return ctx.Err()
	}
	table, _ := s.syncTables()
	encoded := make([][]byte, len(entries))
	for i := range entries {
		encoded[i] = appendSyncEntry(nil, &entries[i])
	}
	err := s.withSyncTables(ctx, func() error {
		// One statement: unnest pairs keys with entries; a key given twice
		// keeps its last entry, as a sequence of puts would.
		_, err := s.pool.Exec(ctx, `INSERT INTO `+table+` (mapping, key, entry)
			SELECT DISTINCT ON (k) $1, k, e FROM unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS u(k, e, n)
			ORDER BY k, n DESC
			ON CONFLICT (mapping, key) DO UPDATE SET entry = excluded.entry`, []byte(mapping), keys, encoded)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: put %d sync entries of %s: %w", len(keys), mapping, err)
	}
	return nil
}

// ParkConflict stores c; its ID is the table's identity value.
func (s *Postgres) ParkConflict(ctx context.Context, c ParkedConflict) (uint64, error) {
	if c.Detected.IsZero() {
		c.Detected = time.Now()
	}
	_, table := s.syncTables()
	var id int64
	err := s.withSyncTables(ctx, func() error {
		return s.pool.QueryRow(ctx, `INSERT INTO `+table+` (mapping, conflict) VALUES ($1, $2) RETURNING id`,
			[]byte(c.Mapping), appendParked(nil, &c)).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("state: park conflict of %s: %w", c.Mapping, err)
	}
	return uint64(id), nil
}

// ParkedConflicts returns mapping's parked conflicts, oldest first.
func (s *Postgres) ParkedConflicts(ctx context.Context, mapping string, limit int) ([]ParkedConflict, error) {
	_, table := s.syncTables()
	query := `SELECT id, conflict FROM ` + table + ` WHERE mapping = $1 ORDER BY id`
	args := []any{[]byte(mapping)}
	if limit > 0 {
		query += ` LIMIT $2`
		args = append(args, limit)
	}
	var out []ParkedConflict
	err := s.withSyncTables(ctx, func() error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		var id int64
		var b []byte
		_, err = pgx.ForEachRow(rows, []any{&id, &b}, func() error {
			c, err := decodeParked(uint64(id), b)
			if err != nil {
				return fmt.Errorf("conflict %d: %w", id, err)
			}
			out = append(out, c)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: read parked conflicts of %s: %w", mapping, err)
	}
	return out, nil
}

// ParkedConflict returns mapping's parked conflict id.
func (s *Postgres) ParkedConflict(ctx context.Context, mapping string, id uint64) (ParkedConflict, error) {
	_, table := s.syncTables()
	var b []byte
	err := s.withSyncTables(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT conflict FROM `+table+` WHERE mapping = $1 AND id = $2`,
			[]byte(mapping), int64(id)).Scan(&b)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	var c ParkedConflict
	if err == nil {
		c, err = decodeParked(id, b)
	}
	if err != nil {
		return ParkedConflict{}, fmt.Errorf("state: parked conflict %d of %s: %w", id, mapping, err)
	}
	return c, nil
}

// DeleteParkedConflict removes mapping's parked conflict id.
func (s *Postgres) DeleteParkedConflict(ctx context.Context, mapping string, id uint64) error {
	_, table := s.syncTables()
	var n int64
	err := s.withSyncTables(ctx, func() error {
		tag, err := s.pool.Exec(ctx, `DELETE FROM `+table+` WHERE mapping = $1 AND id = $2`, []byte(mapping), int64(id))
		n = tag.RowsAffected()
		return err
	})
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("state: delete parked conflict %d of %s: %w", id, mapping, err)
	}
	return nil
}
