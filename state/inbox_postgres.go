package state

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// inboxTables records the Postgres stores whose inbox tables exist, so
// that each store creates them once, the first time an inbox method runs,
// without a field of its own.
var inboxTables sync.Map // *Postgres -> struct{}

// inboxSQL holds the inbox statements with the schema filled in.
type inboxSQL struct {
	create                                           string
	bumpSeq, insertEntry, selectEntries, selectLimit string
	deleteEntries                                    string
	upsertMark, selectMarks, pruneMarks              string
	upsertCursor, deleteCursor, selectCursor         string
	insertKept, selectKept, selectKeptLimit          string
}

func (s *Postgres) inboxSQL() inboxSQL {
	t := func(name string) string { return pgx.Identifier{s.schema, name}.Sanitize() }
	entries, seqs, marks := t("dvsync_inbox_entries"), t("dvsync_inbox_seq"), t("dvsync_inbox_marks")
	cursors, kept := t("dvsync_inbox_cursors"), t("dvsync_inbox_kept")
	return inboxSQL{
		create: `CREATE SCHEMA IF NOT EXISTS ` + pgx.Identifier{s.schema}.Sanitize() + `;
CREATE TABLE IF NOT EXISTS ` + seqs + ` (inbox bytea PRIMARY KEY, last bigint NOT NULL);
CREATE TABLE IF NOT EXISTS ` + entries + ` (
	inbox bytea NOT NULL, seq bigint NOT NULL, entry bytea NOT NULL,
	PRIMARY KEY (inbox, seq));
CREATE TABLE IF NOT EXISTS ` + marks + ` (
	inbox bytea NOT NULL, tbl bytea NOT NULL, id bytea NOT NULL,
	version bigint NOT NULL, deleted boolean NOT NULL,
	PRIMARY KEY (inbox, tbl, id));
ALTER TABLE ` + marks + ` ADD COLUMN IF NOT EXISTS foreign_version bigint;
CREATE TABLE IF NOT EXISTS ` + cursors + ` (
	inbox bytea NOT NULL, name bytea NOT NULL, value bytea NOT NULL,
	PRIMARY KEY (inbox, name));
CREATE TABLE IF NOT EXISTS ` + kept + ` (
	id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	inbox bytea NOT NULL, at timestamptz NOT NULL, reason text NOT NULL, body bytea NOT NULL);`,
		// The row lock on the inbox's counter serializes appenders until
		// commit, so sequence numbers follow commit order.
		bumpSeq: `INSERT INTO ` + seqs + ` (inbox, last) VALUES ($1, $2)
			ON CONFLICT (inbox) DO UPDATE SET last = ` + seqs + `.last + $2 RETURNING last`,
		insertEntry:   `INSERT INTO ` + entries + ` (inbox, seq, entry) VALUES ($1, $2, $3)`,
		selectEntries: `SELECT seq, entry FROM ` + entries + ` WHERE inbox = $1 AND seq > $2 ORDER BY seq`,
		selectLimit:   `SELECT seq, entry FROM ` + entries + ` WHERE inbox = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		deleteEntries: `DELETE FROM ` + entries + ` WHERE inbox = $1 AND seq <= $2`,
		upsertMark: `INSERT INTO ` + marks + ` (inbox, tbl, id, version, deleted, foreign_version) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (inbox, tbl, id) DO UPDATE SET version = excluded.version, deleted = excluded.deleted,
			foreign_version = excluded.foreign_version`,
		// A mark stored before marks had a foreign version has none.
		selectMarks: `SELECT tbl, id, version, deleted, coalesce(foreign_version, version) FROM ` + marks + ` WHERE inbox = $1 ORDER BY tbl, id`,
		pruneMarks:  `DELETE FROM ` + marks + ` WHERE inbox = $1 AND tbl = $2 AND version < $3`,
		upsertCursor: `INSERT INTO ` + cursors + ` (inbox, name, value) VALUES ($1, $2, $3)
			ON CONFLICT (inbox, name) DO UPDATE SET value = excluded.value`,
		deleteCursor:    `DELETE FROM ` + cursors + ` WHERE inbox = $1 AND name = $2`,
		selectCursor:    `SELECT value FROM ` + cursors + ` WHERE inbox = $1 AND name = $2`,
		insertKept:      `INSERT INTO ` + kept + ` (inbox, at, reason, body) VALUES ($1, $2, $3, $4)`,
		selectKept:      `SELECT id, at, reason, body FROM ` + kept + ` WHERE inbox = $1 ORDER BY id`,
		selectKeptLimit: `SELECT id, at, reason, body FROM ` + kept + ` WHERE inbox = $1 ORDER BY id LIMIT $2`,
	}
}

// inbox returns the statements after making sure the tables exist.
func (s *Postgres) inbox(ctx context.Context, inbox string) (inboxSQL, error) {
	if err := ctx.Err(); err != nil {
		return inboxSQL{}, err
	}
	if inbox == "" {
		return inboxSQL{}, errors.New("empty inbox name")
	}
	q := s.inboxSQL()
	if _, ok := inboxTables.Load(s); !ok {
		if _, err := s.pool.Exec(ctx, q.create); err != nil {
			return inboxSQL{}, fmt.Errorf("create inbox tables in schema %q: %w", s.schema, err)
		}
		inboxTables.Store(s, struct{}{})
	}
	return q, nil
}

// InboxAppend writes w to the named inbox in one transaction and returns
// the sequence number of its first entry (zero when w has none).
func (s *Postgres) InboxAppend(ctx context.Context, inbox string, w InboxWrite) (first uint64, err error) {
	q, err := s.inbox(ctx, inbox)
	if err != nil {
		return 0, fmt.Errorf("state: append to inbox %s: %w", inbox, err)
	}
	name := []byte(inbox)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if n := len(w.Entries); n > 0 {
			var last int64
			if err := tx.QueryRow(ctx, q.bumpSeq, name, int64(n)).Scan(&last); err != nil {
				return err
			}
			first = uint64(last) - uint64(n) + 1
		}
		var b pgx.Batch
		for i, e := range w.Entries {
			if e == nil {
				e = []byte{}
			}
			b.Queue(q.insertEntry, name, int64(first)+int64(i), e)
		}
		for _, m := range w.Marks {
			b.Queue(q.upsertMark, name, []byte(m.Table), []byte(m.ID), m.Version, m.Deleted, m.Foreign)
		}
		for c, v := range w.Cursors {
			if v == nil {
				b.Queue(q.deleteCursor, name, []byte(c))
			} else {
				b.Queue(q.upsertCursor, name, []byte(c), v)
			}
		}
		if b.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return 0, fmt.Errorf("state: append to inbox %s: %w", inbox, err)
	}
	return first, nil
}

// InboxEntries returns up to limit entries (all when limit <= 0) of the
// named inbox with a sequence number above after, in order.
func (s *Postgres) InboxEntries(ctx context.Context, inbox string, after uint64, limit int) ([]InboxEntry, error) {
	q, err := s.inbox(ctx, inbox)
	if err != nil {
		return nil, fmt.Errorf("state: read inbox %s: %w", inbox, err)
	}
	var rows pgx.Rows
	if limit > 0 {
		rows, err = s.pool.Query(ctx, q.selectLimit, []byte(inbox), int64(after), limit)
	} else {
		rows, err = s.pool.Query(ctx, q.selectEntries, []byte(inbox), int64(after))
	}
	if err != nil {
		return nil, fmt.Errorf("state: read inbox %s: %w", inbox, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InboxEntry, error) {
		var e InboxEntry
		var seq int64
		err := r.Scan(&seq, &e.Data)
		e.Seq = uint64(seq)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("state: read inbox %s: %w", inbox, err)
	}
	return out, nil
}

// InboxAck removes the named inbox's entries up to and including through.
func (s *Postgres) InboxAck(ctx context.Context, inbox string, through uint64) error {
	q, err := s.inbox(ctx, inbox)
	if err == nil {
		_, err = s.pool.Exec(ctx, q.deleteEntries, []byte(inbox), int64(through))
	}
	if err != nil {
		return fmt.Errorf("state: ack inbox %s through %d: %w", inbox, through, err)
	}
	return nil
}

// InboxMarks returns every mark of the named inbox, ordered by table and
// id.
func (s *Postgres) InboxMarks(ctx context.Context, inbox string) ([]InboxMark, error) {
	q, err := s.inbox(ctx, inbox)
	if err != nil {
		return nil, fmt.Errorf("state: read marks of inbox %s: %w", inbox, err)
	}
	rows, err := s.pool.Query(ctx, q.selectMarks, []byte(inbox))
	if err != nil {
		return nil, fmt.Errorf("state: read marks of inbox %s: %w", inbox, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InboxMark, error) {
		var m InboxMark
		var table, id []byte
		err := r.Scan(&table, &id, &m.Version, &m.Deleted, &m.Foreign)
		m.Table, m.ID = string(table), string(id)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("state: read marks of inbox %s: %w", inbox, err)
	}
	return out, nil
}

// InboxPruneMarks removes the named inbox's marks of table whose version
// is below below.
func (s *Postgres) InboxPruneMarks(ctx context.Context, inbox, table string, below int64) error {
	q, err := s.inbox(ctx, inbox)
	if err == nil {
		_, err = s.pool.Exec(ctx, q.pruneMarks, []byte(inbox), []byte(table), below)
	}
	if err != nil {
		return fmt.Errorf("state: prune marks of inbox %s: %w", inbox, err)
	}
	return nil
}

// InboxCursor returns the named inbox's cursor, or nil if it is not set.
func (s *Postgres) InboxCursor(ctx context.Context, inbox, name string) ([]byte, error) {
	q, err := s.inbox(ctx, inbox)
	if err != nil {
		return nil, fmt.Errorf("state: read cursor %s of inbox %s: %w", name, inbox, err)
	}
	var v []byte
	err = s.pool.QueryRow(ctx, q.selectCursor, []byte(inbox), []byte(name)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: read cursor %s of inbox %s: %w", name, inbox, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// InboxKeep stores a refused body for inspection; its ID and, when zero,
// its Time are set by the store.
func (s *Postgres) InboxKeep(ctx context.Context, inbox string, k KeptBody) error {
	q, err := s.inbox(ctx, inbox)
	if err == nil {
		if k.Body == nil {
			k.Body = []byte{}
		}
		if k.Time.IsZero() {
			k.Time = time.Now()
		}
		_, err = s.pool.Exec(ctx, q.insertKept, []byte(inbox), k.Time, k.Reason, k.Body)
	}
	if err != nil {
		return fmt.Errorf("state: keep a body in inbox %s: %w", inbox, err)
	}
	return nil
}

// InboxKept returns up to limit kept bodies (all when limit <= 0) of the
// named inbox, oldest first.
func (s *Postgres) InboxKept(ctx context.Context, inbox string, limit int) ([]KeptBody, error) {
	q, err := s.inbox(ctx, inbox)
	if err != nil {
		return nil, fmt.Errorf("state: read kept bodies of inbox %s: %w", inbox, err)
	}
	var rows pgx.Rows
	if limit > 0 {
		rows, err = s.pool.Query(ctx, q.selectKeptLimit, []byte(inbox), limit)
	} else {
		rows, err = s.pool.Query(ctx, q.selectKept, []byte(inbox))
	}
	if err != nil {
		return nil, fmt.Errorf("state: read kept bodies of inbox %s: %w", inbox, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (KeptBody, error) {
		var k KeptBody
		var id int64
		err := r.Scan(&id, &k.Time, &k.Reason, &k.Body)
		k.ID = uint64(id)
		return k, err
	})
	if err != nil {
		return nil, fmt.Errorf("state: read kept bodies of inbox %s: %w", inbox, err)
	}
	return out, nil
}
