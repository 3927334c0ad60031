package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// snapshotTable is a table as the backfill reads it.
type snapshotTable struct {
	name    string // "schema.table", unquoted, as records name it
	columns []relColumn
	// paging indexes columns, in the order of the unique index the pages
	// are sorted by, so that each page is one index range scan.
	paging []int
	// key indexes columns in column order: the key the stream gives the
	// same row, so that backfilled and streamed records of a row agree.
	key []int
	// Pieces of the queries, quoted: the column list, the paging key
	// columns in index order, the table, and the filter ("" for none).
	cols, keys, from, where string
}

// describeSnapshotTable reads what the backfill needs to page through a
// table: its columns and the unique index whose key the stream uses. t
// comes from describeTable, which has checked that the table can be
// captured at all; configured says its key was given in the Config.
func describeSnapshotTable(ctx context.Context, conn *pgx.Conn, t table, where string, configured bool) (*snapshotTable, error) {
	st := &snapshotTable{name: t.name}
	// Generated columns are left out: pgoutput does not send them either.
	rows, err := conn.Query(ctx, `
		SELECT attname, atttypid FROM pg_attribute
		 WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
		 ORDER BY attnum`, quoteTable(t.name))
	if err != nil {
		return nil, fmt.Errorf("postgres: list columns of %s: %w", t.name, err)
	}
	st.columns, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (relColumn, error) {
		var c relColumn
		err := r.Scan(&c.name, &c.typ)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list columns of %s: %w", t.name, err)
	}

	var indexCols []string
	if configured {
		if indexCols, err = configuredKeyIndex(ctx, conn, t); err != nil {
			return nil, err
		}
	} else if indexCols, err = identityIndex(ctx, conn, t); err != nil {
		return nil, err
	}
	for _, n := range indexCols {
		i := slices.IndexFunc(st.columns, func(c relColumn) bool { return c.name == n })
		if i < 0 {
			return nil, fmt.Errorf("postgres: table %s: key column %s is not a plain column", t.name, n)
		}
		st.paging = append(st.paging, i)
	}
	st.key = slices.Sorted(slices.Values(st.paging))
	st.buildSQL(where)
	return st, nil
}

// identityIndex returns the key columns, in index order, of the index the
// stream keys t by: its replica identity index, or its primary key under
// REPLICA IDENTITY DEFAULT or FULL.
func identityIndex(ctx context.Context, conn *pgx.Conn, t table) ([]string, error) {
	var cols []string
	err := conn.QueryRow(ctx, `
		SELECT ARRAY(SELECT a.attname
		               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		              WHERE k.ord <= i.indnkeyatts
		              ORDER BY k.ord)::text[]
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		 WHERE i.indrelid = to_regclass($1)
		   AND CASE c.relreplident WHEN 'i' THEN i.indisreplident ELSE i.indisprimary END`,
		quoteTable(t.name)).Scan(&cols)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: table %s has no primary key to page by: add one, or give its key columns in the mapping", t.name)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: look up the key of %s: %w", t.name, err)
	}
	return cols, nil
}

// configuredKeyIndex returns the key columns, in index order, of a unique
// index on exactly t's configured key columns, all NOT NULL. Keyset paging
// needs one: without uniqueness a page boundary falling inside a run of
// equal keys would skip the rest of the run, and a NULL never compares
// greater than the last key read. Paging by ctid instead would not survive
// a resumed backfill, which reads in a new snapshot where ctids differ.
func configuredKeyIndex(ctx context.Context, conn *pgx.Conn, t table) ([]string, error) {
	rows, err := conn.Query(ctx, `
		SELECT ARRAY(SELECT a.attname
		               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
		               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		              WHERE k.ord <= i.indnkeyatts
		              ORDER BY k.ord)::text[]
		  FROM pg_index i
		 WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indisvalid
		   AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = $2
		 ORDER BY i.indexrelid`,
		quoteTable(t.name), len(t.key))
	if err != nil {
		return nil, fmt.Errorf("postgres: look up the indexes of %s: %w", t.name, err)
	}
	indexes, err := pgx.CollectRows(rows, pgx.RowTo[[]string])
	if err != nil {
		return nil, fmt.Errorf("postgres: look up the indexes of %s: %w", t.name, err)
	}
	for _, cols := range indexes {
		if len(cols) == len(t.key) && !slices.ContainsFunc(cols, func(c string) bool { return !slices.Contains(t.key, c) }) {
			var nullable []string
			err := conn.QueryRow(ctx, `
				SELECT ARRAY(SELECT attname FROM pg_attribute
				              WHERE attrelid = to_regclass($1) AND attname = ANY ($2) AND NOT attnotnull
				              ORDER BY attnum)::text[]`,
				quoteTable(t.name), t.key).Scan(&nullable)
			if err != nil {
				return nil, fmt.Errorf("postgres: look up the key columns of %s: %w", t.name, err)
			}
			if len(nullable) > 0 {
				return nil, fmt.Errorf("postgres: table %s: key column %s may be NULL, and the backfill cannot page past NULL keys: make the key columns NOT NULL", t.name, strings.Join(nullable, ", "))
			}
			return cols, nil
		}
	}
	return nil, fmt.Errorf("postgres: table %s has no unique index on its key columns (%s), which the backfill pages by: CREATE UNIQUE INDEX ON %s (%s)",
		t.name, strings.Join(t.key, ", "), quoteTable(t.name), strings.Join(t.key, ", "))
}

// buildSQL prepares the pieces of the page, count and split queries.
func (st *snapshotTable) buildSQL(where string) {
	cols := make([]string, len(st.columns))
	for i, c := range st.columns {
		cols[i] = pgx.Identifier{c.name}.Sanitize()
	}
	keys := make([]string, len(st.paging))
	for i, ci := range st.paging {
		keys[i] = pgx.Identifier{st.columns[ci].name}.Sanitize()
	}
	st.cols = strings.Join(cols, ", ")
	st.keys = strings.Join(keys, ", ")
	st.from = quoteTable(st.name)
	if where != "" {
		st.where = "(" + where + ")"
	}
}

// conditions returns the WHERE clause selecting the filter's rows after
// the key in the first parameters (if lower) and up to and including the
// key in the next ones (if upper). Keyset paging compares the key as a row
// value, (a, b) > ($1, $2), which PostgreSQL answers with one range scan
// of the index whose columns come in that order. Parameters are sent as
// text typed with the columns' own type OIDs, so the comparison is the
// index's.
func (st *snapshotTable) conditions(lower, upper bool) string {
	var conds []string
	if st.where != "" {
		conds = append(conds, st.where)
	}
	n := 0
	params := func() string {
		ps := make([]string, len(st.paging))
		for i := range ps {
			n++
			ps[i] = "$" + strconv.Itoa(n)
		}
		return "(" + strings.Join(ps, ", ") + ")"
	}
	if lower {
		conds = append(conds, "("+st.keys+") > "+params())
	}
	if upper {
		conds = append(conds, "("+st.keys+") <= "+params())
	}
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// pageSQL reads up to limit rows in key order within the bounds.
func (st *snapshotTable) pageSQL(lower, upper bool, limit int) string {
	return "SELECT " + st.cols + " FROM " + st.from + st.conditions(lower, upper) +
		" ORDER BY " + st.keys + " LIMIT " + strconv.Itoa(limit)
}

// countSQL counts the rows within the bounds.
func (st *snapshotTable) countSQL(lower, upper bool) string {
	return "SELECT count(*) FROM " + st.from + st.conditions(lower, upper)
}

// splitSQL returns the keys of every $1-th row in key order: the bounds
// of ranges of about $1 rows each. It reads only the index's keys.
func (st *snapshotTable) splitSQL() string {
	return "SELECT " + st.keys + " FROM (SELECT " + st.keys + ", row_number() OVER (ORDER BY " + st.keys + ") AS dvsync_rn FROM " +
		st.from + st.conditions(false, false) + ") AS k WHERE dvsync_rn % $1 = 0 ORDER BY " + st.keys
}

// pagingOIDs returns the type OIDs of the paging columns, which type the
// text parameters of the page queries.
func (st *snapshotTable) pagingOIDs() []uint32 {
	oids := make([]uint32, len(st.paging))
	for i, ci := range st.paging {
		oids[i] = st.columns[ci].typ
	}
	return oids
}

// quoteTable quotes "schema.table" for SQL.
func quoteTable(name string) string {
	schema, rel, _ := strings.Cut(name, ".")
	return pgx.Identifier{schema, rel}.Sanitize()
}
