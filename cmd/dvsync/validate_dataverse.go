package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/dvsync/dvsync/internal/yamlfile"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/odataclient"
)

// onlineProblems collects the problems found by checking mappings against
// live systems, each as "FILE:LINE: FIELD: REASON", like the offline ones.
type onlineProblems []string

func (ps *onlineProblems) add(m *mapping.Mapping, path, format string, args ...any) {
	*ps = append(*ps, fmt.Sprintf("%s:%d: %s: %s", m.File, m.LineOf(path), path, fmt.Sprintf(format, args...)))
}

// fits lists, for each declared column type, the Dataverse attribute types
// whose values it produces in a form the Web API accepts.
var fits = map[mapping.AttributeType][]string{
	mapping.TypeString:           {"String", "Memo"},
	mapping.TypeMemo:             {"Memo", "String"},
	mapping.TypeInteger:          {"Integer", "BigInt"},
	mapping.TypeBigInt:           {"BigInt"},
	mapping.TypeDecimal:          {"Decimal", "Money"},
	mapping.TypeDouble:           {"Double"},
	mapping.TypeMoney:            {"Money", "Decimal"},
	mapping.TypeBoolean:          {"Boolean"},
	mapping.TypeDateTime:         {"DateTime"},
	mapping.TypeDateOnly:         {"DateTime"},
	mapping.TypeUniqueIdentifier: {"Uniqueidentifier"},
}

// typeFor is the column type to declare for a Dataverse attribute type.
var typeFor = map[string]string{
	"String": "string", "Memo": "memo", "Integer": "integer", "BigInt": "bigint",
	"Decimal": "decimal", "Double": "double", "Money": "money", "Boolean": "boolean",
	"DateTime": "datetime or dateonly", "Uniqueidentifier": "uniqueidentifier",
}

// lookupTypes are the attribute types written through @odata.bind.
var lookupTypes = []string{"Lookup", "Customer", "Owner"}

// choiceTypes are the attribute types holding option values.
var choiceTypes = []string{"Picklist", "State", "Status", "MultiSelectPicklist", "Virtual"}

// dataverseChecker checks mappings against the live table metadata.
type dataverseChecker struct {
	client *odataclient.Client
	md     *odataclient.MetadataCache
	tables []string // every table's logical name, read on first need
	ps     onlineProblems
}

// checkDataverse checks every mapping against the Dataverse metadata. A
// failure other than a missing table (the service unreachable, the token
// refused) ends the check with that one problem, rather than repeating it
// for every mapping.
func checkDataverse(ctx context.Context, client *odataclient.Client, ms []*mapping.Mapping) (onlineProblems, error) {
	c := &dataverseChecker{client: client, md: odataclient.NewMetadataCache(client)}
	for _, m := range ms {
		if err := c.check(ctx, m); err != nil {
			return c.ps, err
		}
	}
	return c.ps, nil
}

// table returns a table's metadata, or nil when the table does not exist.
func (c *dataverseChecker) table(ctx context.Context, name string) (*odataclient.TableMetadata, error) {
	md, err := c.md.Table(ctx, name)
	var oe *odataclient.Error
	if errors.As(err, &oe) && oe.StatusCode == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dataverse: reading the metadata of %s: %w", name, err)
	}
	return md, nil
}

// tableHint suggests an existing table for a misspelt one.
func (c *dataverseChecker) tableHint(ctx context.Context, name string) (string, error) {
	if c.tables == nil {
		page, err := c.client.List(ctx, "EntityDefinitions", odataclient.Query{Select: []string{"LogicalName"}})
		if err != nil {
			return "", fmt.Errorf("dataverse: listing tables: %w", err)
		}
		c.tables = []string{}
		for _, raw := range page.Rows {
			var def struct{ LogicalName string }
			if json.Unmarshal(raw, &def) == nil && def.LogicalName != "" {
				c.tables = append(c.tables, def.LogicalName)
			}
		}
	}
	return hint(name, c.tables, "tables"), nil
}

// hint is yamlfile.Hint, without listing hundreds of names when none is
// close.
func hint(name string, known []string, what string) string {
	if h := yamlfile.Hint(name, known); strings.HasPrefix(h, "(did you mean") || len(known) <= 12 {
		return h
	}
	return "(none of its " + strconv.Itoa(len(known)) + " " + what + " is close)"
}

func (c *dataverseChecker) check(ctx context.Context, m *mapping.Mapping) error {
	tm, err := c.table(ctx, m.Dataverse.Table)
	if err != nil {
		return err
	}
	if tm == nil {
		h, err := c.tableHint(ctx, m.Dataverse.Table)
		if err != nil {
			return err
		}
		c.ps.add(m, "dataverse.table", "Dataverse has no table %q %s", m.Dataverse.Table, h)
		return nil
	}
	if set := m.Dataverse.EntitySet; set != "" && set != tm.EntitySetName {
		c.ps.add(m, "dataverse.entity_set", "%q is not the entity set of %s: Dataverse names it %q", set, tm.LogicalName, tm.EntitySetName)
	}
	names := attributeNames(tm)
	for i := range m.Columns {
		col := &m.Columns[i]
		path := "columns[" + strconv.Itoa(i) + "]"
		if col.Lookup.Table != "" {
			if err := c.checkLookup(ctx, m, tm, col, path); err != nil {
				return err
			}
			continue
		}
		a, ok := tm.Attributes[col.Target]
		if !ok {
			c.ps.add(m, path+".target", "%s has no attribute %q %s", tm.LogicalName, col.Target, hint(col.Target, names, "attributes"))
			continue
		}
		c.checkColumn(m, tm, col, a, path)
	}
	c.checkKey(m, tm)
	c.checkSoft(m, tm, names)
	return nil
}

func attributeNames(tm *odataclient.TableMetadata) []string {
	names := make([]string, 0, len(tm.Attributes))
	for n := range tm.Attributes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkColumn checks a plain or choice column against its attribute.
func (c *dataverseChecker) checkColumn(m *mapping.Mapping, tm *odataclient.TableMetadata, col *mapping.Column, a odataclient.Attribute, path string) {
	where := tm.LogicalName + "." + a.LogicalName
	switch {
	case slices.Contains(lookupTypes, a.Type):
		c.ps.add(m, path+".target", "%s is a %s: write it with a lookup: {table: …, key: …} block, to a navigation property such as %q",
			where, a.Type, a.LogicalName)
		return
	case col.Choices.Values != nil:
		if !slices.Contains(choiceTypes, a.Type) {
			c.ps.add(m, path+".choices", "%s is a %s column, not a choice: remove choices %s", where, a.Type, declare(a.Type))
			return
		}
	case col.Type != "":
		if !slices.Contains(fits[col.Type], a.Type) {
			c.ps.add(m, path+".type", "type %s does not fit %s, a %s column %s", col.Type, where, a.Type, declare(a.Type))
		}
	}
	dir := col.Direction
	if dir == "" {
		dir = m.Direction
	}
	if dir != mapping.FromDataverse && !a.ValidForCreate && !a.ValidForUpdate {
		c.ps.add(m, path+".target", "%s is read-only in Dataverse: map it with direction: from-dataverse, or drop it", where)
	}
}

// declare says which column type to declare for a Dataverse type, when
// dvsync has one.
func declare(dvType string) string {
	if t, ok := typeFor[dvType]; ok {
		return "(declare type: " + t + ")"
	}
	if slices.Contains(choiceTypes, dvType) {
		return "(map it with choices: {values: …})"
	}
	return ""
}

// checkLookup checks a lookup column: the navigation property is a lookup
// to the parent table, and the parent has the key the lookup binds by.
func (c *dataverseChecker) checkLookup(ctx context.Context, m *mapping.Mapping, tm *odataclient.TableMetadata, col *mapping.Column, path string) error {
	// A lookup's navigation property is its attribute's name, or, for a
	// lookup to several tables (a customer lookup), the attribute's name
	// followed by _ and the target table.
	name := strings.ToLower(col.Target)
	a, ok := tm.Attributes[name]
	if !ok {
		if base, ok2 := strings.CutSuffix(name, "_"+col.Lookup.Table); ok2 {
			a, ok = tm.Attributes[base]
		}
	}
	var lookups []string
	for _, at := range tm.Attributes {
		if slices.Contains(lookupTypes, at.Type) {
			lookups = append(lookups, at.LogicalName)
		}
	}
	slices.Sort(lookups)
	switch {
	case !ok:
		c.ps.add(m, path+".target", "%s has no lookup %q %s", tm.LogicalName, col.Target, hint(name, lookups, "lookups"))
	case !slices.Contains(lookupTypes, a.Type):
		c.ps.add(m, path+".target", "%s.%s is a %s column, not a lookup %s", tm.LogicalName, a.LogicalName, a.Type, hint(name, lookups, "lookups"))
	case len(a.Targets) > 0 && !slices.Contains(a.Targets, col.Lookup.Table):
		c.ps.add(m, path+".lookup.table", "%s.%s cannot point at %s (it points at: %s)", tm.LogicalName, a.LogicalName, col.Lookup.Table, strings.Join(a.Targets, ", "))
	}
	parent, err := c.table(ctx, col.Lookup.Table)
	if err != nil {
		return err
	}
	if parent == nil {
		h, err := c.tableHint(ctx, col.Lookup.Table)
		if err != nil {
			return err
		}
		c.ps.add(m, path+".lookup.table", "Dataverse has no table %q %s", col.Lookup.Table, h)
		return nil
	}
	if col.Lookup.Key == "" {
		return nil
	}
	if _, ok := parent.Attributes[col.Lookup.Key]; !ok {
		c.ps.add(m, path+".lookup.key", "%s has no attribute %q %s", parent.LogicalName, col.Lookup.Key, hint(col.Lookup.Key, attributeNames(parent), "attributes"))
		return nil
	}
	if k := findKey(parent.Keys, []string{col.Lookup.Key}); k == nil {
		c.ps.add(m, path+".lookup.key", "%s has no alternate key of %s alone, so a child cannot bind to it %s",
			parent.LogicalName, col.Lookup.Key, keyList(parent))
	} else if k.Status != "" && k.Status != "Active" {
		c.ps.add(m, path+".lookup.key", "alternate key %s of %s is %s, not Active: Dataverse is still building or failed to build its index", k.Name, parent.LogicalName, k.Status)
	}
	return nil
}

// checkKey checks that the alternate key exists with exactly the mapped
// attributes and is active, or that the id attribute is the primary id.
func (c *dataverseChecker) checkKey(m *mapping.Mapping, tm *odataclient.TableMetadata) {
	if ak := m.Key.AlternateKey; len(ak) > 0 {
		k := findKey(tm.Keys, ak)
		switch {
		case k == nil:
			c.ps.add(m, "key.alternate_key", "%s has no alternate key of exactly [%s] %s", tm.LogicalName, strings.Join(ak, ", "), keyList(tm))
		case k.Status != "" && k.Status != "Active":
			c.ps.add(m, "key.alternate_key", "alternate key %s of %s is %s, not Active: Dataverse is still building or failed to build its index", k.Name, tm.LogicalName, k.Status)
		}
		return
	}
	attr := m.Key.ID.Attribute
	if attr == "" {
		attr = m.Dataverse.Table + "id"
	}
	if attr != tm.PrimaryIdAttribute {
		path := "key.id.attribute"
		if m.Key.ID.Attribute == "" {
			path = "key.id"
		}
		c.ps.add(m, path, "%q is not the primary id of %s (did you mean %q?)", attr, tm.LogicalName, tm.PrimaryIdAttribute)
	}
}

// checkSoft checks the attributes a soft delete sets.
func (c *dataverseChecker) checkSoft(m *mapping.Mapping, tm *odataclient.TableMetadata, names []string) {
	for _, name := range slices.Sorted(maps.Keys(m.Soft.Set)) {
		if _, ok := tm.Attributes[name]; !ok {
			c.ps.add(m, "soft.set."+name, "%s has no attribute %q %s", tm.LogicalName, name, hint(name, names, "attributes"))
		}
	}
	if col := m.Soft.Column; col != "" {
		a, ok := tm.Attributes[col]
		switch {
		case !ok:
			c.ps.add(m, "soft.column", "%s has no attribute %q %s", tm.LogicalName, col, hint(col, names, "attributes"))
		case a.Type != "Boolean":
			c.ps.add(m, "soft.column", "%s.%s is a %s column; soft.column must be a Boolean", tm.LogicalName, col, a.Type)
		}
	}
}

// findKey returns the alternate key made of exactly attrs, in any order.
func findKey(keys []odataclient.AlternateKey, attrs []string) *odataclient.AlternateKey {
	want := slices.Sorted(slices.Values(attrs))
	for i := range keys {
		if slices.Equal(slices.Sorted(slices.Values(keys[i].Attributes)), want) {
			return &keys[i]
		}
	}
	return nil
}

// keyList describes a table's alternate keys, for a problem's "what would
// be valid".
func keyList(tm *odataclient.TableMetadata) string {
	if len(tm.Keys) == 0 {
		return "(it has no alternate keys: create one in Dataverse, or address rows by key.id)"
	}
	parts := make([]string, len(tm.Keys))
	for i, k := range tm.Keys {
		parts[i] = k.Name + " [" + strings.Join(k.Attributes, ", ") + "]"
	}
	return "(its keys: " + strings.Join(parts, "; ") + ")"
}
