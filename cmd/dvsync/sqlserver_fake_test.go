package main

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/dvsync/dvsync/internal/tdsfake"
)

// fakeERP is a SQL Server database for the end-to-end tests: the
// dbo.Customers table of deploy/examples/sqlserver, with change tracking,
// served over TDS by tdsfake so that the dvsync child process reaches it
// with the real driver. It keeps the table's rows and change tracking's
// net change per key, and answers the statements the SQL Server source
// sends in change tracking mode from them, typed as SQL Server types
// them. Statements are recognised by their shape, not their exact text:
// the test checks behaviour, and the source's own tests check its SQL.
type fakeERP struct {
	srv *tdsfake.Server

	mu       sync.Mutex
	version  int64 // CHANGE_TRACKING_CURRENT_VERSION()
	minValid int64 // CHANGE_TRACKING_MIN_VALID_VERSION of the table
	rows     [][]any
	changes  []erpChange
	// pages are the page queries answered, each as the key it read
	// after, -1 for a read from the first row.
	pages []int64
	// beforePage, when set, runs before each page query is answered,
	// with the number of pages answered so far; it may change the table.
	beforePage func(f *fakeERP, answered int)
	// writes are the contexts of the sink's MERGE and DELETE statements.
	writes []string
}

// erpChange is change tracking's net change of one key.
type erpChange struct {
	id, version, creation int64
	deleted               bool
	context               []byte
}

const erpTable = "[dbo].[Customers]"

var erpColumns = []tdsfake.Column{
	{Name: "CustomerID", Type: tdsfake.Int},
	{Name: "Name", Type: tdsfake.NVarChar(160)},
	{Name: "Email", Type: tdsfake.NVarChar(100)},
	{Name: "CreditLimit", Type: tdsfake.Decimal(12, 2)},
	{Name: "Employees", Type: tdsfake.Int},
}

func startFakeERP(t *testing.T) *fakeERP {
	t.Helper()
	f := &fakeERP{}
	srv, err := tdsfake.Start(f.handle)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	t.Cleanup(func() {
		_ = srv.Close()
		if err := srv.Err(); err != nil {
			t.Errorf("TDS protocol error: %v", err)
		}
	})
	return f
}

// onPage sets the function run before each page query is answered.
func (f *fakeERP) onPage(fn func(f *fakeERP, answered int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.beforePage = fn
}

// dsn is the connection string of the fake's database.
func (f *fakeERP) dsn() string { return f.srv.DSN("erp") }

// customer is a row: id, name, email (nil for NULL), credit limit as
// exact text (nil for NULL), employees (nil for NULL).
func customer(id int64, name string, email, credit, employees any) []any {
	return []any{id, name, email, credit, employees}
}

// upsert commits one transaction writing rows, under the given change
// tracking context (nil for none).
func (f *fakeERP) upsert(context []byte, rows ...[]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	for _, r := range rows {
		id := r[0].(int64)
		creation := f.version
		if i := f.find(id); i >= 0 {
			f.rows[i] = r
			creation = 0 // existed before: an update
		} else {
			f.rows = append(f.rows, r)
		}
		f.track(id, creation, false, context)
	}
	slices.SortFunc(f.rows, func(a, b []any) int { return int(a[0].(int64) - b[0].(int64)) })
}

// delete commits one transaction deleting the rows with the given ids.
func (f *fakeERP) delete(ids ...int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.version++
	for _, id := range ids {
		if i := f.find(id); i >= 0 {
			f.rows = slices.Delete(f.rows, i, i+1)
		}
		f.track(id, 0, true, nil)
	}
}

// cleanup is change tracking's cleanup removing every change made so
// far: the minimum valid version moves to the current one.
func (f *fakeERP) cleanup() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.minValid = f.version
	f.changes = slices.DeleteFunc(f.changes, func(c erpChange) bool { return c.version < f.minValid })
}

func (f *fakeERP) find(id int64) int {
	return slices.IndexFunc(f.rows, func(r []any) bool { return r[0].(int64) == id })
}

// track records the net change of id at the current version; creation
// is the version that inserted the row (0: before the last change).
func (f *fakeERP) track(id, creation int64, deleted bool, context []byte) {
	if i := slices.IndexFunc(f.changes, func(c erpChange) bool { return c.id == id }); i >= 0 {
		if creation == 0 {
			creation = f.changes[i].creation
		}
		f.changes = slices.Delete(f.changes, i, i+1)
	}
	f.changes = append(f.changes, erpChange{id: id, version: f.version, creation: creation, deleted: deleted, context: context})
}

// want renders the rows as the e2e tests render accounts:
// name|email|phone|credit|employees by account number.
func (f *fakeERP) want() map[string]row {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]row{}
	for _, r := range f.rows {
		credit := "null"
		if r[3] != nil {
			v, _ := strconv.ParseFloat(r[3].(string), 64)
			credit = fmt.Sprintf("%.2f", v)
		}
		text := func(v any) string {
			if v == nil {
				return "null"
			}
			return fmt.Sprint(v)
		}
		out[strconv.FormatInt(r[0].(int64), 10)] = strings.Join([]string{r[1].(string), text(r[2]), "null", credit, text(r[4])}, "|")
	}
	return out
}

// pageLog returns the page queries answered so far, each as the key it
// read after (-1: from the first row).
func (f *fakeERP) pageLog() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.pages)
}

func one(cols []tdsfake.Column, rows ...[]any) []tdsfake.Result {
	return []tdsfake.Result{{Columns: cols, Rows: rows}}
}

// handle answers one statement of the source.
func (f *fakeERP) handle(req tdsfake.Request) ([]tdsfake.Result, error) {
	q := req.SQL
	if strings.HasPrefix(q, "SELECT TOP (@p1) ") {
		f.mu.Lock()
		hook, answered := f.beforePage, len(f.pages)
		f.mu.Unlock()
		if hook != nil {
			hook(f, answered)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	table := func() error {
		if req.Params[0].Value != erpTable {
			return &tdsfake.Error{Number: 208, Class: 16, Message: fmt.Sprintf("Invalid object name '%v'.", req.Params[0].Value)}
		}
		return nil
	}
	switch {
	case strings.HasSuffix(q, "TRANSACTION"):
		return nil, nil
	case strings.Contains(q, "FROM sys.databases"):
		return one([]tdsfake.Column{{Name: "name", Type: tdsfake.NVarChar(128)}, {Name: "snapshot_isolation_state", Type: tdsfake.Int}, {Name: "is_cdc_enabled", Type: tdsfake.Bit}},
			[]any{"erp", int64(1), false}), nil
	case strings.Contains(q, "key_ordinal") && strings.Contains(q, "sys.columns"):
		if err := table(); err != nil {
			return nil, err
		}
		var rows [][]any
		for _, c := range erpColumns {
			ordinal := int64(0)
			if c.Name == "CustomerID" {
				ordinal = 1
			}
			rows = append(rows, []any{c.Name, ordinal})
		}
		return one([]tdsfake.Column{{Name: "name", Type: tdsfake.NVarChar(128)}, {Name: "key_ordinal", Type: tdsfake.Int}}, rows...), nil
	case strings.Contains(q, "CHANGE_TRACKING_CURRENT_VERSION()"):
		if err := table(); err != nil {
			return nil, err
		}
		return one([]tdsfake.Column{{Name: "current_version", Type: tdsfake.BigInt}, {Name: "min_valid_version", Type: tdsfake.BigInt}},
			[]any{f.version, f.minValid}), nil
	case strings.Contains(q, "FROM CHANGETABLE(CHANGES "+erpTable):
		return f.ctChanges(req.Params[0].Value.(int64), req.Params[1].Value.(int64))
	case strings.HasPrefix(q, "SELECT TOP (@p1) ") && strings.Contains(q, "FROM "+erpTable):
		return f.page(req.Params), nil
	case strings.Contains(q, "TYPE_NAME(c.system_type_id)"):
		if err := table(); err != nil {
			return nil, err
		}
		return one([]tdsfake.Column{{Name: "name", Type: tdsfake.NVarChar(128)}, {Name: "type_name", Type: tdsfake.NVarChar(128)},
			{Name: "max_length", Type: tdsfake.Int}, {Name: "precision", Type: tdsfake.Int}, {Name: "scale", Type: tdsfake.Int}},
			[]any{"CustomerID", "int", int64(4), int64(10), int64(0)},
			[]any{"Name", "nvarchar", int64(320), int64(0), int64(0)},
			[]any{"Email", "nvarchar", int64(200), int64(0), int64(0)},
			[]any{"CreditLimit", "decimal", int64(9), int64(12), int64(2)},
			[]any{"Employees", "int", int64(4), int64(10), int64(0)}), nil
	case strings.HasPrefix(q, "WITH CHANGE_TRACKING_CONTEXT (@p1)\nMERGE INTO "+erpTable+" "):
		return f.merge(q, req.Params)
	case strings.HasPrefix(q, "WITH CHANGE_TRACKING_CONTEXT (@p1)\nDELETE FROM "+erpTable+"\n"):
		return f.deleteStatement(req.Params)
	}
	return nil, &tdsfake.Error{Number: 102, Class: 15, Message: "statement not scripted: " + q}
}

func (f *fakeERP) ctChanges(from, to int64) ([]tdsfake.Result, error) {
	if from < f.minValid {
		return nil, &tdsfake.Error{Number: 22105, Class: 16, Message: "Change tracking version is older than the minimum valid version."}
	}
	cols := append([]tdsfake.Column{{Name: "SYS_CHANGE_VERSION", Type: tdsfake.BigInt}, {Name: "SYS_CHANGE_OPERATION", Type: tdsfake.NVarChar(1)},
		{Name: "SYS_CHANGE_CONTEXT", Type: tdsfake.VarBinary(128)}, erpColumns[0]}, erpColumns...)
	changes := slices.Clone(f.changes)
	slices.SortFunc(changes, func(a, b erpChange) int {
		if a.version != b.version {
			return int(a.version - b.version)
		}
		return int(a.id - b.id)
	})
	var rows [][]any
	for _, c := range changes {
		if c.version <= from || c.version > to {
			continue
		}
		op := "U"
		switch {
		case c.deleted:
			op = "D"
		case c.creation > from:
			op = "I"
		}
		var context any
		if c.context != nil {
			context = c.context
		}
		row := []any{c.version, op, context, c.id}
		if i := f.find(c.id); i >= 0 {
			row = append(row, f.rows[i]...)
		} else {
			row = append(row, make([]any, len(erpColumns))...)
		}
		rows = append(rows, row)
	}
	return one(cols, rows...), nil
}

// page answers a keyset page: @p1 rows after the key @p2, if given.
func (f *fakeERP) page(params []tdsfake.Param) []tdsfake.Result {
	top := params[0].Value.(int64)
	after := int64(-1)
	if len(params) > 1 {
		after = params[1].Value.(int64)
	}
	f.pages = append(f.pages, after)
	var rows [][]any
	for _, r := range f.rows {
		if r[0].(int64) > after && int64(len(rows)) < top {
			rows = append(rows, r)
		}
	}
	return one(erpColumns, rows...)
}

// mergeColumn is one column of a MERGE's source row: CAST(@pN AS type) AS [name].
var mergeColumn = regexp.MustCompile(`CAST\(@p(\d+) AS [a-z0-9]+(?:\([0-9,max]+\))?\) AS \[([^\]]+)\]`)

// merge applies the sink's MERGE of one row: the columns it names are
// set, the others kept (or NULL in a new row); the change is tracked
// under the context @p1.
func (f *fakeERP) merge(q string, params []tdsfake.Param) ([]tdsfake.Result, error) {
	using := q[strings.Index(q, "USING (SELECT "):strings.Index(q, ") AS s\n")]
	set := map[string]any{}
	for _, m := range mergeColumn.FindAllStringSubmatch(using, -1) {
		n, _ := strconv.Atoi(m[1])
		set[m[2]] = castTo(m[2], params[n-1].Value)
	}
	id, ok := set["CustomerID"].(int64)
	if !ok {
		return nil, &tdsfake.Error{Number: 245, Class: 16, Message: fmt.Sprintf("Conversion failed for CustomerID %v.", set["CustomerID"])}
	}
	row := make([]any, len(erpColumns))
	creation := f.version + 1
	if i := f.find(id); i >= 0 {
		row, creation = slices.Clone(f.rows[i]), 0
	}
	for i, c := range erpColumns {
		if v, ok := set[c.Name]; ok {
			row[i] = v
		}
	}
	f.version++
	if i := f.find(id); i >= 0 {
		f.rows[i] = row
	} else {
		f.rows = append(f.rows, row)
		slices.SortFunc(f.rows, func(a, b []any) int { return int(a[0].(int64) - b[0].(int64)) })
	}
	f.track(id, creation, false, params[0].Value.([]byte))
	f.writes = append(f.writes, string(params[0].Value.([]byte)))
	return []tdsfake.Result{{RowsAffected: 1}}, nil
}

// deleteStatement applies the sink's DELETE by key under the context @p1.
func (f *fakeERP) deleteStatement(params []tdsfake.Param) ([]tdsfake.Result, error) {
	id, ok := castTo("CustomerID", params[1].Value).(int64)
	if !ok {
		return nil, &tdsfake.Error{Number: 245, Class: 16, Message: fmt.Sprintf("Conversion failed for CustomerID %v.", params[1].Value)}
	}
	f.version++
	n := int64(0)
	if i := f.find(id); i >= 0 {
		f.rows = slices.Delete(f.rows, i, i+1)
		f.track(id, 0, true, params[0].Value.([]byte))
		n = 1
	}
	f.writes = append(f.writes, string(params[0].Value.([]byte)))
	return []tdsfake.Result{{RowsAffected: n}}, nil
}

// castTo converts a parameter as the CAST to the column's type would:
// text to int for the int columns, a number to decimal text.
func castTo(column string, v any) any {
	switch column {
	case "CustomerID", "Employees":
		if s, ok := v.(string); ok {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return s
			}
			return n
		}
	case "CreditLimit":
		switch x := v.(type) {
		case float64:
			return strconv.FormatFloat(x, 'f', 2, 64)
		case string:
			d, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return x
			}
			return strconv.FormatFloat(d, 'f', 2, 64)
		}
	}
	return v
}

// contexts returns the change tracking context of every write the sink
// made, in order.
func (f *fakeERP) contexts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writes)
}
