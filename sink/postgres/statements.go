package postgres

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/change"
)

// statement is one record's SQL and its parameters.
type statement struct {
	sql  string
	args []any
}

// Kinds of statement, the first byte of a SQL cache key.
const (
	kindUpsert  = 'u'
	kindPartial = 'p'
	kindDelete  = 'd'
)

// statements builds the SQL for records and remembers it per table, kind
// and column set, so that a stream of like records costs one string
// build. The server-side prepared statement behind each text is pgx's
// business: its per-connection statement cache prepares a text on first
// use and reuses it after, so each (table, column set) is parsed and
// planned once per connection.
type statements struct {
	softDelete string
	cache      sync.Map // cache key → SQL text
}

// plan returns the statement that writes r.
func (s *statements) plan(r *change.Record) (statement, error) {
	switch r.Op {
	case change.OpInsert, change.OpUpdate, change.OpRead:
		return s.upsert(r)
	case change.OpDelete:
		return s.delete(r)
	case change.OpTruncate:
		return statement{}, errors.New("truncate is not written by the PostgreSQL sink")
	}
	return statement{}, fmt.Errorf("unknown operation %s", r.Op)
}

// upsert inserts r's row, or on a key conflict updates the columns the
// record carries. Unchanged columns are left out of both halves, so a
// TOASTed value the source did not send is never overwritten.
func (s *statements) upsert(r *change.Record) (statement, error) {
	if len(r.Key) == 0 {
		return statement{}, errors.New("record has no key")
	}
	cols := make([]string, 0, len(r.Key)+len(r.After)+1)
	args := make([]any, 0, cap(cols))
	for _, c := range r.Key {
		a, err := param(c.Value)
		if err != nil || c.Value.IsNull() {
			return statement{}, fmt.Errorf("key column %s: %s value", c.Name, c.Value.Kind())
		}
		cols = append(cols, c.Name)
		args = append(args, a)
	}
	nKey := len(cols)
	soft := s.softDelete != ""
	partial := false
	for _, c := range r.After {
		if inKey(r.Key, c.Name) {
			continue
		}
		if c.Value.IsUnchanged() {
			partial = true
			continue
		}
		a, err := param(c.Value)
		if err != nil {
			return statement{}, fmt.Errorf("column %s: %w", c.Name, err)
		}
		if c.Name == s.softDelete {
			soft = false
		}
		cols = append(cols, c.Name)
		args = append(args, a)
	}
	if soft {
		// An upsert revives a soft-deleted row: the source has it again.
		cols = append(cols, s.softDelete)
		args = append(args, "false")
	}
	if partial {
		return statement{sql: s.cached(kindPartial, r.Table, nKey, cols, buildPartialUpsert), args: args}, nil
	}
	return statement{sql: s.cached(kindUpsert, r.Table, nKey, cols, buildUpsert), args: args}, nil
}

// delete removes the keyed row, or marks it deleted. A missing row is no
// error: the statement then affects nothing.
func (s *statements) delete(r *change.Record) (statement, error) {
	if len(r.Key) == 0 {
		return statement{}, errors.New("record has no key")
	}
	cols := make([]string, len(r.Key))
	args := make([]any, len(r.Key))
	for i, c := range r.Key {
		a, err := param(c.Value)
		if err != nil || c.Value.IsNull() {
			return statement{}, fmt.Errorf("key column %s: %s value", c.Name, c.Value.Kind())
		}
		cols[i], args[i] = c.Name, a
	}
	build := buildDelete
	if s.softDelete != "" {
		build = func(table string, nKey int, cols []string) string {
			return buildSoftDelete(table, cols, s.softDelete)
		}
	}
	return statement{sql: s.cached(kindDelete, r.Table, len(cols), cols, build), args: args}, nil
}

// cached returns the SQL for (kind, table, columns), building it once.
func (s *statements) cached(kind byte, table string, nKey int, cols []string, build func(table string, nKey int, cols []string) string) string {
	var b strings.Builder
	b.WriteByte(kind)
	b.WriteString(strconv.Itoa(nKey))
	b.WriteByte(0)
	b.WriteString(table)
	for _, c := range cols {
		b.WriteByte(0)
		b.WriteString(c)
	}
	key := b.String()
	if sql, ok := s.cache.Load(key); ok {
		return sql.(string)
	}
	sql := build(table, nKey, cols)
	s.cache.Store(key, sql)
	return sql
}

func inKey(k change.Key, name string) bool {
	for _, c := range k {
		if c.Name == name {
			return true
		}
	}
	return false
}

// tableIdent quotes a table name given as "schema.table" or "table".
// Everything after the first dot is the table's name.
func tableIdent(table string) string {
	if schema, name, ok := strings.Cut(table, "."); ok {
		return pgx.Identifier{schema, name}.Sanitize()
	}
	return pgx.Identifier{table}.Sanitize()
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// buildUpsert writes
//
//	INSERT INTO t (k, a, b) VALUES ($1, $2, $3)
//	ON CONFLICT (k) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b
//
// or DO NOTHING when the record carries no column besides the key. The
// conflict target needs a primary key or unique index on exactly the key
// columns.
func buildUpsert(table string, nKey int, cols []string) string {
	return "INSERT INTO " + tableIdent(table) + " (" + identList(cols) + ") VALUES (" + paramList(len(cols)) + ")" +
		onConflict(nKey, cols)
}

// buildPartialUpsert writes the upsert of a row some of whose columns are
// Unchanged:
//
//	WITH u AS (UPDATE t SET a = $2 WHERE k = $1 RETURNING 1)
//	INSERT INTO t (k, a) SELECT $1, $2 WHERE NOT EXISTS (SELECT FROM u)
//	ON CONFLICT (k) DO UPDATE SET a = EXCLUDED.a
//
// A plain INSERT … ON CONFLICT would check the proposed row, which lacks
// the unchanged columns, against NOT NULL constraints before it looks for
// the conflict, and so fail on the very rows it was meant to update. Here
// an existing row is updated and nothing is inserted; only a row that is
// missing altogether is inserted, and a concurrent insert of it still
// meets the ON CONFLICT clause.
func buildPartialUpsert(table string, nKey int, cols []string) string {
	t := tableIdent(table)
	var b strings.Builder
	b.WriteString("WITH u AS (")
	if len(cols) == nKey {
		b.WriteString("SELECT FROM " + t + whereKey(cols))
	} else {
		b.WriteString("UPDATE " + t + " SET ")
		for i, c := range cols[nKey:] {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ident(c) + " = $" + strconv.Itoa(nKey+i+1))
		}
		b.WriteString(whereKey(cols[:nKey]) + " RETURNING 1")
	}
	b.WriteString(") INSERT INTO " + t + " (" + identList(cols) + ") SELECT " + paramList(len(cols)) +
		" WHERE NOT EXISTS (SELECT FROM u)" + onConflict(nKey, cols))
	return b.String()
}

// onConflict writes the ON CONFLICT clause of an upsert whose first nKey
// columns are the key.
func onConflict(nKey int, cols []string) string {
	var b strings.Builder
	b.WriteString(" ON CONFLICT (" + identList(cols[:nKey]) + ")")
	if len(cols) == nKey {
		b.WriteString(" DO NOTHING")
		return b.String()
	}
	b.WriteString(" DO UPDATE SET ")
	for i, c := range cols[nKey:] {
		if i > 0 {
			b.WriteString(", ")
		}
		q := ident(c)
		b.WriteString(q + " = EXCLUDED." + q)
	}
	return b.String()
}

// identList writes the quoted names, comma separated.
func identList(cols []string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(ident(c))
	}
	return b.String()
}

// paramList writes $1, $2, … $n.
func paramList(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		if i > 1 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i))
	}
	return b.String()
}

// buildDelete writes DELETE FROM t WHERE k1 = $1 AND k2 = $2.
func buildDelete(table string, _ int, cols []string) string {
	return "DELETE FROM " + tableIdent(table) + whereKey(cols)
}

// buildSoftDelete writes UPDATE t SET d = true WHERE k = $1 AND d IS
// DISTINCT FROM true: a replayed delete changes nothing.
func buildSoftDelete(table string, cols []string, flag string) string {
	q := ident(flag)
	return "UPDATE " + tableIdent(table) + " SET " + q + " = true" + whereKey(cols) + " AND " + q + " IS DISTINCT FROM true"
}

func whereKey(cols []string) string {
	var b strings.Builder
	b.WriteString(" WHERE ")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(" AND ")
		}
		b.WriteString(ident(c))
		b.WriteString(" = $")
		b.WriteString(strconv.Itoa(i + 1))
	}
	return b.String()
}
