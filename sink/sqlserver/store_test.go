package sqlserver

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/tdsfake"
)

// store is a scripted SQL Server holding tables in memory. It answers the
// catalog query and the exact MERGE and DELETE statements the sink sends
// (it parses their fixed shape, nothing more), applies them inside the
// client's transactions, and records every statement with its
// transaction and change tracking context.
type store struct {
	mu      sync.Mutex
	tables  map[string]*memTable // by quoted name
	pending map[uint64][]func()  // writes of open transactions
	log     []tdsfake.Request
	// fail, when set, is asked before each MERGE or DELETE is applied and
	// may return an error to raise instead.
	fail func(req tdsfake.Request) error
}

type memTable struct {
	cols    []memCol
	rows    map[string]change.Row // by key text
	notNull map[string]bool
}

type memCol struct {
	name, typ                string
	length, precision, scale int64
}

func newStore() *store {
	return &store{tables: map[string]*memTable{}, pending: map[uint64][]func(){}}
}

func (s *store) addTable(name string, cols []memCol, notNull ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := &memTable{cols: cols, rows: map[string]change.Row{}, notNull: map[string]bool{}}
	for _, n := range notNull {
		t.notNull[n] = true
	}
	s.tables[quoteTable(name)] = t
}

var (
	mergeRE  = regexp.MustCompile(`(?s)^WITH CHANGE_TRACKING_CONTEXT \(@p1\)\nMERGE INTO (.+?) WITH \(HOLDLOCK\) AS t\nUSING \(SELECT (.+)\) AS s\nON (.+?)\n(WHEN MATCHED THEN UPDATE SET .+?\n)?WHEN NOT MATCHED THEN INSERT \(.+\) VALUES \(.+\);$`)
	castRE   = regexp.MustCompile(`CAST\(@p(\d+) AS ([a-z0-9]+(?:\([0-9a-z,]+\))?)\) AS \[([^\]]+)\]`)
	onRE     = regexp.MustCompile(`t\.\[([^\]]+)\] = s\.`)
	lockRE   = regexp.MustCompile(`(?s)^SELECT (.+) FROM (.+?) WITH \(UPDLOCK, HOLDLOCK\)\nWHERE (.+)$`)
	deleteRE = regexp.MustCompile(`(?s)^WITH CHANGE_TRACKING_CONTEXT \(@p1\)\nDELETE FROM (.+?)\nWHERE (.+);$`)
	whereRE  = regexp.MustCompile(`\[([^\]]+)\] = CAST\(@p(\d+) AS ([a-z0-9]+(?:\([0-9a-z,]+\))?)\)`)
)

func (s *store) handle(req tdsfake.Request) ([]tdsfake.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, req)
	switch req.SQL {
	case "BEGIN TRANSACTION":
		return nil, nil
	case "COMMIT TRANSACTION":
		for _, w := range s.pending[req.Transaction] {
			w()
		}
		delete(s.pending, req.Transaction)
		return nil, nil
	case "ROLLBACK TRANSACTION":
		delete(s.pending, req.Transaction)
		return nil, nil
	case columnsSQL:
		cols := []tdsfake.Column{{Name: "name", Type: tdsfake.NVarChar(128)}, {Name: "type_name", Type: tdsfake.NVarChar(128)},
			{Name: "max_length", Type: tdsfake.Int}, {Name: "precision", Type: tdsfake.Int}, {Name: "scale", Type: tdsfake.Int}}
		var rows [][]any
		if t := s.tables[req.Params[0].Value.(string)]; t != nil {
			for _, c := range t.cols {
				rows = append(rows, []any{c.name, c.typ, c.length, c.precision, c.scale})
			}
		}
		return []tdsfake.Result{{Columns: cols, Rows: rows}}, nil
	}
	if s.fail != nil {
		if err := s.fail(req); err != nil {
			return nil, err
		}
	}
	if m := mergeRE.FindStringSubmatch(req.SQL); m != nil {
		t := s.tables[m[1]]
		if t == nil {
			return nil, &tdsfake.Error{Number: 208, Message: "Invalid object name '" + m[1] + "'."}
		}
		var row change.Row
		for _, c := range castRE.FindAllStringSubmatch(m[2], -1) {
			n, _ := strconv.Atoi(c[1])
			v, err := t.cast(c[3], c[2], req.Params[n-1].Value)
			if err != nil {
				return nil, err
			}
			row = append(row, change.Column{Name: c[3], Value: v})
		}
		var keys []string
		for _, k := range onRE.FindAllStringSubmatch(m[3], -1) {
			keys = append(keys, k[1])
		}
		key := keyText(row, keys)
		update := m[4] != ""
		s.apply(req.Transaction, func() {
			if old, ok := t.rows[key]; ok {
				if update {
					for _, c := range row {
						old = old.Set(c.Name, c.Value)
					}
					t.rows[key] = old
				}
				return
			}
			full := change.Row{}
			for _, c := range t.cols {
				v, ok := row.Get(c.name)
				if !ok {
					v = change.Null()
				}
				full = append(full, change.Column{Name: c.name, Value: v})
			}
			t.rows[key] = full
		})
		return []tdsfake.Result{{RowsAffected: 1}}, nil
	}
	if m := lockRE.FindStringSubmatch(req.SQL); m != nil {
		return s.lockedRead(m[2], m[3], req.Params)
	}
	if m := deleteRE.FindStringSubmatch(req.SQL); m != nil {
		t := s.tables[m[1]]
		if t == nil {
			return nil, &tdsfake.Error{Number: 208, Message: "Invalid object name '" + m[1] + "'."}
		}
		var row change.Row
		var keys []string
		for _, c := range whereRE.FindAllStringSubmatch(m[2], -1) {
			n, _ := strconv.Atoi(c[2])
			v, err := t.cast(c[1], c[3], req.Params[n-1].Value)
			if err != nil {
				return nil, err
			}
			row = append(row, change.Column{Name: c[1], Value: v})
			keys = append(keys, c[1])
		}
		key := keyText(row, keys)
		s.apply(req.Transaction, func() { delete(t.rows, key) })
		return []tdsfake.Result{{RowsAffected: 1}}, nil
	}
	return nil, &tdsfake.Error{Number: 102, Class: 15, Message: "statement not scripted: " + req.SQL}
}

// lockedRead answers the conditional write's read of one row by key.
func (s *store) lockedRead(table, where string, params []tdsfake.Param) ([]tdsfake.Result, error) {
	t := s.tables[table]
	var row change.Row
	var keys []string
	for _, c := range whereRE.FindAllStringSubmatch(where, -1) {
		n, _ := strconv.Atoi(c[2])
		v, err := t.cast(c[1], c[3], params[n-1].Value)
		if err != nil {
			return nil, err
		}
		row = append(row, change.Column{Name: c[1], Value: v})
		keys = append(keys, c[1])
	}
	var cols []tdsfake.Column
	for _, c := range t.cols {
		cols = append(cols, tdsfake.Column{Name: c.name, Type: c.wireType()})
	}
	res := tdsfake.Result{Columns: cols}
	if found, ok := t.rows[keyText(row, keys)]; ok {
		var vals []any
		for _, c := range found {
			vals = append(vals, natural(c.Value))
		}
		res.Rows = [][]any{vals}
	}
	return []tdsfake.Result{res}, nil
}

func (c memCol) wireType() tdsfake.Type {
	switch c.typ {
	case "bigint":
		return tdsfake.BigInt
	case "int":
		return tdsfake.Int
	case "float":
		return tdsfake.Float
	case "bit":
		return tdsfake.Bit
	case "decimal":
		return tdsfake.Decimal(uint8(c.precision), uint8(c.scale))
	case "datetimeoffset":
		return tdsfake.DateTimeOffset(uint8(c.scale))
	case "datetime2":
		return tdsfake.DateTime2(uint8(c.scale))
	case "date":
		return tdsfake.Date
	case "uniqueidentifier":
		return tdsfake.UniqueIdentifier
	case "nvarchar":
		if c.length < 0 {
			return tdsfake.NVarCharMax
		}
		return tdsfake.NVarChar(int(c.length / 2))
	case "varbinary":
		if c.length < 0 {
			return tdsfake.VarBinaryMax
		}
		return tdsfake.VarBinary(int(c.length))
	}
	panic(c.typ)
}

// natural is a stored value as tdsfake sends it.
func natural(v change.Value) any {
	switch v.Kind() {
	case change.KindInt:
		return v.Int()
	case change.KindText, change.KindJSON:
		return v.String()
	case change.KindDecimal:
		return v.Decimal()
	case change.KindFloat:
		return v.Float()
	case change.KindBool:
		return v.Bool()
	case change.KindTimestamp, change.KindDate:
		return v.Time()
	case change.KindUUID:
		return v.UUID()
	case change.KindBytes:
		return v.Bytes()
	}
	return nil
}

func (s *store) apply(tx uint64, w func()) {
	if tx == 0 {
		w()
		return
	}
	s.pending[tx] = append(s.pending[tx], w)
}

func keyText(row change.Row, keys []string) string {
	var b strings.Builder
	for _, k := range keys {
		v, _ := row.Get(k)
		b.WriteString(v.String())
		b.WriteByte(0)
	}
	return b.String()
}

// cast converts a parameter to a column's type as CAST would, checking
// that the statement casts to the column's declared type.
func (t *memTable) cast(col, spec string, v any) (change.Value, error) {
	i := slices.IndexFunc(t.cols, func(c memCol) bool { return c.name == col })
	if i < 0 {
		return change.Value{}, &tdsfake.Error{Number: 207, Message: "Invalid column name '" + col + "'."}
	}
	c := t.cols[i]
	if want := typeSpec(c.typ, c.length, c.precision, c.scale); spec != want {
		return change.Value{}, fmt.Errorf("cast of %s to %s, declared %s", col, spec, want)
	}
	if v == nil {
		if t.notNull[col] {
			return change.Value{}, &tdsfake.Error{Number: 515, Message: "Cannot insert the value NULL into column '" + col + "'."}
		}
		return change.Null(), nil
	}
	bad := &tdsfake.Error{Number: 245, Message: fmt.Sprintf("Conversion failed converting %T to %s.", v, spec)}
	switch c.typ {
	case "bigint", "int":
		if n, ok := v.(int64); ok {
			return change.Int(n), nil
		}
	case "nvarchar":
		if s, ok := v.(string); ok {
			return change.Text(s), nil
		}
	case "decimal":
		if s, ok := v.(string); ok {
			return change.Decimal(s)
		}
	case "float":
		if f, ok := v.(float64); ok {
			return change.Float(f), nil
		}
	case "bit":
		if b, ok := v.(bool); ok {
			return change.Bool(b), nil
		}
	case "datetimeoffset", "datetime2":
		if tm, ok := v.(time.Time); ok {
			return change.Timestamp(tm), nil
		}
	case "date":
		if tm, ok := v.(time.Time); ok {
			return change.Date(tm), nil
		}
	case "uniqueidentifier":
		if u, ok := v.([16]byte); ok {
			return change.UUID(u), nil
		}
	case "varbinary":
		if b, ok := v.([]byte); ok {
			return change.Bytes(b), nil
		}
	}
	return change.Value{}, bad
}

func (s *store) read(table string, key change.Key) (change.Row, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[quoteTable(table)]
	var names []string
	for _, c := range key {
		names = append(names, c.Name)
	}
	row, ok := t.rows[keyText(change.Row(key), names)]
	return row.Clone(), ok
}

func (s *store) statements() []tdsfake.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// startStore serves st over TDS and returns a DSN for it.
func startStore(t *testing.T, st *store) string {
	t.Helper()
	srv, err := tdsfake.Start(st.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Close()
		if err := srv.Err(); err != nil {
			t.Errorf("TDS protocol error: %v", err)
		}
	})
	return srv.DSN("sales")
}
