package mapping

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/yamlfile"
)

var (
	mappingName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	// Dataverse logical names are lower case; customisation prefixes such
	// as cr8a1_ are part of them.
	logicalName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	// Navigation properties and entity sets keep the schema name's case.
	setName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// validate checks the mapping on its own. Expressions are only parsed
// here; Compile compiles them.
func (m *Mapping) validate(ps *yamlfile.Problems) {
	switch m.Version {
	case 0:
		ps.Add("version", "required; write version: 1")
	case 1:
	default:
		ps.Add("version", "unsupported version %d; this dvsync reads version 1", m.Version)
	}
	if m.Name == "" {
		ps.Add("name", "required")
	} else if !mappingName.MatchString(m.Name) {
		ps.Add("name", "%q is not a valid name: use letters, digits, _, . and -", m.Name)
	}
	if m.Source.Connection == "" {
		ps.Add("source.connection", "required: a name under connections: in the daemon config")
	}
	m.validateSource(ps)
	for i, c := range m.Source.Key {
		switch {
		case c == "":
			ps.Add("source.key["+strconv.Itoa(i)+"]", "empty column name")
		case slices.Index(m.Source.Key, c) < i:
			ps.Add("source.key["+strconv.Itoa(i)+"]", "column %s is listed twice", c)
		}
	}
	if m.Dataverse.Table == "" {
		ps.Add("dataverse.table", "required: the table's logical name, such as account")
	} else if !logicalName.MatchString(m.Dataverse.Table) {
		ps.Add("dataverse.table", "%q is not a logical name (lower-case letters, digits and _)", m.Dataverse.Table)
	}
	if m.Dataverse.EntitySet != "" && !setName.MatchString(m.Dataverse.EntitySet) {
		ps.Add("dataverse.entity_set", "%q is not an entity set name (letters, digits and _)", m.Dataverse.EntitySet)
	}
	if !validDirection(m.Direction) {
		ps.Add("direction", "%q is not one of: %s, %s, %s", m.Direction, ToDataverse, FromDataverse, Both)
	}
	if m.Filter != "" {
		if err := checkSyntax(m.Filter); err != "" {
			ps.Add("filter", "%s", err)
		}
	}
	m.validateColumns(ps)
	m.validateKey(ps)
	m.validateDeletes(ps)
	m.validateConflict(ps)
	if m.Truncate != "" && m.Truncate != TruncateIgnore && m.Truncate != TruncateDelete {
		ps.Add("truncate", "%q is not one of: %s, %s", m.Truncate, TruncateIgnore, TruncateDelete)
	}
}

// validateSource checks the table or topic and the topic's options.
func (m *Mapping) validateSource(ps *yamlfile.Problems) {
	src := &m.Source
	if src.Topic != "" {
		if src.Table != "" {
			ps.Add("source.topic", "give either table (a database table) or topic (a Kafka topic), not both")
		}
		switch src.Format {
		case "", FormatJSON, FormatDebezium, FormatCloudEvents, FormatDataverseEvent:
		default:
			ps.Add("source.format", "%q is not one of: %s, %s, %s, %s", src.Format, FormatJSON, FormatDebezium, FormatCloudEvents, FormatDataverseEvent)
		}
		if m.Direction.fromDataverse() && (src.Format == FormatCloudEvents || src.Format == FormatDataverseEvent) {
			ps.Add("source.format", "dvsync writes topics as %s or %s; %s is only read", FormatDebezium, FormatJSON, src.Format)
		}
		for i, f := range src.KeyFields {
			if f == "" {
				ps.Add("source.key_fields["+strconv.Itoa(i)+"]", "empty field name")
			}
		}
		return
	}
	if src.Format != "" {
		ps.Add("source.format", "only for a Kafka topic (source.topic)")
	}
	if len(src.KeyFields) > 0 {
		ps.Add("source.key_fields", "only for a Kafka topic (source.topic); a table's key is its primary key or source.key")
	}
	if src.Tombstones != nil {
		ps.Add("source.tombstones", "only for a Kafka topic (source.topic)")
	}
	schema, table, qualified := strings.Cut(src.Table, ".")
	switch {
	case src.Table == "":
		ps.Add("source.table", "required: a schema-qualified table such as public.customers (or topic, for Kafka)")
	case !qualified || schema == "" || table == "":
		ps.Add("source.table", "%q is not schema-qualified; write it as schema.table, such as public.%s", src.Table, src.Table)
	}
}

// validateConflict checks the conflict block, which only a mapping with
// direction both may have.
func (m *Mapping) validateConflict(ps *yamlfile.Problems) {
	c := &m.Conflict
	if m.Direction != Both {
		if *c != (Conflict{}) {
			ps.Add("conflict", "only for direction both: a one-way mapping has no conflicts")
		}
		return
	}
	switch c.Policy {
	case SourceWins, DataverseWins, NewestWins, Merge, Manual:
	default:
		ps.Add("conflict.policy", "%q is not one of: %s, %s, %s, %s, %s", c.Policy, SourceWins, DataverseWins, NewestWins, Merge, Manual)
	}
	switch c.TieBreak {
	case SourceWins, DataverseWins, Manual:
	case NewestWins:
		if c.Policy == NewestWins {
			ps.Add("conflict.tie_break", "newest-wins cannot break its own ties; use %s, %s or %s", SourceWins, DataverseWins, Manual)
		}
	default:
		ps.Add("conflict.tie_break", "%q is not one of: %s, %s, %s, %s", c.TieBreak, SourceWins, DataverseWins, NewestWins, Manual)
	}
	if col := c.TimestampColumn; col != "" && !slices.ContainsFunc(m.Columns, func(k Column) bool { return k.Source == col }) {
		ps.Add("conflict.timestamp_column", "%s is not the source of any column; map it (it may flow to-dataverse only)", col)
	}
}

// SyncedColumns returns the source columns a mapping with direction both
// syncs both ways, in the order of its columns: those whose values flow
// back from Dataverse, which the conflict checks of a bidirectional sync
// compare. Nil for a mapping of another direction.
func (m *Mapping) SyncedColumns() []string {
	if m.Direction != Both {
		return nil
	}
	var cols []string
	for i := range m.Columns {
		c := &m.Columns[i]
		if c.Source != "" && m.direction(c).fromDataverse() && !slices.Contains(cols, c.Source) {
			cols = append(cols, c.Source)
		}
	}
	return cols
}

func validDirection(d Direction) bool { return d == ToDataverse || d == FromDataverse || d == Both }

// direction returns a column's effective direction: its own, else the
// mapping's, narrowed to to-dataverse for columns that cannot flow back.
func (m *Mapping) direction(c *Column) Direction {
	if c.Direction != "" {
		return c.Direction
	}
	computedOrLookup := c.Source == "" || c.Lookup.given()
	if m.Direction == Both && computedOrLookup {
		return ToDataverse
	}
	return m.Direction
}

func (m *Mapping) validateColumns(ps *yamlfile.Problems) {
	if len(m.Columns) == 0 {
		ps.Add("columns", "required: at least one column")
	}
	targets := map[string]int{}
	for i := range m.Columns {
		c := &m.Columns[i]
		path := "columns[" + strconv.Itoa(i) + "]"
		m.validateValue(c, path, ps)
		pattern, what := logicalName, "a logical name (lower-case letters, digits and _)"
		if c.Lookup.given() {
			pattern, what = setName, "a navigation property name (letters, digits and _)"
		}
		switch {
		case c.Target == "":
			ps.Add(path+".target", "required: the Dataverse attribute's logical name")
		case !pattern.MatchString(c.Target):
			ps.Add(path+".target", "%q is not %s", c.Target, what)
		default:
			if j, dup := targets[c.Target]; dup {
				ps.Add(path+".target", "%q is already the target of columns[%d]", c.Target, j)
			} else {
				targets[c.Target] = i
			}
		}
		if c.Type != "" && !slices.Contains(attributeTypes, c.Type) {
			ps.Add(path+".type", "unknown type %q %s", c.Type, yamlfile.Hint(string(c.Type), typeNames()))
		}
		m.validateDirection(c, path, ps)
		if c.Choices.given() {
			validateChoices(c, path, ps)
			if m.direction(c).fromDataverse() {
				validateReverseChoices(c, path, ps)
			}
		}
		if c.Lookup.given() {
			validateLookup(c, path, ps)
		}
	}
}

// validateValue checks that a column's value has exactly one origin.
func (m *Mapping) validateValue(c *Column, path string, ps *yamlfile.Problems) {
	var origins []string
	if c.Source != "" {
		origins = append(origins, "source")
	}
	if c.Expr != "" {
		origins = append(origins, "expr")
		if err := checkSyntax(c.Expr); err != "" {
			ps.Add(path+".expr", "%s", err)
		}
	}
	if c.Constant != "" {
		origins = append(origins, "constant")
	}
	switch {
	case len(origins) == 0:
		ps.Add(path+".source", "required: the source column's name (or give expr or constant)")
	case len(origins) > 1:
		ps.Add(path+"."+origins[1], "give only one of source, expr and constant (this column also has %s)", origins[0])
	}
	if c.Default != "" && c.Constant != "" {
		ps.Add(path+".default", "a constant is never NULL; drop default")
	}
}

func (m *Mapping) validateDirection(c *Column, path string, ps *yamlfile.Problems) {
	if c.Direction == "" {
		return
	}
	switch {
	case !validDirection(c.Direction):
		ps.Add(path+".direction", "%q is not one of: %s, %s, %s", c.Direction, ToDataverse, FromDataverse, Both)
	case m.Direction != Both && c.Direction != m.Direction:
		ps.Add(path+".direction", "%s in a %s mapping: the column would never sync; drop it or make the mapping both", c.Direction, m.Direction)
	case c.Direction.fromDataverse() && c.Source == "":
		ps.Add(path+".direction", "%s needs a source column to write back to; a computed column only flows to-dataverse", c.Direction)
	case c.Direction.fromDataverse() && c.Lookup.given():
		ps.Add(path+".direction", "%s is not supported for lookups; they flow to-dataverse only", c.Direction)
	}
}

func validateChoices(c *Column, path string, ps *yamlfile.Problems) {
	ch := &c.Choices
	path += ".choices"
	if len(ch.Values) == 0 {
		ps.Add(path+".values", "required: the source values and their option values, such as {gold: 100000000}")
	}
	if c.Type != "" {
		ps.Add(path, "choices write option values; drop type: %s", c.Type)
	}
	if c.Lookup.given() {
		ps.Add(path, "a column is either a choice or a lookup, not both")
	}
	switch ch.Unmapped {
	case "", UnmappedError, UnmappedSkip:
		if ch.Default != "" {
			ps.Add(path+".default", "only used with unmapped: default")
		}
	case UnmappedDefault:
		if ch.Default == "" {
			ps.Add(path+".default", "required with unmapped: default: the option value to write")
		} else if _, err := strconv.ParseInt(ch.Default, 10, 32); err != nil {
			ps.Add(path+".default", "%q is not an option value (an integer)", ch.Default)
		}
	default:
		ps.Add(path+".unmapped", "%q is not one of: %s, %s, %s", ch.Unmapped, UnmappedError, UnmappedDefault, UnmappedSkip)
	}
	if ch.Separator != "" && !ch.Multi {
		ps.Add(path+".separator", "only used with multi: true")
	}
}

// validateReverseChoices checks that each option value maps back to one
// source value.
func validateReverseChoices(c *Column, path string, ps *yamlfile.Problems) {
	seen := map[int]string{}
	for _, k := range sortedKeys(c.Choices.Values) {
		n := c.Choices.Values[k]
		if first, dup := seen[n]; dup {
			ps.Add(path+".choices.values."+k, "option %d is also the value of %q, so it cannot be mapped back from Dataverse; make the column's direction to-dataverse", n, first)
		} else {
			seen[n] = k
		}
	}
}

func validateLookup(c *Column, path string, ps *yamlfile.Problems) {
	l := &c.Lookup
	path += ".lookup"
	if l.Table == "" {
		ps.Add(path+".table", "required: the parent table's logical name, such as account")
	} else if !logicalName.MatchString(l.Table) {
		ps.Add(path+".table", "%q is not a logical name (lower-case letters, digits and _)", l.Table)
	}
	switch {
	case l.ID != "" && l.ID != LookupUUID5 && l.ID != LookupColumn:
		ps.Add(path+".id", "%q is not one of: %s, %s", l.ID, LookupUUID5, LookupColumn)
	case l.ID != "" && l.Key != "":
		ps.Add(path+".id", "give either key or id, not both")
	case l.ID != "":
	case l.Key == "":
		ps.Add(path+".key", "required: the parent's alternate key attribute that the source column holds (or give id)")
	case !logicalName.MatchString(l.Key):
		ps.Add(path+".key", "%q is not a logical name (lower-case letters, digits and _)", l.Key)
	}
	if l.EntitySet != "" && !setName.MatchString(l.EntitySet) {
		ps.Add(path+".entity_set", "%q is not an entity set name (letters, digits and _)", l.EntitySet)
	}
}

func (m *Mapping) validateKey(ps *yamlfile.Problems) {
	keys, id := m.Key.AlternateKey, m.Key.ID
	switch {
	case len(keys) == 0 && !id.given():
		ps.Add("key.alternate_key", "required: the attributes of a Dataverse alternate key (or give key.id)")
		return
	case len(keys) > 0 && id.given():
		ps.Add("key.id", "give either alternate_key or id, not both")
		return
	case id.given():
		m.validateID(ps)
		return
	}
	if len(keys) > maxKeyColumns {
		ps.Add("key.alternate_key", "has %d attributes; an alternate key has at most %d", len(keys), maxKeyColumns)
	}
	for i, k := range keys {
		path := "key.alternate_key[" + strconv.Itoa(i) + "]"
		j := slices.IndexFunc(m.Columns, func(c Column) bool { return c.Target == k })
		switch {
		case j < 0:
			ps.Add(path, "%q is not the target of any column; map the source column that holds it", k)
		case m.Columns[j].Source == "" || m.Columns[j].Expr != "" || m.Columns[j].Constant != "":
			ps.Add(path, "%q must come from a source column, so that deletes can find it", k)
		case m.Columns[j].Lookup.given() || m.Columns[j].Choices.given():
			ps.Add(path, "%q is a lookup or choice column; key attributes are written as they are", k)
		case m.direction(&m.Columns[j]) != m.Direction:
			ps.Add(path, "%q flows %s only; a key attribute flows %s, like its mapping", k, m.direction(&m.Columns[j]), m.Direction)
		}
		if j := slices.Index(keys, k); j < i {
			ps.Add(path, "%q is listed twice", k)
		}
	}
}

func (m *Mapping) validateID(ps *yamlfile.Problems) {
	id := m.Key.ID
	switch {
	case id.UUID5.Namespace == "" && id.Column == "":
		ps.Add("key.id", "give uuid5 or column")
	case id.UUID5.Namespace != "" && id.Column != "":
		ps.Add("key.id.column", "give either uuid5 or column, not both")
	case id.UUID5.Namespace != "":
		if _, err := change.ParseUUID(id.UUID5.Namespace); err != nil {
			ps.Add("key.id.uuid5.namespace", "%q is not a UUID", id.UUID5.Namespace)
		}
		if m.Direction.fromDataverse() {
			ps.Add("key.id.uuid5", "a derived id cannot be mapped back from Dataverse; use id.column or alternate_key with direction %s", m.Direction)
		}
	}
	if id.Attribute != "" && !logicalName.MatchString(id.Attribute) {
		ps.Add("key.id.attribute", "%q is not a logical name (lower-case letters, digits and _)", id.Attribute)
	}
}

func (m *Mapping) validateDeletes(ps *yamlfile.Problems) {
	soft := m.Soft.Set != nil || m.Soft.Column != ""
	switch m.Deletes {
	case DeletesDelete, DeletesIgnore:
		if soft {
			ps.Add("soft", "only used with deletes: soft")
		}
	case DeletesSoft:
		if !soft {
			ps.Add("soft", "required with deletes: soft: set, column or both")
		}
	default:
		ps.Add("deletes", "%q is not one of: %s, %s, %s", m.Deletes, DeletesDelete, DeletesIgnore, DeletesSoft)
	}
	isTarget := func(a string) bool {
		return slices.ContainsFunc(m.Columns, func(c Column) bool { return c.Target == a })
	}
	for _, a := range sortedKeys(m.Soft.Set) {
		if !logicalName.MatchString(a) {
			ps.Add("soft.set."+a, "%q is not a logical name (lower-case letters, digits and _)", a)
		} else if isTarget(a) {
			ps.Add("soft.set."+a, "%q is also the target of a column; a soft delete would fight the upserts", a)
		}
	}
	if c := m.Soft.Column; c != "" {
		if !logicalName.MatchString(c) {
			ps.Add("soft.column", "%q is not a logical name (lower-case letters, digits and _)", c)
		} else if _, inSet := m.Soft.Set[c]; inSet || isTarget(c) {
			ps.Add("soft.column", "%q is also written by a column or soft.set", c)
		}
	}
}

// maxKeyColumns bounds an alternate key's attributes. Dataverse allows 16;
// the mapper tracks found key columns in a 64-bit mask.
const maxKeyColumns = 16
