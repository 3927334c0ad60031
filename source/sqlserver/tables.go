package sqlserver

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// table is a captured table as the catalog describes it.
type table struct {
	name    string   // as configured and as records carry it: dbo.customers
	quoted  string   // [dbo].[customers]
	columns []string // every column, in column order
	keys    []string // key columns, in key order
	// captured are the columns of the CDC capture instance, in its
	// order; nil in change tracking mode.
	captured []string
	instance string // CDC capture instance
}

// quoteName quotes an identifier for T-SQL: brackets, with a closing
// bracket doubled.
func quoteName(s string) string {
	return "[" + strings.ReplaceAll(s, "]", "]]") + "]"
}

// quoteTable quotes a configured schema.table name, split at its first dot.
func quoteTable(name string) string {
	s, t, _ := strings.Cut(name, ".")
	return quoteName(s) + "." + quoteName(t)
}

// columnsSQL lists a table's columns with their primary key ordinal (0
// when not in the primary key), in column order.
const columnsSQL = `SELECT c.name, CAST(ISNULL(pk.key_ordinal, 0) AS int) AS key_ordinal
FROM sys.columns AS c
LEFT OUTER JOIN (
	SELECT ic.column_id, ic.key_ordinal
	FROM sys.indexes AS i
	JOIN sys.index_columns AS ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
	WHERE i.object_id = OBJECT_ID(@p1) AND i.is_primary_key = 1
) AS pk ON pk.column_id = c.column_id
WHERE c.object_id = OBJECT_ID(@p1)
ORDER BY c.column_id`

// capturedSQL lists the columns of a CDC capture instance.
const capturedSQL = `SELECT cc.column_name
FROM cdc.captured_columns AS cc
JOIN cdc.change_tables AS ct ON ct.object_id = cc.object_id
WHERE ct.capture_instance = @p1
ORDER BY cc.column_ordinal`

// describeTable reads name's columns and key from the catalog. keys, when
// set, replaces the primary key.
func describeTable(ctx context.Context, q queryer, cfg Config, name string) (*table, error) {
	t := &table{name: name, quoted: quoteTable(name)}
	var pk []string
	var ordinals []int64
	err := q.query(ctx, columnsSQL, []any{t.quoted}, func(_ []column, v []any) error {
		col, _ := v[0].(string)
		ord, _ := v[1].(int64)
		t.columns = append(t.columns, col)
		if ord > 0 {
			pk = append(pk, col)
			ordinals = append(ordinals, ord)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlserver: describe %s: %w", name, err)
	}
	if len(t.columns) == 0 {
		return nil, fmt.Errorf("sqlserver: table %s does not exist, or the login cannot see it", name)
	}
	// Key columns in key order, not column order.
	idx := make([]int, len(pk))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return int(ordinals[a] - ordinals[b]) })
	for _, i := range idx {
		t.keys = append(t.keys, pk[i])
	}
	if k := cfg.Keys[name]; k != nil {
		for _, c := range k {
			if !slices.Contains(t.columns, c) {
				return nil, fmt.Errorf("sqlserver: keys: %s has no column %s", name, c)
			}
		}
		t.keys = k
	}
	if len(t.keys) == 0 {
		if cfg.Mode == ModeChangeTracking {
			return nil, fmt.Errorf("sqlserver: table %s has no primary key, which change tracking requires", name)
		}
		return nil, fmt.Errorf("sqlserver: table %s has no primary key; name its key columns under keys", name)
	}
	if cfg.Mode == ModeCDC {
		t.instance = cfg.captureInstance(name)
		err := q.query(ctx, capturedSQL, []any{t.instance}, func(_ []column, v []any) error {
			col, _ := v[0].(string)
			t.captured = append(t.captured, col)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("sqlserver: read capture instance %s: %w", t.instance, err)
		}
		if len(t.captured) == 0 {
			return nil, fmt.Errorf("sqlserver: capture instance %s of table %s does not exist (run sys.sp_cdc_enable_table, or name the instance under capture_instances)", t.instance, name)
		}
		for _, k := range t.keys {
			if !slices.Contains(t.captured, k) {
				return nil, fmt.Errorf("sqlserver: capture instance %s does not capture key column %s of %s", t.instance, k, name)
			}
		}
	}
	return t, nil
}

// mismatch describes how the capture instance's columns differ from the
// table's, or returns "" when they agree. Columns added to the table
// after the instance was created are not captured; columns dropped from
// it come back NULL.
func (t *table) mismatch() string {
	var added, dropped []string
	for _, c := range t.columns {
		if !slices.Contains(t.captured, c) {
			added = append(added, c)
		}
	}
	for _, c := range t.captured {
		if !slices.Contains(t.columns, c) {
			dropped = append(dropped, c)
		}
	}
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "not captured: "+strings.Join(added, ", "))
	}
	if len(dropped) > 0 {
		parts = append(parts, "captured but no longer in the table: "+strings.Join(dropped, ", "))
	}
	return strings.Join(parts, "; ")
}

// selectList quotes cols with an optional alias prefix, comma-separated.
func selectList(prefix string, cols []string) string {
	var b strings.Builder
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(prefix)
		b.WriteString(quoteName(c))
	}
	return b.String()
}
