package mapping

import (
	"cmp"
	"errors"
	"maps"
	"slices"
	"strconv"

	"github.com/google/uuid"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/yamlfile"
)

// Set is a compiled group of mappings, indexed by connection and source
// table. It is immutable and safe for concurrent use.
type Set struct {
	mappers    map[string]*Mapper
	conns      []string // connections read, flowing to Dataverse
	back       []string // connections written, flowing from Dataverse
	entitySets map[string]string
	mappings   []*Mapping
}

// Mapper applies the mappings of one connection. It is immutable and safe
// for concurrent use; a nil *Mapper maps nothing.
type Mapper struct {
	plans    map[string]*plan // by source table, mappings to Dataverse
	byTarget map[string]*plan // by Dataverse table, mappings from Dataverse
	tables   []string
	keys     map[string][]string // Source.Key by source table, when given
}

// keyMode is how a plan addresses Dataverse rows.
type keyMode uint8

const (
	byAlternateKey keyMode = iota
	byUUID5
	byIDColumn
)

// plan is one mapping, precomputed for Map and MapToSource.
type plan struct {
	file        string
	sourceTable string
	table       string // Dataverse logical name
	deletes     Deletes
	truncate    Truncate
	filter      *program
	cols        []colPlan
	// bySource gives the first column, flowing to Dataverse, reading each
	// source column; further ones follow colPlan.next. Looking up each
	// source column once keeps Map linear in the row's width.
	bySource map[string]int
	// computed are the columns with an expression or a constant.
	computed []int
	// keys are the indexes in cols of the alternate key's attributes, in
	// the key's order.
	keys []int

	mode      keyMode
	idAttr    string    // the primary id attribute, for byUUID5 and byIDColumn
	idSource  string    // the source column holding the id, for byIDColumn
	idCol     colPlan   // reads idSource, for byIDColumn
	namespace uuid.UUID // for byUUID5

	// soft is written by a soft delete; softFlag, when set, is written
	// false by every upsert.
	soft     change.Row
	softFlag string

	// byAttr gives the columns flowing from Dataverse, by attribute.
	byAttr map[string]int
}

type colPlan struct {
	source, target string
	out            string // the output column's name: target, or target@odata.bind
	typ            AttributeType
	conv           converter // nil: pass through
	next           int       // next column reading the same source, or -1
	key            int       // position in the alternate key, or -1

	expr     *program
	constant *change.Value // the converted constant
	def      *change.Value // the NULL replacement, before conversion
	choice   *choicePlan
	lookup   *lookupPlan
}

// Compile validates the mappings, each on its own and against each other
// (see LoadFiles), compiles their expressions and resolves their lookups,
// and builds a Set. Problems name the mapping files and lines. The Set
// keeps the Mappings; they must not be modified afterwards.
func Compile(ms []*Mapping) (*Set, error) {
	var errs []error
	valid := make([]*Mapping, 0, len(ms))
	for _, m := range ms {
		if err := m.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		valid = append(valid, m)
	}
	var ps yamlfile.Problems
	crossCheck(valid, &ps)
	if err := errors.Join(append(errs, ps.Err())...); err != nil {
		return nil, err
	}

	s := &Set{mappers: map[string]*Mapper{}, entitySets: map[string]string{}}
	parents := parentIndex{sets: s.entitySets, namespaces: map[string]string{}}
	for _, m := range valid {
		if m.Dataverse.EntitySet != "" {
			s.entitySets[m.Dataverse.Table] = m.Dataverse.EntitySet
		}
		if ns := m.Key.ID.UUID5.Namespace; ns != "" {
			if old, seen := parents.namespaces[m.Dataverse.Table]; seen && old != ns {
				ns = "" // mappings disagree: a uuid5 lookup cannot know which
			}
			parents.namespaces[m.Dataverse.Table] = ns
		}
	}
	for _, m := range valid {
		var mine yamlfile.Problems
		p := newPlan(m, parents, &mine)
		if len(mine) > 0 {
			m.locate(mine)
			errs = append(errs, mine.Err())
			continue
		}
		mp := s.mappers[m.Source.Connection]
		if mp == nil {
			mp = &Mapper{plans: map[string]*plan{}, byTarget: map[string]*plan{}}
			s.mappers[m.Source.Connection] = mp
		}
		if m.Direction.toDataverse() {
			mp.plans[m.Source.SourceName()] = p
			mp.tables = append(mp.tables, m.Source.SourceName())
			if len(m.Source.Key) > 0 {
				if mp.keys == nil {
					mp.keys = map[string][]string{}
				}
				mp.keys[m.Source.SourceName()] = m.Source.Key
			}
		}
		if m.Direction.fromDataverse() {
			mp.byTarget[m.Dataverse.Table] = p
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for conn, mp := range s.mappers {
		slices.Sort(mp.tables)
		if len(mp.tables) > 0 {
			s.conns = append(s.conns, conn)
		}
		if len(mp.byTarget) > 0 {
			s.back = append(s.back, conn)
		}
	}
	slices.Sort(s.conns)
	slices.Sort(s.back)
	s.mappings = ms
	return s, nil
}

// parentIndex is what lookups learn from the mappings of their parents:
// entity sets, and the namespaces of derived ids ("" where mappings of one
// table disagree), by Dataverse table.
type parentIndex struct {
	sets, namespaces map[string]string
}

// newPlan compiles one valid mapping; parents serves its lookups. Problems that only compiling finds (an
// expression that does not type-check, a constant that does not convert,
// a lookup without an entity set) go to ps.
func newPlan(m *Mapping, parents parentIndex, ps *yamlfile.Problems) *plan {
	p := &plan{
		file:        m.File,
		sourceTable: m.Source.SourceName(),
		table:       m.Dataverse.Table,
		deletes:     m.Deletes,
		truncate:    m.Truncate,
		cols:        make([]colPlan, len(m.Columns)),
		bySource:    make(map[string]int, len(m.Columns)),
		byAttr:      map[string]int{},
		keys:        make([]int, len(m.Key.AlternateKey)),
	}
	if m.Filter != "" {
		prog, err := compileExpr(m.Filter)
		if err != nil {
			ps.Add("filter", "%v", err)
		}
		p.filter = prog
	}
	last := map[string]int{}
	for i := range m.Columns {
		c := &m.Columns[i]
		path := "columns[" + strconv.Itoa(i) + "]"
		col := &p.cols[i]
		*col = colPlan{source: c.Source, target: c.Target, out: c.Target, typ: c.Type, conv: converterFor(c.Type), next: -1, key: -1}
		compileColumn(c, col, path, parents, ps)
		dir := m.direction(c)
		if dir.fromDataverse() {
			p.byAttr[c.Target] = i
		}
		if !dir.toDataverse() {
			continue
		}
		if c.Source == "" {
			p.computed = append(p.computed, i)
			continue
		}
		if j, seen := last[c.Source]; seen {
			p.cols[j].next = i
		} else {
			p.bySource[c.Source] = i
		}
		last[c.Source] = i
	}
	for k, attr := range m.Key.AlternateKey {
		i := slices.IndexFunc(m.Columns, func(c Column) bool { return c.Target == attr })
		p.keys[k] = i
		p.cols[i].key = k
	}
	if id := m.Key.ID; id.given() {
		p.idAttr = cmp.Or(id.Attribute, m.Dataverse.Table+"id")
		if id.Column != "" {
			p.mode, p.idSource = byIDColumn, id.Column
			p.idCol = colPlan{source: id.Column, target: p.idAttr, typ: TypeUniqueIdentifier, conv: toUUID, next: -1, key: 0}
		} else {
			p.mode = byUUID5
			u, _ := change.ParseUUID(id.UUID5.Namespace)
			p.namespace = u.UUID()
		}
	}
	for _, a := range sortedKeys(m.Soft.Set) {
		p.soft = append(p.soft, change.Column{Name: a, Value: change.Int(int64(m.Soft.Set[a]))})
	}
	if m.Soft.Column != "" {
		p.softFlag = m.Soft.Column
		p.soft = append(p.soft, change.Column{Name: m.Soft.Column, Value: change.Bool(true)})
	}
	return p
}

// compileColumn compiles a column's expression, converts its constant and
// default, and builds its choice map and lookup.
func compileColumn(c *Column, col *colPlan, path string, parents parentIndex, ps *yamlfile.Problems) {
	if c.Choices.given() {
		col.choice = newChoicePlan(&c.Choices)
	}
	if c.Lookup.given() {
		col.lookup = newLookupPlan(&c.Lookup, path+".lookup", parents, ps)
		col.out = c.Target + "@odata.bind"
	}
	if c.Expr != "" {
		prog, err := compileExpr(c.Expr)
		if err != nil {
			ps.Add(path+".expr", "%v", err)
		}
		col.expr = prog
	}
	if c.Default != "" {
		def := change.Text(c.Default)
		col.def = &def
		// A default that cannot be written would fail every NULL row.
		if _, skip, err := col.value(def); err != nil || skip {
			ps.Add(path+".default", "%q %s", c.Default, why(err, skip))
		}
	}
	if c.Constant != "" {
		v, skip, err := col.value(change.Text(c.Constant))
		if err != nil || skip {
			ps.Add(path+".constant", "%q %s", c.Constant, why(err, skip))
		}
		col.constant = &v
	}
}

func why(err error, skip bool) string {
	if skip {
		return "is not one of the choices' values"
	}
	return err.Error()
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// Connections returns the names of the connections whose changes flow to
// Dataverse, sorted. A connection that mappings only write back to is not
// among them, as nothing needs to be read from it.
func (s *Set) Connections() []string { return slices.Clone(s.conns) }

// WriteBackConnections returns the names of the connections that mappings
// with direction from-dataverse or both write Dataverse changes to, sorted.
func (s *Set) WriteBackConnections() []string { return slices.Clone(s.back) }

// Mappings returns the compiled mappings in the order given to Compile.
// They must not be modified.
func (s *Set) Mappings() []*Mapping { return slices.Clone(s.mappings) }

// DataverseTables returns the Dataverse tables whose changes the mappings
// of one connection write back to it, sorted; nil when there are none.
func (m *Mapper) DataverseTables() []string {
	if m == nil || len(m.byTarget) == 0 {
		return nil
	}
	return sortedKeys(m.byTarget)
}

// Tables returns the source tables whose changes flow to Dataverse on one
// connection, sorted; nil for a connection without such mappings.
func (s *Set) Tables(connection string) []string {
	if mp := s.mappers[connection]; mp != nil && len(mp.tables) > 0 {
		return slices.Clone(mp.tables)
	}
	return nil
}

// Keys returns the key columns the mappings of one connection give for
// their source tables (Source.Key), by table; tables whose mappings give
// none are absent, and the result is nil when none do. The map is the
// caller's.
func (s *Set) Keys(connection string) map[string][]string {
	mp := s.mappers[connection]
	if mp == nil || len(mp.keys) == 0 {
		return nil
	}
	keys := make(map[string][]string, len(mp.keys))
	for t, k := range mp.keys {
		keys[t] = slices.Clone(k)
	}
	return keys
}

// EntitySets returns the entity set names the mappings give, by Dataverse
// logical name. Tables whose mappings give none are absent. The map is the
// caller's.
func (s *Set) EntitySets() map[string]string { return maps.Clone(s.entitySets) }

// Mapper returns the Mapper for one connection, or nil (which maps
// nothing) when no mapping uses it.
func (s *Set) Mapper(connection string) *Mapper { return s.mappers[connection] }

// ReadsColumn reports whether the mapping of source table reads the named
// source column: as a column, the id column, or in an expression or the
// filter. The engine pauses a table whose source dropped or retyped a
// column only when this is true, so unrelated schema changes flow on.
func (m *Mapper) ReadsColumn(table, column string) bool {
	if m == nil {
		return false
	}
	p := m.plans[table]
	if p == nil {
		return false
	}
	if _, ok := p.bySource[column]; ok || p.idSource == column {
		return true
	}
	if p.filter != nil && slices.Contains(p.filter.names, column) {
		return true
	}
	for _, i := range p.computed {
		if e := p.cols[i].expr; e != nil && slices.Contains(e.names, column) {
			return true
		}
	}
	return false
}
