package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/mapping"
)

// checkPostgres checks the mappings of one PostgreSQL connection against
// its catalog: the server can decode logical replication, every mapped
// table and source column exists, and every table the daemon reads
// changes from identifies its rows (a primary key or a replica identity),
// without which its updates and deletes would carry no key.
//
// A connection that cannot be opened is one problem, returned as the
// error; the DSN's password never appears in it.
func checkPostgres(ctx context.Context, cfg *config.Config, name string, conn config.Connection, ms []*mapping.Mapping) (onlineProblems, error) {
	pc, err := pgx.ParseConfig(conn.DSN.Reveal())
	if err != nil {
		return nil, fmt.Errorf("%s: connections.%s.dsn: not a valid connection string", cfg.Path, name)
	}
	// The daemon's DSN may ask for a replication connection, which takes
	// no catalog queries over the extended protocol.
	delete(pc.RuntimeParams, "replication")
	db, err := pgx.ConnectConfig(ctx, pc)
	if err != nil {
		// pgconn lists each address tried on a line of its own.
		return nil, fmt.Errorf("%s: connections.%s: cannot connect: %s", cfg.Path, name, strings.ReplaceAll(err.Error(), "\n\t", " "))
	}
	defer db.Close(context.WithoutCancel(ctx))

	var ps onlineProblems
	reads := false
	for _, m := range ms {
		reads = reads || m.Direction != mapping.FromDataverse
	}
	if reads {
		var level string
		if err := db.QueryRow(ctx, "SHOW wal_level").Scan(&level); err != nil {
			return nil, fmt.Errorf("%s: connections.%s: reading wal_level: %w", cfg.Path, name, err)
		}
		if level != "logical" {
			ps = append(ps, fmt.Sprintf("%s: connections.%s: the server has wal_level=%s; reading changes needs wal_level=logical (set it in postgresql.conf and restart the server)", cfg.Path, name, level))
		}
	}
	var tables []string // every user table, read on first need
	for _, m := range ms {
		schema, table, ok := strings.Cut(m.Source.Table, ".")
		if !ok {
			schema, table = "public", m.Source.Table
		}
		cols, err := columnNames(ctx, db, schema, table)
		if err != nil {
			return ps, fmt.Errorf("%s: connections.%s: reading the columns of %s: %w", cfg.Path, name, m.Source.Table, err)
		}
		if len(cols) == 0 {
			if tables == nil {
				if tables, err = tableNames(ctx, db); err != nil {
					return ps, fmt.Errorf("%s: connections.%s: listing tables: %w", cfg.Path, name, err)
				}
			}
			ps.add(m, "source.table", "connection %s has no table %s %s", name, m.Source.Table, hint(m.Source.Table, tables, "tables"))
			continue
		}
		for i, c := range m.Columns {
			if c.Source != "" && !slices.Contains(cols, c.Source) {
				ps.add(m, "columns["+strconv.Itoa(i)+"].source", "%s has no column %q %s", m.Source.Table, c.Source, hint(c.Source, cols, "columns"))
			}
		}
		if c := m.Key.ID.Column; c != "" && !slices.Contains(cols, c) {
			ps.add(m, "key.id.column", "%s has no column %q %s", m.Source.Table, c, hint(c, cols, "columns"))
		}
		if m.Direction == mapping.FromDataverse {
			continue
		}
		var ident string
		var pk bool
		err = db.QueryRow(ctx, `SELECT c.relreplident::text,
			       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
			  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			 WHERE n.nspname = $1 AND c.relname = $2`, schema, table).Scan(&ident, &pk)
		if err != nil {
			return ps, fmt.Errorf("%s: connections.%s: reading the replica identity of %s: %w", cfg.Path, name, m.Source.Table, err)
		}
		// 'd' (default) identifies rows by the primary key; 'n' by nothing;
		// 'f' (FULL) by every column, which the source accepts only with
		// the key columns named in source.key.
		full := pgx.Identifier{schema, table}.Sanitize()
		switch {
		case len(m.Source.Key) > 0 && (pk || ident != "f"):
			ps.add(m, "source.key", "%s must have no primary key and REPLICA IDENTITY FULL for source.key to apply: drop source.key, or ALTER TABLE %s REPLICA IDENTITY FULL", m.Source.Table, full)
		case len(m.Source.Key) > 0:
			for _, c := range m.Source.Key {
				if !slices.Contains(cols, c) {
					ps.add(m, "source.key", "%s has no column %q %s", m.Source.Table, c, hint(c, cols, "columns"))
				}
			}
		case ident == "n" || (ident == "d" && !pk):
			ps.add(m, "source.table", "%s has no primary key and no replica identity, so its updates and deletes carry no key: add a primary key, or ALTER TABLE %s REPLICA IDENTITY FULL and name the key columns in source.key",
				m.Source.Table, full)
		case ident == "f" && !pk:
			ps.add(m, "source.key", "%s has REPLICA IDENTITY FULL and no primary key: name the columns that identify a row in source.key", m.Source.Table)
		}
	}
	return ps, nil
}

func columnNames(ctx context.Context, db *pgx.Conn, schema, table string) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT column_name::text FROM information_schema.columns
		WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`, schema, table)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func tableNames(ctx context.Context, db *pgx.Conn) ([]string, error) {
	rows, err := db.Query(ctx, `SELECT table_schema || '.' || table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if names == nil && err == nil {
		names = []string{}
	}
	return names, err
}
