package sqlserver

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/dvsync/dvsync/change"
)

// statement is one record's SQL and its parameters. @p1 is always the
// change tracking context.
type statement struct {
	sql  string
	args []any
}

// columnType is a destination column as the catalog describes it.
type columnType struct {
	name string
	// spec is the type as written in a CAST: nvarchar(50),
	// decimal(19,4), datetime2(7), varbinary(max).
	spec string
	// base is the type's name alone, lower case: nvarchar, datetime2.
	base string
}

// tableInfo is a destination table's columns, by name.
type tableInfo struct {
	quoted  string
	columns map[string]columnType
	order   []string // column names in column order
}

// columnsSQL reads a table's columns with what a CAST to their type needs.
const columnsSQL = `SELECT c.name, TYPE_NAME(c.system_type_id) AS type_name, CAST(c.max_length AS int) AS max_length, CAST(c.precision AS int) AS precision, CAST(c.scale AS int) AS scale
FROM sys.columns AS c
WHERE c.object_id = OBJECT_ID(@p1)
ORDER BY c.column_id`

// catalog reads and caches destination tables' columns.
type catalog struct {
	db     *sql.DB
	mu     sync.Mutex
	tables map[string]*tableInfo
}

// errNoTable is wrapped by the error for a destination table that does
// not exist, which no retry fixes.
var errNoTable = errors.New("table does not exist, or the login cannot see it")

// errNoColumn is wrapped by the error for a record naming a column its
// table does not have.
var errNoColumn = errors.New("no such column")

// reload forgets what was read of table name and reads it again.
func (c *catalog) reload(ctx context.Context, name string) (*tableInfo, error) {
	c.mu.Lock()
	delete(c.tables, name)
	c.mu.Unlock()
	return c.table(ctx, name)
}

func (c *catalog) table(ctx context.Context, name string) (*tableInfo, error) {
	c.mu.Lock()
	t, ok := c.tables[name]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	t = &tableInfo{quoted: quoteTable(name), columns: map[string]columnType{}}
	rows, err := c.db.QueryContext(ctx, columnsSQL, t.quoted)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var col, typ string
		var length, precision, scale int64
		if err := rows.Scan(&col, &typ, &length, &precision, &scale); err != nil {
			return nil, err
		}
		t.order = append(t.order, col)
		t.columns[col] = columnType{name: col, base: strings.ToLower(typ), spec: typeSpec(strings.ToLower(typ), length, precision, scale)}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(t.columns) == 0 {
		return nil, fmt.Errorf("%s: %w", name, errNoTable)
	}
	c.mu.Lock()
	c.tables[name] = t
	c.mu.Unlock()
	return t, nil
}

// typeSpec writes a column's type as a CAST takes it.
func typeSpec(typ string, length, precision, scale int64) string {
	switch typ {
	case "nvarchar", "nchar":
		if length < 0 {
			return typ + "(max)"
		}
		return fmt.Sprintf("%s(%d)", typ, length/2)
	case "varchar", "char", "varbinary", "binary":
		if length < 0 {
			return typ + "(max)"
		}
		return fmt.Sprintf("%s(%d)", typ, length)
	case "decimal", "numeric":
		return fmt.Sprintf("%s(%d,%d)", typ, precision, scale)
	case "datetime2", "datetimeoffset", "time":
		return fmt.Sprintf("%s(%d)", typ, scale)
	}
	return typ
}

// quoteName quotes an identifier: brackets, with a closing bracket
// doubled.
func quoteName(s string) string {
	return "[" + strings.ReplaceAll(s, "]", "]]") + "]"
}

// quoteTable quotes schema.table (split at the first dot), or a bare
// table name, which resolves in the login's default schema.
func quoteTable(name string) string {
	s, t, ok := strings.Cut(name, ".")
	if !ok {
		return quoteName(name)
	}
	return quoteName(s) + "." + quoteName(t)
}

// plan returns the statement that writes r to t.
func plan(t *tableInfo, r *change.Record, ctxMarker []byte) (statement, error) {
	if len(r.Key) == 0 {
		return statement{}, errors.New("record has no key")
	}
	switch r.Op {
	case change.OpInsert, change.OpUpdate, change.OpRead:
		return upsert(t, r, ctxMarker)
	case change.OpDelete:
		return deleteByKey(t, r, ctxMarker)
	case change.OpTruncate:
		return statement{}, errors.New("truncate is not written by the SQL Server sink")
	}
	return statement{}, fmt.Errorf("unknown operation %s", r.Op)
}

// upsert is a MERGE by key of the columns the record carries: an existing
// row has its non-key columns updated, a missing one is inserted.
// Unchanged columns are left out of both. HOLDLOCK keeps two writers of
// one new key from both inserting it.
func upsert(t *tableInfo, r *change.Record, ctxMarker []byte) (statement, error) {
	args := []any{ctxMarker}
	var sel, on, set, cols, vals []string
	add := func(name string, v change.Value) error {
		ct, ok := t.columns[name]
		if !ok {
			return fmt.Errorf("%s: %w: %s", t.quoted, errNoColumn, name)
		}
		p, err := param(ct, v)
		if err != nil {
			return fmt.Errorf("column %s: %w", name, err)
		}
		args = append(args, p)
		q := quoteName(name)
		sel = append(sel, fmt.Sprintf("CAST(@p%d AS %s) AS %s", len(args), ct.spec, q))
		cols = append(cols, q)
		vals = append(vals, "s."+q)
		return nil
	}
	for _, k := range r.Key {
		if err := add(k.Name, k.Value); err != nil {
			return statement{}, err
		}
		q := quoteName(k.Name)
		on = append(on, "t."+q+" = s."+q)
	}
	for _, c := range r.After {
		if c.Value.IsUnchanged() || isKey(r.Key, c.Name) {
			continue
		}
		if err := add(c.Name, c.Value); err != nil {
			return statement{}, err
		}
		q := quoteName(c.Name)
		set = append(set, "t."+q+" = s."+q)
	}
	var b strings.Builder
	b.WriteString("WITH CHANGE_TRACKING_CONTEXT (@p1)\nMERGE INTO ")
	b.WriteString(t.quoted)
	b.WriteString(" WITH (HOLDLOCK) AS t\nUSING (SELECT ")
	b.WriteString(strings.Join(sel, ", "))
	b.WriteString(") AS s\nON ")
	b.WriteString(strings.Join(on, " AND "))
	if len(set) > 0 {
		b.WriteString("\nWHEN MATCHED THEN UPDATE SET ")
		b.WriteString(strings.Join(set, ", "))
	}
	b.WriteString("\nWHEN NOT MATCHED THEN INSERT (")
	b.WriteString(strings.Join(cols, ", "))
	b.WriteString(") VALUES (")
	b.WriteString(strings.Join(vals, ", "))
	b.WriteString(");")
	return statement{sql: b.String(), args: args}, nil
}

// deleteByKey deletes the row with r's key; a missing row is no error.
func deleteByKey(t *tableInfo, r *change.Record, ctxMarker []byte) (statement, error) {
	args := []any{ctxMarker}
	var where []string
	for _, k := range r.Key {
		ct, ok := t.columns[k.Name]
		if !ok {
			return statement{}, fmt.Errorf("%s: %w: %s", t.quoted, errNoColumn, k.Name)
		}
		p, err := param(ct, k.Value)
		if err != nil {
			return statement{}, fmt.Errorf("column %s: %w", k.Name, err)
		}
		args = append(args, p)
		where = append(where, fmt.Sprintf("%s = CAST(@p%d AS %s)", quoteName(k.Name), len(args), ct.spec))
	}
	return statement{
		sql:  "WITH CHANGE_TRACKING_CONTEXT (@p1)\nDELETE FROM " + t.quoted + "\nWHERE " + strings.Join(where, " AND ") + ";",
		args: args,
	}, nil
}

func isKey(k change.Key, name string) bool {
	for _, c := range k {
		if c.Name == name {
			return true
		}
	}
	return false
}
