package state

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dvsync/dvsync/change"
)

// Postgres is a Store kept in two tables of a PostgreSQL database, for
// deployments whose local disk does not outlive the process (containers
// without a volume). Every write is a transaction that returns after
// COMMIT, so it is as durable as the server's synchronous_commit makes it.
//
// The tables live in one schema, created with them if missing:
//
//	dvsync_positions    (pipeline bytea primary key, position bytea)
//	dvsync_dead_letters (id bigint identity primary key, pipeline bytea, letter bytea)
//
// Names are bytea because the Store contract allows any bytes in a pipeline
// name, and text cannot hold a NUL. A letter is encoded as in the bbolt
// store, with the record codec of this package.
//
// Postgres is safe for concurrent use: it draws connections from a pool.
// Like the bbolt file lock, a session advisory lock gives one process the
// schema: OpenPostgres takes it on a dedicated connection and Close
// releases it, and a second OpenPostgres on the same database and schema
// fails while the first is open. If that connection breaks (the server
// restarts), the lock goes with it; the writes stay transactional, but a
// second process could then open the schema alongside this one.
type Postgres struct {
	pool   *pgxpool.Pool
	lock   *pgx.Conn
	schema string

	// SQL with the schema-qualified table names filled in.
	selectPosition, upsertPosition             string
	insertLetter, selectLetters, selectLimited string
	selectLetter, deleteLetter                 string
}

var _ Store = (*Postgres)(nil)

// OpenPostgres connects to the database at dsn (a URL or key=value
// string, as pgx reads it) and opens the store in schema, "public" when
// empty, creating the schema and tables if they are missing. It fails if
// another open Postgres store, in this process or another, holds the same
// database and schema. Errors never include the DSN's password.
func OpenPostgres(ctx context.Context, dsn, schema string) (*Postgres, error) {
	if schema == "" {
		schema = "public"
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx masks the password in the DSN it quotes.
		return nil, fmt.Errorf("state: postgres DSN: %w", err)
	}
	lock, err := pgx.ConnectConfig(ctx, cfg.ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("state: connect to postgres: %w", err)
	}
	var locked bool
	err = lock.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, lockName(schema)).Scan(&locked)
	if err == nil && !locked {
		err = fmt.Errorf("schema %q of this database is in use by another dvsync process; "+
			"each process needs its own state schema", schema)
	}
	if err != nil {
		lock.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("state: lock postgres state: %w", err)
	}
	s := newPostgres(schema)
	s.lock = lock
	if _, err := lock.Exec(ctx, s.createSQL()); err != nil {
		lock.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("state: create tables in schema %q: %w", schema, err)
	}
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		lock.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("state: connect to postgres: %w", err)
	}
	return s, nil
}

// lockName is the advisory lock's key, hashed to a bigint by the server.
// It names the schema, not the pipelines: the lock guards what the bbolt
// file lock guards, the whole store.
func lockName(schema string) string { return "dvsync state " + schema }

func newPostgres(schema string) *Postgres {
	pos := pgx.Identifier{schema, "dvsync_positions"}.Sanitize()
	dl := pgx.Identifier{schema, "dvsync_dead_letters"}.Sanitize()
	return &Postgres{
		schema:         schema,
		selectPosition: `SELECT position FROM ` + pos + ` WHERE pipeline = $1`,
		upsertPosition: `INSERT INTO ` + pos + ` (pipeline, position) VALUES ($1, $2)
			ON CONFLICT (pipeline) DO UPDATE SET position = excluded.position`,
		insertLetter:  `INSERT INTO ` + dl + ` (pipeline, letter) VALUES ($1, $2)`,
		selectLetters: `SELECT id, letter FROM ` + dl + ` WHERE pipeline = $1 ORDER BY id`,
		selectLimited: `SELECT id, letter FROM ` + dl + ` WHERE pipeline = $1 ORDER BY id LIMIT $2`,
		selectLetter:  `SELECT letter FROM ` + dl + ` WHERE pipeline = $1 AND id = $2`,
		deleteLetter:  `DELETE FROM ` + dl + ` WHERE pipeline = $1 AND id = $2`,
	}
}

func (s *Postgres) createSQL() string {
	pos := pgx.Identifier{s.schema, "dvsync_positions"}.Sanitize()
	dl := pgx.Identifier{s.schema, "dvsync_dead_letters"}.Sanitize()
	idx := pgx.Identifier{"dvsync_dead_letters_pipeline_id"}.Sanitize()
	return `CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{s.schema}.Sanitize() + `;
CREATE TABLE IF NOT EXISTS ` + pos + ` (
	pipeline bytea PRIMARY KEY,
	position bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS ` + dl + ` (
	id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	pipeline bytea NOT NULL,
	letter   bytea NOT NULL
);
CREATE INDEX IF NOT EXISTS ` + idx + ` ON ` + dl + ` (pipeline, id);`
}

// Position returns the last position saved for pipeline, or nil.
func (s *Postgres) Position(ctx context.Context, pipeline string) (change.Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var pos []byte
	err := s.pool.QueryRow(ctx, s.selectPosition, []byte(pipeline)).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: read position of %s: %w", pipeline, err)
	}
	if pos == nil {
		// A saved empty position is not "never saved".
		pos = []byte{}
	}
	return change.Position(pos), nil
}

// SavePosition replaces pipeline's saved position with pos, durably.
func (s *Postgres) SavePosition(ctx context.Context, pipeline string, pos change.Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if pipeline == "" {
		return errors.New("state: save position: empty pipeline name")
	}
	b := []byte(pos)
	if b == nil {
		b = []byte{} // pgx sends a nil slice as NULL
	}
	if _, err := s.pool.Exec(ctx, s.upsertPosition, []byte(pipeline), b); err != nil {
		return fmt.Errorf("state: save position of %s: %w", pipeline, err)
	}
	return nil
}

// PutDeadLetters stores letters in one transaction: all or none. Their
// IDs come from an identity column in the order of letters, so
// DeadLetters returns a pipeline's letters in the order they were put.
func (s *Postgres) PutDeadLetters(ctx context.Context, letters []DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(letters) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for i := range letters {
			dl := &letters[i]
			b.Queue(s.insertLetter, []byte(dl.Pipeline), appendDeadLetter(nil, dl))
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return fmt.Errorf("state: put %d dead letters: %w", len(letters), err)
	}
	return nil
}

// DeadLetters returns pipeline's dead letters, oldest first: at most limit
// of them, or all when limit <= 0.
func (s *Postgres) DeadLetters(ctx context.Context, pipeline string, limit int) ([]DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var rows pgx.Rows
	var err error
	if limit > 0 {
		rows, err = s.pool.Query(ctx, s.selectLimited, []byte(pipeline), limit)
	} else {
		rows, err = s.pool.Query(ctx, s.selectLetters, []byte(pipeline))
	}
	if err != nil {
		return nil, fmt.Errorf("state: read dead letters of %s: %w", pipeline, err)
	}
	var out []DeadLetter
	var id int64
	var letter []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &letter}, func() error {
		dl, err := decodeDeadLetter(binary.BigEndian.AppendUint64(nil, uint64(id)), letter)
		if err != nil {
			return fmt.Errorf("dead letter %d: %w", id, err)
		}
		out = append(out, dl)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read dead letters of %s: %w", pipeline, err)
	}
	return out, nil
}

// DeadLetter returns pipeline's dead letter id.
func (s *Postgres) DeadLetter(ctx context.Context, pipeline string, id uint64) (DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return DeadLetter{}, err
	}
	var letter []byte
	err := s.pool.QueryRow(ctx, s.selectLetter, []byte(pipeline), int64(id)).Scan(&letter)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	var dl DeadLetter
	if err == nil {
		dl, err = decodeDeadLetter(binary.BigEndian.AppendUint64(nil, id), letter)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("state: dead letter %d of %s: %w", id, pipeline, err)
	}
	return dl, nil
}

// DeleteDeadLetter removes pipeline's dead letter id, durably.
func (s *Postgres) DeleteDeadLetter(ctx context.Context, pipeline string, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, s.deleteLetter, []byte(pipeline), int64(id))
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("state: delete dead letter %d of %s: %w", id, pipeline, err)
	}
	return nil
}

// Close waits for connections in use to be returned, closes the pool, and
// then releases the advisory lock. It unlocks before ending the session:
// the server drops a session's locks only once its backend has exited,
// which is after the client hung up, and a process started right after
// this one returns must find the store free.
func (s *Postgres) Close() error {
	s.pool.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A failed unlock (a broken connection) is no error of Close: ending
	// the session releases the lock all the same, only later.
	_, _ = s.lock.Exec(ctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockName(s.schema))
	if err := s.lock.Close(ctx); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}
