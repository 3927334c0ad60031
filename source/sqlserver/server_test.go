package sqlserver

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-sql/civil"
	mssql "github.com/microsoft/go-mssqldb"

	"github.com/dvsync/dvsync/internal/tdsfake"
)

// server is a scripted SQL Server for the source's tests. It holds a
// database's state (tables, their rows, change tracking versions and
// changes, CDC change rows) and answers each statement the source sends
// from it, with result sets typed as SQL Server types them. The same
// answers reach the source in two ways: directly through the queryer
// interface (memDB, values as go-mssqldb returns them), and over TDS
// through tdsfake and the real driver.
type server struct {
	mu                sync.Mutex
	name              string
	snapshotIsolation int64
	cdcEnabled        bool
	ctCurrent         *int64 // nil: change tracking off for the database
	maxLSN            []byte
	tables            map[string]*fakeTable // by quoted name
	log               []tdsfake.Request
}

type fakeTable struct {
	name     string // dbo.items
	cols     []tdsfake.Column
	keys     []string // primary key, in key order
	rows     [][]any  // current rows, in key order
	ctMin    *int64   // nil: not tracked
	ct       []ctChange
	instance string
	captured []string
	minLSN   []byte
	cdc      []cdcChange
}

type ctChange struct {
	version, creation int64
	deleted           bool
	context           []byte
	key               []any
}

type cdcChange struct {
	lsn, seqval []byte
	op          int64
	row         []any // captured columns
}

func newServer() *server {
	v := int64(0)
	return &server{name: "sales", snapshotIsolation: 1, cdcEnabled: true, ctCurrent: &v,
		maxLSN: lsn(1, 0), tables: map[string]*fakeTable{}}
}

// lsn builds a binary(10) LSN (or seqval) from a transaction number and
// a statement number.
func lsn(tx, stmt int) []byte {
	b := make([]byte, 10)
	b[3], b[7], b[9] = byte(tx>>8), byte(tx), byte(stmt)
	b[2] = byte(tx >> 16)
	return b
}

// addTable adds a table with change tracking on (at version 0) and a
// capture instance dbo_items capturing every column.
func (s *server) addTable(name string, cols []tdsfake.Column, keys ...string) *fakeTable {
	s.mu.Lock()
	defer s.mu.Unlock()
	zero := int64(0)
	t := &fakeTable{name: name, cols: cols, keys: keys, ctMin: &zero,
		instance: strings.Replace(name, ".", "_", 1), minLSN: lsn(1, 0)}
	for _, c := range cols {
		t.captured = append(t.captured, c.Name)
	}
	s.tables[quoteTable(name)] = t
	return t
}

func (t *fakeTable) col(name string) int {
	return slices.IndexFunc(t.cols, func(c tdsfake.Column) bool { return c.Name == name })
}

func (t *fakeTable) keyOf(row []any) []any {
	k := make([]any, len(t.keys))
	for i, n := range t.keys {
		k[i] = row[t.col(n)]
	}
	return k
}

func (t *fakeTable) find(key []any) int {
	for i, r := range t.rows {
		if compareKeys(t.keyOf(r), key) == 0 {
			return i
		}
	}
	return -1
}

// write commits one transaction of row changes: op I, U or D with the
// full row (D needs only the key columns filled). It bumps the change
// tracking version and the maximum LSN, and records both kinds of
// change.
func (s *server) write(table string, context []byte, changes ...fakeChange) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[quoteTable(table)]
	*s.ctCurrent++
	v := *s.ctCurrent
	tx := int(s.maxLSN[2])<<16 | int(s.maxLSN[3])<<8 | int(s.maxLSN[7]) + 1
	s.maxLSN = lsn(tx, 0)
	for i, c := range changes {
		key := t.keyOf(c.row)
		at := t.find(key)
		seq := lsn(tx, i+1)
		captured := func(row []any) []any {
			out := make([]any, len(t.captured))
			for j, n := range t.captured {
				if k := t.col(n); k >= 0 {
					out[j] = row[k]
				}
			}
			return out
		}
		switch c.op {
		case "I":
			t.rows = append(t.rows, c.row)
			t.cdc = append(t.cdc, cdcChange{s.maxLSN, seq, cdcInsert, captured(c.row)})
		case "U":
			old := t.rows[at]
			t.rows[at] = c.row
			t.cdc = append(t.cdc, cdcChange{s.maxLSN, seq, cdcUpdateBefore, captured(old)},
				cdcChange{s.maxLSN, seq, cdcUpdateAfter, captured(c.row)})
		case "D":
			t.cdc = append(t.cdc, cdcChange{s.maxLSN, seq, cdcDelete, captured(t.rows[at])})
			t.rows = slices.Delete(t.rows, at, at+1)
		}
		slices.SortFunc(t.rows, func(a, b []any) int { return compareKeys(t.keyOf(a), t.keyOf(b)) })
		// Change tracking keeps one net change per key: its last
		// version, the version that inserted it, and whether it is gone.
		creation := v
		if i := slices.IndexFunc(t.ct, func(x ctChange) bool { return compareKeys(x.key, key) == 0 }); i >= 0 {
			if c.op != "I" {
				creation = t.ct[i].creation
			}
			t.ct = slices.Delete(t.ct, i, i+1)
		} else if c.op != "I" {
			creation = 0 // inserted before tracking began
		}
		t.ct = append(t.ct, ctChange{version: v, creation: creation, deleted: c.op == "D", context: context, key: key})
	}
}

type fakeChange struct {
	op  string
	row []any
}

func compareKeys(a, b []any) int {
	for i := range a {
		if c := compareValues(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

func compareValues(a, b any) int {
	switch x := a.(type) {
	case int64:
		y, _ := toInt64(b)
		return int(max(-1, min(1, x-y)))
	case string:
		return strings.Compare(x, fmt.Sprint(b))
	case [16]byte:
		y, _ := b.([16]byte)
		return bytes.Compare(x[:], y[:])
	}
	panic(fmt.Sprintf("compare %T", a))
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	}
	return 0, false
}

var (
	tInt    = tdsfake.Int
	tBig    = tdsfake.BigInt
	tText   = tdsfake.NVarChar(128)
	tLSN    = tdsfake.Binary(10)
	tBinary = tdsfake.VarBinary(128)
)

func result(cols []tdsfake.Column, rows ...[]any) []tdsfake.Result {
	return []tdsfake.Result{{Columns: cols, Rows: rows}}
}

// handle answers one request.
func (s *server) handle(req tdsfake.Request) ([]tdsfake.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, req)
	p := func(i int) any { return req.Params[i].Value }
	q := req.SQL
	switch {
	case strings.HasSuffix(q, "TRANSACTION"):
		return nil, nil
	case q == databaseSQL:
		return result([]tdsfake.Column{{Name: "name", Type: tText}, {Name: "snapshot_isolation_state", Type: tInt}, {Name: "is_cdc_enabled", Type: tdsfake.Bit}},
			[]any{s.name, s.snapshotIsolation, s.cdcEnabled}), nil
	case q == columnsSQL:
		cols := []tdsfake.Column{{Name: "name", Type: tText}, {Name: "key_ordinal", Type: tInt}}
		t := s.tables[p(0).(string)]
		if t == nil {
			return result(cols), nil
		}
		var rows [][]any
		for _, c := range t.cols {
			rows = append(rows, []any{c.Name, int64(slices.Index(t.keys, c.Name) + 1)})
		}
		return result(cols, rows...), nil
	case q == capturedSQL:
		cols := []tdsfake.Column{{Name: "column_name", Type: tText}}
		var rows [][]any
		for _, t := range s.tables {
			if t.instance == p(0) && t.minLSN != nil {
				for _, c := range t.captured {
					rows = append(rows, []any{c})
				}
			}
		}
		return result(cols, rows...), nil
	case q == versionsSQL:
		cols := []tdsfake.Column{{Name: "current_version", Type: tBig}, {Name: "min_valid_version", Type: tBig}}
		row := []any{nil, nil}
		if s.ctCurrent != nil {
			row[0] = *s.ctCurrent
		}
		if t := s.tables[p(0).(string)]; t != nil && t.ctMin != nil {
			row[1] = *t.ctMin
		}
		return result(cols, row), nil
	case q == lsnSQL:
		cols := []tdsfake.Column{{Name: "min_lsn", Type: tLSN}, {Name: "max_lsn", Type: tLSN}}
		minLSN := make([]byte, 10)
		for _, t := range s.tables {
			if t.instance == p(0) && t.minLSN != nil {
				minLSN = t.minLSN
			}
		}
		var maxLSN any
		if s.cdcEnabled {
			maxLSN = s.maxLSN
		}
		return result(cols, []any{minLSN, maxLSN}), nil
	case strings.Contains(q, "FROM CHANGETABLE(CHANGES "):
		return s.ctChanges(q, p(0).(int64), p(1).(int64))
	case strings.Contains(q, "fn_cdc_get_all_changes_"):
		return s.cdcChanges(q, req.Params)
	case strings.HasPrefix(q, "SELECT TOP (@p1) "):
		return s.page(q, req.Params)
	}
	return nil, &tdsfake.Error{Number: 102, Class: 15, Message: "statement not scripted: " + q}
}

// tableIn finds the table a statement reads.
func (s *server) tableIn(q string) *fakeTable {
	for name, t := range s.tables {
		if strings.Contains(q, name+" ") || strings.Contains(q, name+"\n") || strings.HasSuffix(q, name) {
			return t
		}
	}
	return nil
}

func (s *server) ctChanges(q string, from, to int64) ([]tdsfake.Result, error) {
	t := s.tableIn(q)
	if t.ctMin == nil || from < *t.ctMin {
		return nil, &tdsfake.Error{Number: 22105, Message: "Change tracking is not enabled on table, or the version is too old"}
	}
	cols := []tdsfake.Column{{Name: "SYS_CHANGE_VERSION", Type: tBig}, {Name: "SYS_CHANGE_OPERATION", Type: tdsfake.NVarChar(1)}, {Name: "SYS_CHANGE_CONTEXT", Type: tBinary}}
	for _, k := range t.keys {
		cols = append(cols, t.cols[t.col(k)])
	}
	cols = append(cols, t.cols...)
	changes := slices.Clone(t.ct)
	slices.SortFunc(changes, func(a, b ctChange) int {
		if a.version != b.version {
			return int(a.version - b.version)
		}
		return compareKeys(a.key, b.key)
	})
	var rows [][]any
	for _, c := range changes {
		if c.version <= from || c.version > to {
			continue
		}
		var ctx any
		if c.context != nil {
			ctx = c.context
		}
		op := "U"
		switch {
		case c.deleted:
			op = "D"
		case c.creation > from:
			op = "I"
		}
		row := append([]any{c.version, op, ctx}, c.key...)
		if i := t.find(c.key); i >= 0 {
			row = append(row, t.rows[i]...)
		} else {
			row = append(row, make([]any, len(t.cols))...)
		}
		rows = append(rows, row)
	}
	return result(cols, rows...), nil
}

func (s *server) cdcChanges(q string, params []tdsfake.Param) ([]tdsfake.Result, error) {
	var t *fakeTable
	for _, x := range s.tables {
		if strings.Contains(q, "[fn_cdc_get_all_changes_"+x.instance+"]") {
			t = x
		}
	}
	top := params[0].Value.(int64)
	from, to := params[1].Value.([]byte), params[2].Value.([]byte)
	seq, op := params[3].Value.([]byte), params[4].Value.(int64)
	if bytes.Compare(from, t.minLSN) < 0 || bytes.Compare(from, to) > 0 {
		return nil, &tdsfake.Error{Number: 313, Message: "An insufficient number of arguments were supplied for the procedure or function cdc.fn_cdc_get_all_changes_ ..."}
	}
	cols := []tdsfake.Column{{Name: "__$start_lsn", Type: tLSN}, {Name: "__$seqval", Type: tLSN}, {Name: "__$operation", Type: tInt}}
	for _, c := range t.captured {
		if i := t.col(c); i >= 0 {
			cols = append(cols, t.cols[i])
		} else {
			cols = append(cols, tdsfake.Column{Name: c, Type: tText})
		}
	}
	var rows [][]any
	for _, c := range t.cdc {
		after := bytes.Compare(c.lsn, from) > 0 || bytes.Equal(c.lsn, from) &&
			(bytes.Compare(c.seqval, seq) > 0 || bytes.Equal(c.seqval, seq) && c.op > op)
		if !after || bytes.Compare(c.lsn, to) > 0 {
			continue
		}
		if int64(len(rows)) == top {
			break
		}
		rows = append(rows, append([]any{c.lsn, c.seqval, c.op}, c.row...))
	}
	return result(cols, rows...), nil
}

func (s *server) page(q string, params []tdsfake.Param) ([]tdsfake.Result, error) {
	t := s.tableIn(q)
	top := params[0].Value.(int64)
	var after []any
	for _, p := range params[1:] {
		after = append(after, p.Value)
	}
	var rows [][]any
	for _, r := range t.rows {
		if after != nil && compareKeys(t.keyOf(r), after) <= 0 {
			continue
		}
		if int64(len(rows)) == top {
			break
		}
		rows = append(rows, r)
	}
	return result(t.cols, rows...), nil
}

// statements returns the statements run so far, in order.
func (s *server) statements() []tdsfake.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// memDB is the server as a database: the source's query layer without
// the driver, values converted to what go-mssqldb returns.
type memDB struct {
	srv *server
	tx  uint64
}

func (m *memDB) query(_ context.Context, text string, args []any, fn func([]column, []any) error) error {
	req := tdsfake.Request{SQL: text, RPC: len(args) > 0, Transaction: m.tx}
	if m.tx != 0 {
		req.Isolation = 5
	}
	for i, a := range args {
		req.Params = append(req.Params, tdsfake.Param{Name: fmt.Sprintf("@p%d", i+1), Value: paramToNatural(a)})
	}
	results, err := m.srv.handle(req)
	if err != nil {
		return err
	}
	for _, r := range results {
		cols := make([]column, len(r.Columns))
		for i, c := range r.Columns {
			cols[i] = column{Name: c.Name, Type: typeName(c.Type)}
		}
		for _, row := range r.Rows {
			vals := make([]any, len(row))
			for i, v := range row {
				vals[i] = driverValue(r.Columns[i].Type, v)
			}
			if err := fn(cols, vals); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memDB) snapshot(ctx context.Context, fn func(queryer) error) error {
	tx := &memDB{srv: m.srv, tx: 1}
	if _, err := m.srv.handle(tdsfake.Request{SQL: "BEGIN TRANSACTION", Transaction: 1, Isolation: 5}); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	_, err := m.srv.handle(tdsfake.Request{SQL: "COMMIT TRANSACTION", Transaction: 1, Isolation: 5})
	return err
}

func (m *memDB) close() error { return nil }

// paramToNatural converts a parameter the source passes to the driver to
// the value tdsfake decodes from the wire.
func paramToNatural(a any) any {
	switch v := a.(type) {
	case civil.Date:
		return v.In(time.UTC)
	case mssql.UniqueIdentifier:
		return [16]byte(v)
	}
	return a
}

// typeName is go-mssqldb's DatabaseTypeName of a result column type.
func typeName(t tdsfake.Type) string {
	switch t {
	case tdsfake.TinyInt:
		return "TINYINT"
	case tdsfake.SmallInt:
		return "SMALLINT"
	case tdsfake.Int:
		return "INT"
	case tdsfake.BigInt:
		return "BIGINT"
	case tdsfake.Bit:
		return "BIT"
	case tdsfake.Real:
		return "REAL"
	case tdsfake.Float:
		return "FLOAT"
	case tdsfake.Money:
		return "MONEY"
	case tdsfake.UniqueIdentifier:
		return "UNIQUEIDENTIFIER"
	case tdsfake.Date:
		return "DATE"
	}
	switch t.ID {
	case tdsfake.NVarCharMax.ID:
		return "NVARCHAR"
	case tdsfake.VarBinaryMax.ID:
		return "VARBINARY"
	case tdsfake.Binary(1).ID:
		return "BINARY"
	case tdsfake.Decimal(1, 0).ID:
		return "DECIMAL"
	case tdsfake.DateTime2(0).ID:
		return "DATETIME2"
	case tdsfake.DateTimeOffset(0).ID:
		return "DATETIMEOFFSET"
	case tdsfake.Time(0).ID:
		return "TIME"
	}
	panic(fmt.Sprintf("type %+v", t))
}

// driverValue is what go-mssqldb returns for v in a column of type t.
func driverValue(t tdsfake.Type, v any) any {
	if v == nil {
		return nil
	}
	switch x := v.(type) {
	case [16]byte:
		return []byte{x[3], x[2], x[1], x[0], x[5], x[4], x[7], x[6], x[8], x[9], x[10], x[11], x[12], x[13], x[14], x[15]}
	case string:
		switch typeName(t) {
		case "DECIMAL", "MONEY":
			return []byte(x)
		}
	case int:
		return int64(x)
	}
	return v
}
