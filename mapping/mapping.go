// Package mapping reads the YAML files that say which source table goes to
// which Dataverse table, and applies them to change records.
//
// One file maps one table:
//
//	version: 1
//	source: {connection: app, table: public.customers}
//	dataverse: {table: account, entity_set: accounts}
//	key: {alternate_key: [accountnumber]}
//	filter: 'region == "EU"'
//	columns:
//	  - {source: id, target: accountnumber, type: string}
//	  - {expr: 'first + " " + last', target: name}
//	  - {source: tier, target: customertypecode, choices: {values: {gold: 1}}}
//	  - {source: parent_id, target: parentaccountid, type: string,
//	     lookup: {table: account, key: accountnumber}}
//
// Parse and LoadFiles decode strictly and validate; every problem names
// FILE:LINE and the field path, and all of them are reported at once.
// Compile compiles the expressions (github.com/expr-lang/expr), converts
// constants and defaults, resolves lookups' entity sets, and builds a Set,
// whose Mappers map records to Dataverse (Map) and back (MapToSource) on
// the hot path without reflection or parsing.
//
// The package imports only change, internal/yamlfile (the strict decoder
// it shares with package config), expr and uuid; the reference in
// docs/mapping.md is tested against these types.
package mapping

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
	// Direction is which way changes flow. Default: to-dataverse.
	Direction Direction `yaml:"direction"`
	Key       Key       `yaml:"key"`
	// Filter is a boolean expression over the source row; rows for which
	// it is false are not synced, and a row that stops matching is
	// handled as a delete. Optional: every row syncs.
	Filter string `yaml:"filter"`
	// Columns are the columns written, in the order given. Source columns
	// not listed are not synced.
	Columns []Column `yaml:"columns"`
	// Deletes says what a source delete does. Default: delete.
	Deletes Deletes `yaml:"deletes"`
	// Soft says how a soft delete marks the Dataverse row; required with
	// deletes: soft, and only allowed with it.
	Soft Soft `yaml:"soft"`
	// Truncate says what a source TRUNCATE does: ignore (the Dataverse
	// rows stay, and a warning is logged) or delete (every row of the
	// Dataverse table is deleted, after the changes before the truncate
	// are written and before any after it). Default (also when empty):
	// ignore.
	Truncate Truncate `yaml:"truncate"`
	// Conflict says how a mapping with direction both settles a record
	// changed on both sides since it was last synced. Only allowed with
	// direction both.
	Conflict Conflict `yaml:"conflict"`

	// File is the file the mapping was read from, as named to Parse.
	File string `yaml:"-"`
	// Line is the line the mapping starts on.
	Line int `yaml:"-"`

	// pos records where each field was written, for Compile's errors.
	pos yamlfile.Positions
}

// Source names the table or topic changes are read from (and, for
// mappings from Dataverse, written to).
type Source struct {
	// Connection is a key of the daemon config's connections. Required.
	Connection string `yaml:"connection"`
	// Table is the schema-qualified table, such as public.customers, as
	// the source names it (unquoted, case as stored). Required for
	// database connections; exactly one of Table and Topic is given.
	Table string `yaml:"table"`
	// Topic is the Kafka topic, for Kafka connections.
	Topic string `yaml:"topic"`
	// Format is how the topic's messages are encoded: json (a row per
	// message), debezium (Debezium change events), cloudevents (a row in
	// a CloudEvent's data) or dataverse-event (Dataverse's
	// RemoteExecutionContext JSON, as Dataverse posts it to Azure Event
	// Hubs). Only with topic. Default: json when reading the topic,
	// debezium when dvsync writes it (direction from-dataverse).
	Format Format `yaml:"format"`
	// KeyFields are the message fields that identify a row, for the json
	// and cloudevents formats. Optional: the message key is used, as a
	// JSON object of fields or a single value.
	KeyFields []string `yaml:"key_fields"`
	// Tombstones, for topics dvsync writes, follows each delete with a
	// message without a value, so a compacted topic forgets the row.
	// Default: true, as in Debezium.
	Tombstones *bool `yaml:"tombstones"`
	// Key lists the source columns that identify a row of a table without
	// a primary key (for PostgreSQL: one with REPLICA IDENTITY FULL); the
	// source keys its records by them. Optional: tables with a primary key
	// are keyed by it, and must not be given one.
	Key []string `yaml:"key"`
}

// Dataverse names the table changes are written to.
type Dataverse struct {
	// Table is the table's logical name, such as account. Required.
	Table string `yaml:"table"`
	// EntitySet is the table's Web API collection name, such as accounts.
	// Optional: the sink looks it up in the metadata when absent.
	EntitySet string `yaml:"entity_set"`
}

// Key says how a source row finds its Dataverse row: by an alternate key,
// or by the row's primary id. Exactly one of AlternateKey and ID is given.
type Key struct {
	// AlternateKey lists the attributes of a Dataverse alternate key, in
	// the key's order. Each must be the target of a source column.
	AlternateKey []string `yaml:"alternate_key"`
	// ID addresses rows by their primary id attribute instead.
	ID ID `yaml:"id"`
}

// ID gives the Dataverse primary id of a source row: derived from the
// source key (UUID5) or read from a source column (Column). Exactly one of
// them is given.
type ID struct {
	// UUID5 derives the id from the record's source key.
	UUID5 UUID5 `yaml:"uuid5"`
	// Column is a source column holding the Dataverse id (a UUID, or text
	// holding one).
	Column string `yaml:"column"`
	// Attribute is the primary id attribute's logical name. Default: the
	// table's logical name followed by "id", as Dataverse names it.
	Attribute string `yaml:"attribute"`
}

// UUID5 derives ids as name-based UUIDs (RFC 9562 version 5).
type UUID5 struct {
	// Namespace is the mapping's namespace UUID. Two mappings that share
	// one give equal source keys equal ids.
	Namespace string `yaml:"namespace"`
}

func (id ID) given() bool { return id.UUID5.Namespace != "" || id.Column != "" || id.Attribute != "" }

// Column maps one value to one Dataverse attribute. The value comes from
// exactly one of Source, Expr and Constant.
type Column struct {
	// Source is the source column's name.
	Source string `yaml:"source"`
	// Expr computes the value from the source row, in the expr language.
	Expr string `yaml:"expr"`
	// Constant is written on every upsert, converted to Type.
	Constant string `yaml:"constant"`
	// Default replaces a NULL value before it is converted.
	Default string `yaml:"default"`
	// Target is the Dataverse attribute's logical name, or for a lookup
	// the single-valued navigation property's name. Required.
	Target string `yaml:"target"`
	// Type is the Dataverse attribute type the value is converted to.
	// Optional: without it the value is passed on as the source typed it.
	Type AttributeType `yaml:"type"`
	// Direction narrows the mapping's direction for this column.
	// Default: the mapping's, or to-dataverse for computed and lookup
	// columns, which cannot flow back.
	Direction Direction `yaml:"direction"`
	// Choices maps source values to option values.
	Choices Choices `yaml:"choices"`
	// Lookup makes the column a lookup to a parent row.
	Lookup Lookup `yaml:"lookup"`
}

// Choices maps source values to the option values of a Dataverse choice
// (option set) or multi-select choice column, and back.
type Choices struct {
	// Values maps a source value, as text, to its option value. Required.
	Values map[string]int `yaml:"values"`
	// Unmapped says what a value missing from Values does. Default: error.
	Unmapped Unmapped `yaml:"unmapped"`
	// Default is the option value written for an unmapped value under
	// unmapped: default.
	Default string `yaml:"default"`
	// Multi makes the column a multi-select choice: the source value is a
	// list of values, as a JSON array or as text split at Separator.
	Multi bool `yaml:"multi"`
	// Separator splits a text value of a multi-select column. Default: ",".
	Separator string `yaml:"separator"`
}

func (c Choices) given() bool {
	return c.Values != nil || c.Unmapped != "" || c.Default != "" || c.Multi || c.Separator != ""
}

// Unmapped is the policy for a source value that Choices.Values lacks.
type Unmapped string

// The unmapped-value policies.
const (
	// UnmappedError fails the record; it goes to the dead letters.
	UnmappedError Unmapped = "error"
	// UnmappedDefault writes Choices.Default.
	UnmappedDefault Unmapped = "default"
	// UnmappedSkip leaves the column out of the write.
	UnmappedSkip Unmapped = "skip"
)

// Lookup binds a Dataverse lookup column to the parent row that a source
// foreign key names: by the parent's alternate key (Key), or by its
// primary id (ID). Exactly one of Key and ID is given.
type Lookup struct {
	// Table is the parent's Dataverse logical name. Required.
	Table string `yaml:"table"`
	// Key is the attribute of the parent's alternate key that the foreign
	// key holds.
	Key string `yaml:"key"`
	// ID addresses the parent by its primary id: derived from the foreign
	// key as the parent's mapping derives it (uuid5), or held by the
	// foreign key (column).
	ID LookupID `yaml:"id"`
	// EntitySet is the parent's entity set. Default: the one given by the
	// mapping of the parent table.
	EntitySet string `yaml:"entity_set"`
}

func (l Lookup) given() bool { return l.Table != "" || l.Key != "" || l.ID != "" || l.EntitySet != "" }

// LookupID is how a lookup finds its parent's primary id.
type LookupID string

// The ways a lookup finds its parent's id.
const (
	// LookupUUID5 derives it from the foreign key, in the namespace of the
	// parent's mapping's key.id.uuid5.
	LookupUUID5 LookupID = "uuid5"
	// LookupColumn takes it from the foreign key, which holds it.
	LookupColumn LookupID = "column"
)

// Soft says how a soft delete marks a Dataverse row; at least one field is
// given.
type Soft struct {
	// Set gives attributes and the option values they are set to, such as
	// statecode: 1 and statuscode: 2 to deactivate the row.
	Set map[string]int `yaml:"set"`
	// Column is a boolean attribute set to true by a delete and false by
	// every upsert.
	Column string `yaml:"column"`
}

// Direction is which way a mapping or column syncs.
type Direction string

const (
	// ToDataverse syncs source changes into Dataverse.
	ToDataverse Direction = "to-dataverse"
	// FromDataverse syncs Dataverse changes into the source.
	FromDataverse Direction = "from-dataverse"
	// Both syncs both ways.
	Both Direction = "both"
)

func (d Direction) toDataverse() bool   { return d == ToDataverse || d == Both }
func (d Direction) fromDataverse() bool { return d == FromDataverse || d == Both }

// Truncate is what a source TRUNCATE does to the Dataverse table.
type Truncate string

const (
	// TruncateIgnore leaves the Dataverse rows.
	TruncateIgnore Truncate = "ignore"
	// TruncateDelete deletes every row of the Dataverse table.
	TruncateDelete Truncate = "delete"
)

// Format is how a Kafka topic's messages are encoded.
type Format string

const (
	// FormatJSON is one JSON object per message, the row's columns.
	FormatJSON Format = "json"
	// FormatDebezium is a Debezium change event: before, after, op and
	// source, with or without the schema wrapper.
	FormatDebezium Format = "debezium"
	// FormatCloudEvents is a CloudEvent whose data is the row.
	FormatCloudEvents Format = "cloudevents"
	// FormatDataverseEvent is Dataverse's RemoteExecutionContext JSON.
	FormatDataverseEvent Format = "dataverse-event"
)

// Conflict configures conflict resolution for a mapping with direction
// both. See docs/bidirectional.md.
type Conflict struct {
	// Policy decides a record changed on both sides since the last sync:
	// source-wins, dataverse-wins, newest-wins, merge or manual. Default:
	// newest-wins.
	Policy Policy `yaml:"policy"`
	// TieBreak decides what Policy leaves open: for merge, a column
	// changed on both sides; for newest-wins, equal times. source-wins,
	// dataverse-wins, newest-wins (not under policy newest-wins) or
	// manual. Default: source-wins.
	TieBreak Policy `yaml:"tie_break"`
	// TimestampColumn is a source column holding the time the source row
	// was last changed, which newest-wins compares with Dataverse's
	// modifiedon. Optional: the source's commit time is used.
	TimestampColumn string `yaml:"timestamp_column"`
}

// Policy is a conflict resolution policy.
type Policy string

const (
	// SourceWins keeps the source's version.
	SourceWins Policy = "source-wins"
	// DataverseWins keeps Dataverse's version.
	DataverseWins Policy = "dataverse-wins"
	// NewestWins keeps the version changed last.
	NewestWins Policy = "newest-wins"
	// Merge merges the two per column against the last synced values.
	Merge Policy = "merge"
	// Manual parks both versions until an operator settles them.
	Manual Policy = "manual"
)

// SourceName is the table or topic the mapping reads: Table, else Topic.
// Records of this mapping carry it as their Table.
func (s *Source) SourceName() string {
	if s.Table != "" {
		return s.Table
	}
	return s.Topic
}

// TombstonesOn reports whether deletes written to the topic are followed
// by a tombstone (Tombstones, default true).
func (s *Source) TombstonesOn() bool { return s.Tombstones == nil || *s.Tombstones }

// Deletes is what a source delete does to the Dataverse row.
type Deletes string

const (
	// DeletesDelete deletes the Dataverse row.
	DeletesDelete Deletes = "delete"
	// DeletesIgnore keeps the Dataverse row; the delete is dropped.
	DeletesIgnore Deletes = "ignore"
	// DeletesSoft keeps the Dataverse row and marks it as Soft says.
	DeletesSoft Deletes = "soft"
)

// setDefaults applies the defaults of every field that has one. Name's
// default depends on the file, so Parse applies it.
func (m *Mapping) setDefaults() {
	m.Direction = ToDataverse
	m.Deletes = DeletesDelete
}

// applyDefaults fills the defaults that depend on other fields, once the
// file is decoded.
func (m *Mapping) applyDefaults() {
	if m.Source.Topic != "" && m.Source.Format == "" {
		m.Source.Format = FormatJSON
		if m.Direction == FromDataverse {
			m.Source.Format = FormatDebezium
		}
	}
	if m.Direction == Both {
		if m.Conflict.Policy == "" {
			m.Conflict.Policy = NewestWins
		}
		if m.Conflict.TieBreak == "" {
			m.Conflict.TieBreak = SourceWins
		}
	}
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
	m.applyDefaults()
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
	back := map[[2]string]first{}
	at := func(f first) string { return f.m.File + ":" + strconv.Itoa(f.m.lineOf(f.path)) }
	for _, m := range ms {
		var mine yamlfile.Problems
		srcPath := "source.table"
		if m.Source.Table == "" {
			srcPath = "source.topic"
		}
		key := [2]string{m.Source.Connection, m.Source.SourceName()}
		if f, dup := tables[key]; dup {
			mine.Add(srcPath, "%s on connection %s is already mapped by %s", m.Source.SourceName(), m.Source.Connection, at(f))
		} else {
			tables[key] = first{m, srcPath}
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
		if m.Direction.fromDataverse() {
			key := [2]string{m.Source.Connection, m.Dataverse.Table}
			if f, dup := back[key]; dup {
				mine.Add("dataverse.table", "%s is already mapped back to connection %s by %s", m.Dataverse.Table, m.Source.Connection, at(f))
			} else {
				back[key] = first{m, "dataverse.table"}
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
