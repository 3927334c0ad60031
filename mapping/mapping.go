// Package mapping reads the YAML files that say which source table goes to
// which Dataverse table, and applies them to change records.
//
// One file maps one table:
//
//	version: 1
//	source: {connection: app, table: public.customers}
//	dataverse: {table: account}
//	key: {alternate_key: [accountnumber]}
//	columns:
//	  - {source: id, target: accountnumber, type: string}
//	  - {source: name, target: name}
//
// Parse and LoadFiles decode strictly and validate; every problem names
// FILE:LINE and the field path, and all of them are reported at once.
// Compile turns the mappings into a Set, whose Mappers rename, convert and
// key records on the hot path without reflection.
//
// The package imports only change and internal/yamlfile, the strict
// decoder it shares with package config; the reference in docs/mapping.md
// is tested against these types.
package mapping

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dvsync/dvsync/internal/yamlfile"
)

// Mapping is one parsed mapping file. Parse returns it with defaults
// applied and validated; Compile validates it again, so a Mapping built in
// code is checked too. A Mapping must not be modified once compiled.
type Mapping struct {
	// Version of the file format; required, and only 1 is known.
	Version int `yaml:"version"`
	// Name identifies the mapping in logs, metrics and dead letters.
	// Default: the file name without its extension.
	Name      string    `yaml:"name"`
	Source    Source    `yaml:"source"`
	Dataverse Dataverse `yaml:"dataverse"`
	// Direction is which way changes flow. Default: to-dataverse, the only
	// direction supported so far.
	Direction Direction `yaml:"direction"`
	Key       Key       `yaml:"key"`
	// Columns are the columns written, in the order given. Source columns
	// not listed are not synced.
	Columns []Column `yaml:"columns"`
	// Deletes says what a source delete does. Default: delete.
	Deletes Deletes `yaml:"deletes"`

	// File is the file the mapping was read from, as named to Parse.
	File string `yaml:"-"`
	// Line is the line the mapping starts on.
	Line int `yaml:"-"`

	// pos records where each field was written, for Compile's errors.
	pos yamlfile.Positions
}

// Source names the table changes are read from.
type Source struct {
	// Connection is a key of the daemon config's connections. Required.
	Connection string `yaml:"connection"`
	// Table is the schema-qualified table, such as public.customers, as
	// the source names it (unquoted, case as stored). Required.
	Table string `yaml:"table"`
}

// Dataverse names the table changes are written to.
type Dataverse struct {
	// Table is the table's logical name, such as account. Required.
	Table string `yaml:"table"`
	// EntitySet is the table's Web API collection name, such as accounts.
	// Optional: the sink looks it up in the metadata when absent.
	EntitySet string `yaml:"entity_set"`
}

// Key says how a source row finds its Dataverse row.
type Key struct {
	// AlternateKey lists the attributes of a Dataverse alternate key, in
	// the key's order. Each must be the target of a column. Required.
	AlternateKey []string `yaml:"alternate_key"`
}

// Column maps one source column to one Dataverse attribute.
type Column struct {
	// Source is the source column's name. Required.
	Source string `yaml:"source"`
	// Target is the Dataverse attribute's logical name. Required.
	Target string `yaml:"target"`
	// Type is the Dataverse attribute type the value is converted to.
	// Optional: without it the value is passed on as the source typed it.
	Type AttributeType `yaml:"type"`
}

// Direction is which way a mapping syncs.
type Direction string

const (
	// ToDataverse syncs source changes into Dataverse.
	ToDataverse Direction = "to-dataverse"
	// FromDataverse syncs Dataverse changes into the source. Not supported
	// yet.
	FromDataverse Direction = "from-dataverse"
	// Both syncs both ways. Not supported yet.
	Both Direction = "both"
)

// Deletes is what a source delete does to the Dataverse row.
type Deletes string

const (
	// DeletesDelete deletes the Dataverse row.
	DeletesDelete Deletes = "delete"
	// DeletesIgnore keeps the Dataverse row; the delete is dropped.
	DeletesIgnore Deletes = "ignore"
)

// setDefaults applies the defaults of every field that has one. Name's
// default depends on the file, so Parse applies it.
func (m *Mapping) setDefaults() {
	m.Direction = ToDataverse
	m.Deletes = DeletesDelete
}

// Problem is one problem with a mapping file, as "FILE:LINE: PATH:
// MESSAGE". The errors of Parse, LoadFiles, Validate and Compile join
// *Problem values (LoadFiles' also file-reading errors); errors.As finds
// the first.
type Problem = yamlfile.Problem

// Parse decodes and validates one mapping file's contents; file names it in
// errors and provides the default name. On failure Parse returns nil and an
// error joining one *Problem per line.
func Parse(data []byte, file string) (*Mapping, error) {
	m := &Mapping{}
	m.setDefaults()
	pos, failed := yamlfile.Decode(data, file, nil, m)
	if pos == nil {
		return nil, failed.Err()
	}
	m.File, m.Line, m.pos = file, pos.Line(""), pos
	if m.Name == "" {
		base := filepath.Base(file)
		m.Name = strings.TrimSuffix(base, filepath.Ext(base))
	}
	var invalid yamlfile.Problems
	m.validate(&invalid)
	invalid = invalid.Without(failed)
	pos.Locate(file, invalid)
	if all := append(failed, invalid...); len(all) > 0 {
		return nil, all.Err()
	}
	return m, nil
}

// LoadFiles reads and parses the mapping files at paths. It reports the
// problems of all files together, and also those between files: two
// mappings of one source table, two mappings with one name, or two entity
// sets given for one Dataverse table. It returns the mappings in the order
// of paths, or nil and the joined problems.
func LoadFiles(paths []string) ([]*Mapping, error) {
	var all yamlfile.Problems
	var errs []error
	ms := make([]*Mapping, 0, len(paths))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("mapping: %w", err))
			continue
		}
		m, err := Parse(data, path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ms = append(ms, m)
	}
	crossCheck(ms, &all)
	if err := errors.Join(append(errs, all.Err())...); err != nil {
		return nil, err
	}
	return ms, nil
}

// Validate checks one mapping on its own. Its problems name the file and
// lines when the mapping came from Parse.
func (m *Mapping) Validate() error {
	var ps yamlfile.Problems
	m.validate(&ps)
	m.locate(ps)
	return ps.Err()
}

func (m *Mapping) locate(ps yamlfile.Problems) {
	if m.pos != nil {
		m.pos.Locate(m.File, ps)
		return
	}
	for _, p := range ps {
		p.File, p.Line = m.File, m.Line
	}
}

var (
	mappingName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	// Dataverse logical names are lower case; customisation prefixes such
	// as cr8a1_ are part of them.
	logicalName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	setName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

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
	schema, table, qualified := strings.Cut(m.Source.Table, ".")
	switch {
	case m.Source.Table == "":
		ps.Add("source.table", "required: a schema-qualified table such as public.customers")
	case !qualified || schema == "" || table == "":
		ps.Add("source.table", "%q is not schema-qualified; write it as schema.table, such as public.%s", m.Source.Table, m.Source.Table)
	}
	if m.Dataverse.Table == "" {
		ps.Add("dataverse.table", "required: the table's logical name, such as account")
	} else if !logicalName.MatchString(m.Dataverse.Table) {
		ps.Add("dataverse.table", "%q is not a logical name (lower-case letters, digits and _)", m.Dataverse.Table)
	}
	if m.Dataverse.EntitySet != "" && !setName.MatchString(m.Dataverse.EntitySet) {
		ps.Add("dataverse.entity_set", "%q is not an entity set name (letters, digits and _)", m.Dataverse.EntitySet)
	}
	switch m.Direction {
	case ToDataverse:
	case FromDataverse, Both:
		ps.Add("direction", "%q is not supported yet (supported: %s)", m.Direction, ToDataverse)
	default:
		ps.Add("direction", "%q is not one of: %s, %s, %s", m.Direction, ToDataverse, FromDataverse, Both)
	}
	switch m.Deletes {
	case DeletesDelete, DeletesIgnore:
	default:
		ps.Add("deletes", "%q is not one of: %s, %s", m.Deletes, DeletesDelete, DeletesIgnore)
	}
	m.validateColumns(ps)
}

func (m *Mapping) validateColumns(ps *yamlfile.Problems) {
	if len(m.Columns) == 0 {
		ps.Add("columns", "required: at least one column")
	}
	targets := map[string]int{}
	for i, c := range m.Columns {
		path := "columns[" + strconv.Itoa(i) + "]"
		if c.Source == "" {
			ps.Add(path+".source", "required: the source column's name")
		}
		switch {
		case c.Target == "":
			ps.Add(path+".target", "required: the Dataverse attribute's logical name")
		case !logicalName.MatchString(c.Target):
			ps.Add(path+".target", "%q is not a logical name (lower-case letters, digits and _)", c.Target)
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
	}
	keys := m.Key.AlternateKey
	if len(keys) == 0 {
		ps.Add("key.alternate_key", "required: the attributes of a Dataverse alternate key")
	}
	if len(keys) > maxKeyColumns {
		ps.Add("key.alternate_key", "has %d attributes; an alternate key has at most %d", len(keys), maxKeyColumns)
	}
	for i, k := range keys {
		path := "key.alternate_key[" + strconv.Itoa(i) + "]"
		if _, ok := targets[k]; !ok {
			ps.Add(path, "%q is not the target of any column; map the source column that holds it", k)
		}
		if j := slices.Index(keys, k); j < i {
			ps.Add(path, "%q is listed twice", k)
		}
	}
}

// maxKeyColumns bounds an alternate key's attributes. Dataverse allows 16;
// the mapper tracks found key columns in a 64-bit mask.
const maxKeyColumns = 16

// crossCheck reports the problems between mappings that are each valid on
// their own.
func crossCheck(ms []*Mapping, ps *yamlfile.Problems) {
	type first struct {
		m    *Mapping
		path string
	}
	tables := map[[2]string]first{}
	names := map[string]first{}
	sets := map[string]first{}
	at := func(f first) string { return f.m.File + ":" + strconv.Itoa(f.m.lineOf(f.path)) }
	for _, m := range ms {
		var mine yamlfile.Problems
		key := [2]string{m.Source.Connection, m.Source.Table}
		if f, dup := tables[key]; dup {
			mine.Add("source.table", "%s on connection %s is already mapped by %s", m.Source.Table, m.Source.Connection, at(f))
		} else {
			tables[key] = first{m, "source.table"}
		}
		if f, dup := names[m.Name]; dup {
			mine.Add("name", "mapping name %q is already used by %s", m.Name, at(f))
		} else {
			names[m.Name] = first{m, "name"}
		}
		if set := m.Dataverse.EntitySet; set != "" {
			if f, dup := sets[m.Dataverse.Table]; dup && f.m.Dataverse.EntitySet != set {
				mine.Add("dataverse.entity_set", "%q differs from %q given for %s by %s", set, f.m.Dataverse.EntitySet, m.Dataverse.Table, at(f))
			} else if !dup {
				sets[m.Dataverse.Table] = first{m, "dataverse.entity_set"}
			}
		}
		m.locate(mine)
		*ps = append(*ps, mine...)
	}
}

// lineOf returns the line a field was written on, or the mapping's line.
func (m *Mapping) lineOf(path string) int {
	if m.pos != nil {
		return m.pos.Line(path)
	}
	return m.Line
}
