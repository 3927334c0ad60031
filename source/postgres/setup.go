package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// table is a captured table as the catalog describes it.
type table struct {
	// name is "schema.table", unquoted, as pgoutput names it.
	name string
	// key lists, in column order, the columns keying a table with REPLICA
	// IDENTITY FULL: its primary key, or the configured key columns when
	// it has none. Such a table's Relation message flags every column as
	// key, so the row identity must come from here. Nil for other tables,
	// whose Relation message flags the identity index's columns.
	key []string
}

// upstream is what Open learns and arranges before streaming.
type upstream struct {
	tables    map[string]table // by name
	confirmed pglogrepl.LSN    // the slot's confirmed_flush_lsn
}

// slotWait bounds how long Open waits for another session (often our own
// previous one, still exiting) to release the slot.
const slotWait = 10 * time.Second

// prepare checks the server and tables, creates or extends the
// publication, creates the slot if missing (and createSlot is set), and
// waits for the slot to be free. It uses an ordinary connection and
// closes it before returning.
func prepare(ctx context.Context, cfg Config, createSlot bool) (*upstream, error) {
	conn, err := pgx.Connect(ctx, cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.Background())

	var walLevel string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&walLevel); err != nil {
		return nil, fmt.Errorf("postgres: read wal_level: %w", err)
	}
	if walLevel != "logical" {
		return nil, fmt.Errorf("postgres: the server has wal_level=%s; logical replication needs wal_level=logical (set it in postgresql.conf and restart the server)", walLevel)
	}
	up := &upstream{tables: map[string]table{}}
	var ordered []table
	var errs []error
	for _, name := range cfg.Tables {
		t, err := describeTable(ctx, conn, name, cfg.Keys[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		up.tables[t.name] = t
		ordered = append(ordered, t)
	}
	if err := errors.Join(errs...); err != nil {
		// Checked before the publication is touched: publishing a table
		// without a replica identity makes PostgreSQL reject every UPDATE
		// and DELETE on it, which would break the application.
		return nil, err
	}
	if err := ensurePublication(ctx, conn, cfg.Publication, ordered); err != nil {
		return nil, err
	}
	if up.confirmed, err = checkSlot(ctx, conn, cfg.Slot, createSlot); err != nil {
		return nil, err
	}
	return up, nil
}

// describeTable resolves a configured table name and checks that its
// changes can carry a key: its primary key or replica identity index, or
// the configured key columns of a REPLICA IDENTITY FULL table without one.
func describeTable(ctx context.Context, conn *pgx.Conn, name string, configured []string) (table, error) {
	var (
		t                table
		kind, ident      string
		hasIdentityIndex bool
		primaryKey       []string
		columns          []string
	)
	err := conn.QueryRow(ctx, `
		SELECT n.nspname || '.' || c.relname, c.relkind::text, c.relreplident::text,
		       EXISTS (SELECT 1 FROM pg_index i
		                WHERE i.indrelid = c.oid
		                  AND CASE c.relreplident WHEN 'd' THEN i.indisprimary
		                                          WHEN 'i' THEN i.indisreplident
		                                          ELSE false END),
		       ARRAY(SELECT a.attname
		               FROM pg_index i
		               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		              WHERE i.indrelid = c.oid AND i.indisprimary
		              ORDER BY a.attnum)::text[],
		       ARRAY(SELECT a.attname FROM pg_attribute a
		              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		              ORDER BY a.attnum)::text[]
		  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE c.oid = to_regclass($1)`, name,
	).Scan(&t.name, &kind, &ident, &hasIdentityIndex, &primaryKey, &columns)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("postgres: table %s does not exist (or the role cannot see it)", name)
	}
	if err != nil {
		return t, fmt.Errorf("postgres: look up table %s: %w", name, err)
	}
	if kind != "r" && kind != "p" {
		return t, fmt.Errorf("postgres: %s is not a table (relkind %q); only tables can be published", name, kind)
	}
	if configured != nil {
		return t, configuredKey(&t, ident, len(primaryKey) > 0 || hasIdentityIndex, columns, configured)
	}
	switch ident {
	case "f":
		if len(primaryKey) == 0 {
			return t, fmt.Errorf("postgres: table %s has REPLICA IDENTITY FULL but no primary key, so nothing says which columns identify a row: add a primary key, or give the key columns in the mapping (source: {key: [...]})", t.name)
		}
		t.key = primaryKey
	case "n":
		return t, fmt.Errorf("postgres: table %s has REPLICA IDENTITY NOTHING, so its changes carry no key: set REPLICA IDENTITY DEFAULT with a primary key, USING INDEX, or FULL", t.name)
	default:
		if !hasIdentityIndex {
			return t, fmt.Errorf("postgres: table %s has no primary key (nor a replica identity index), so its changes carry no key: add a primary key, set REPLICA IDENTITY USING INDEX, or set REPLICA IDENTITY FULL and give the key columns in the mapping (source: {key: [...]})", t.name)
		}
	}
	return t, nil
}

// configuredKey checks the key columns configured for t, which must be a
// REPLICA IDENTITY FULL table without a primary key or identity index
// (keyed is whether it has one), and sets t.key to them in column order.
func configuredKey(t *table, ident string, keyed bool, columns, configured []string) error {
	switch {
	case keyed:
		return fmt.Errorf("postgres: table %s has a primary key (or replica identity index), which keys its changes; remove the key columns given for it in the mapping", t.name)
	case ident != "f":
		return fmt.Errorf("postgres: table %s: key columns are given for it, but only REPLICA IDENTITY FULL makes its updates and deletes carry their old values; run ALTER TABLE %s REPLICA IDENTITY FULL", t.name, quoteTable(t.name))
	}
	var errs []error
	for _, c := range configured {
		if !slices.Contains(columns, c) {
			errs = append(errs, fmt.Errorf("postgres: table %s has no column %q, given as a key column", t.name, c))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, c := range columns {
		if slices.Contains(configured, c) {
			t.key = append(t.key, c)
		}
	}
	return nil
}

// ensurePublication creates the publication for tables, or adds the
// tables it lacks.
func ensurePublication(ctx context.Context, conn *pgx.Conn, pub string, tables []table) error {
	quoted := func(ts []table) string {
		names := make([]string, len(ts))
		for i, t := range ts {
			schema, rel, _ := strings.Cut(t.name, ".")
			names[i] = pgx.Identifier{schema, rel}.Sanitize()
		}
		return strings.Join(names, ", ")
	}
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", pub).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: look up publication %s: %w", pub, err)
	}
	if !exists {
		// Publishing partitioned tables under their own name (rather than
		// their partitions') is what lets changes match the configured name.
		_, err := conn.Exec(ctx, "CREATE PUBLICATION "+pgx.Identifier{pub}.Sanitize()+
			" FOR TABLE "+quoted(tables)+" WITH (publish_via_partition_root = true)")
		if err == nil {
			return nil
		}
		if !isCode(err, "42710") {
			return fmt.Errorf("postgres: create publication %s: %w", pub, err)
		}
		// Someone else created it meanwhile: go on as if it had existed.
	}
	// pg_publication_tables also covers FOR ALL TABLES and FOR TABLES IN
	// SCHEMA publications.
	rows, err := conn.Query(ctx, "SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1", pub)
	if err != nil {
		return fmt.Errorf("postgres: list tables of publication %s: %w", pub, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("postgres: list tables of publication %s: %w", pub, err)
	}
	published := map[string]bool{}
	for _, n := range names {
		published[n] = true
	}
	var missing []table
	for _, t := range tables {
		if !published[t.name] {
			missing = append(missing, t)
		}
	}
	for _, t := range missing {
		// 42710: already a member. A partitioned table is listed by its
		// partitions when the publication does not publish via the root.
		_, err := conn.Exec(ctx, "ALTER PUBLICATION "+pgx.Identifier{pub}.Sanitize()+" ADD TABLE "+quoted([]table{t}))
		if err != nil && !isCode(err, "42710") {
			return fmt.Errorf("postgres: add table %s to publication %s: %w", t.name, pub, err)
		}
	}
	return nil
}

// ensureSlot creates the logical slot if missing, checks that an existing
// one suits us, waits until no other session streams from it, and returns
// its confirmed_flush_lsn.
func ensureSlot(ctx context.Context, conn *pgx.Conn, slot string) (pglogrepl.LSN, error) {
	return checkSlot(ctx, conn, slot, true)
}

// checkSlot is ensureSlot, except that a missing slot is an error unless
// create is set: a slot that vanished while we streamed from it took its
// unconfirmed changes along, and recreating it would skip them silently.
func checkSlot(ctx context.Context, conn *pgx.Conn, slot string, create bool) (pglogrepl.LSN, error) {
	type slotRow struct {
		Plugin    *string
		Type      string
		Database  *string
		Current   string
		Confirmed *string
		ActivePID *int32
		WALStatus *string
	}
	query := func() (*slotRow, error) {
		rows, err := conn.Query(ctx, `
			SELECT plugin, slot_type, database, current_database(),
			       confirmed_flush_lsn::text, active_pid, wal_status
			  FROM pg_replication_slots WHERE slot_name = $1`, slot)
		if err != nil {
			return nil, err
		}
		return pgx.CollectExactlyOneRow(rows, pgx.RowToAddrOfStructByPos[slotRow])
	}
	s, err := query()
	if errors.Is(err, pgx.ErrNoRows) && !create {
		return 0, fmt.Errorf("postgres: replication slot %s: %w", slot, ErrSlotDropped)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
		if err != nil && !isCode(err, "42710") { // 42710: created meanwhile by someone else
			return 0, fmt.Errorf("postgres: create replication slot %s: %w", slot, err)
		}
		s, err = query()
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: look up replication slot %s: %w", slot, err)
	}
	switch {
	case s.Type != "logical" || s.Plugin == nil || *s.Plugin != "pgoutput":
		return 0, fmt.Errorf("postgres: replication slot %s exists but is not a logical pgoutput slot; drop it or choose another slot name", slot)
	case s.Database == nil || *s.Database != s.Current:
		return 0, fmt.Errorf("postgres: replication slot %s belongs to another database; choose another slot name", slot)
	case s.WALStatus != nil && *s.WALStatus == "lost":
		return 0, fmt.Errorf("postgres: replication slot %s: %w", slot, ErrSlotLost)
	case s.Confirmed == nil:
		return 0, fmt.Errorf("postgres: replication slot %s has no confirmed position yet", slot)
	}
	confirmed, err := pglogrepl.ParseLSN(*s.Confirmed)
	if err != nil {
		return 0, fmt.Errorf("postgres: replication slot %s: %w", slot, err)
	}

	// A session that just closed (our previous Open, or a failed-over
	// peer) lets go of the slot a moment after its connection ends.
	deadline := time.NewTimer(slotWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for s.ActivePID != nil {
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("postgres: replication slot %s is in use by process %d: %w", slot, *s.ActivePID, ctx.Err())
		case <-deadline.C:
			return 0, fmt.Errorf("postgres: replication slot %s is in use by process %d (another dvsync?): %w", slot, *s.ActivePID, errSlotBusy)
		case <-tick.C:
		}
		if s, err = query(); err != nil {
			return 0, fmt.Errorf("postgres: look up replication slot %s: %w", slot, err)
		}
	}
	return confirmed, nil
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// connectReplication opens the replication connection, with the session
// settings that fix the text form of values.
func connectReplication(ctx context.Context, dsn string) (*pgconn.PgConn, error) {
	cfg, err := replicationConfig(dsn)
	if err != nil {
		return nil, err
	}
	return connectConfig(ctx, cfg)
}

// replicationConfig is the connection configuration connectReplication
// uses, for callers that add session settings of their own.
func replicationConfig(dsn string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "dvsync"
	}
	return cfg, nil
}

func connectConfig(ctx context.Context, cfg *pgconn.Config) (*pgconn.PgConn, error) {
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open replication connection: %w", err)
	}
	return conn, nil
}
