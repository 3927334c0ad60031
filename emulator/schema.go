package emulator

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/google/uuid"
)

// Schema is the set of tables the emulator serves. It is plain data: build it
// in Go or load it from YAML with LoadSchema or ParseSchema. New validates it
// again, so a hand-built Schema gets the same checks as a file.
type Schema struct {
	// Version of the schema file format. 0 (absent) and 1 both mean the
	// current format.
	Version int     `yaml:"version,omitempty"`
	Tables  []Table `yaml:"tables"`
	// Applications are the app registrations the token endpoint issues
	// tokens to, each acting as its own application user.
	Applications []Application `yaml:"applications,omitempty"`
	// Webhooks are service endpoints with their steps: contexts of the
	// matching writes are POSTed to them.
	Webhooks []Webhook `yaml:"webhooks,omitempty"`
	// EventHubs are service endpoints of contract EventHub with their
	// steps: contexts of the matching writes are published to a Kafka
	// topic.
	EventHubs []EventHub `yaml:"eventhubs,omitempty"`
}

// Application is an app registration for the OAuth 2.0 client-credentials
// token endpoint, /{tenant}/oauth2/v2.0/token. Its tokens act as an
// application user: a systemusers row whose id appears in
// _createdby_value and _modifiedby_value of the rows it writes.
type Application struct {
	// ClientID is the application (client) id clients send as client_id.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the secret clients send as client_secret.
	ClientSecret string `yaml:"client_secret"`
	// Name is the application user's full name; default "# <client id>".
	Name string `yaml:"name,omitempty"`
	// UserID is the application user's systemuserid; by default it is
	// derived from ClientID, so it is the same on every start.
	UserID string `yaml:"user_id,omitempty"`
}

// Table describes one Dataverse table.
//
// Every table also gets, without declaring them, its primary id column
// (uniqueidentifier), createdon and modifiedon (datetime, maintained by the
// emulator), versionnumber (bigint, incremented on every write) and statecode
// (0 Active, 1 Inactive) / statuscode (1 Active, 2 Inactive).
type Table struct {
	// LogicalName is the table's logical name, e.g. "account".
	LogicalName string `yaml:"logical_name"`
	// EntitySet is the Web API collection name, e.g. "accounts". It is never
	// derived from LogicalName, as in Dataverse.
	EntitySet string `yaml:"entity_set"`
	// PrimaryID names the primary key column; default LogicalName + "id".
	PrimaryID string `yaml:"primary_id,omitempty"`
	// PrimaryName names the primary name column; when set it must be one of
	// Attributes with type string.
	PrimaryName string `yaml:"primary_name,omitempty"`
	// ChangeTracking is reported as EntityMetadata.ChangeTrackingEnabled.
	ChangeTracking bool `yaml:"change_tracking,omitempty"`
	// Elastic marks an elastic table: it accepts DeleteMultiple, which
	// Dataverse refuses on standard tables.
	Elastic    bool        `yaml:"elastic,omitempty"`
	Attributes []Attribute `yaml:"attributes"`
	Keys       []Key       `yaml:"keys,omitempty"`
}

// Attribute describes one column.
type Attribute struct {
	// Name is the column's logical name (lower case).
	Name string `yaml:"name"`
	// Type is one of string, memo, integer, bigint, decimal, double, money,
	// boolean, datetime, dateonly, uniqueidentifier, picklist,
	// multiselectpicklist, lookup.
	Type string `yaml:"type"`
	// MaxLength bounds string (default 100, at most 4000) and memo (default
	// 2000, at most 1048576) values, counted in UTF-16 code units as
	// Dataverse does.
	MaxLength int `yaml:"max_length,omitempty"`
	// Precision is the number of decimal places kept for decimal (default 2,
	// 0–10), money (default 2, 0–4) and double (default 2, 0–5) values;
	// written values are rounded to it.
	Precision *int `yaml:"precision,omitempty"`
	// Options lists the values a picklist or multiselectpicklist accepts.
	Options []int `yaml:"options,omitempty"`
	// Required makes the column ApplicationRequired: a create (or an upsert
	// that creates) must give it a value and no write may set it to null.
	// Unlike real Dataverse, which leaves ApplicationRequired to forms, the
	// emulator enforces it, so that a mapping that omits a required column
	// fails in tests rather than in production forms and flows.
	Required bool `yaml:"required,omitempty"`
	// Targets lists the logical names of the tables a lookup may point at.
	// With one target the navigation property is Name; with several it is
	// Name + "_" + target, the pattern of Dataverse's polymorphic lookups
	// (parentcustomerid_account).
	Targets []string `yaml:"targets,omitempty"`
}

// Key is an alternate key: a set of columns whose values are unique per row
// and that can address a row in a URL, e.g. accounts(accountnumber='A1').
type Key struct {
	Name       string   `yaml:"name"`
	Attributes []string `yaml:"attributes"`
}

// LoadSchema reads and validates a schema file. Errors name the file, the
// line and the field, e.g. "schema.yaml:12: tables[0].attributes[3].type: …";
// all problems found are joined into one error.
func LoadSchema(path string) (*Schema, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read schema: %w", err)
	}
	return ParseSchema(data, path)
}

// ParseSchema parses and validates schema YAML; filename is used only in
// error messages. Unknown fields are errors. All problems found are joined
// into one error, each as "filename:line: field.path: message".
func ParseSchema(data []byte, filename string) (*Schema, error) {
	var s Schema
	dec := yaml.NewDecoder(bytes.NewReader(data), yaml.DisallowUnknownField())
	if err := dec.Decode(&s); err != nil {
		var yerr yaml.Error
		if errors.As(err, &yerr) && yerr.GetToken() != nil {
			pos := yerr.GetToken().Position
			return nil, fmt.Errorf("%s:%d:%d: %s", filename, pos.Line, pos.Column, yerr.GetMessage())
		}
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	probs := validateSchema(&s)
	if len(probs) == 0 {
		return &s, nil
	}
	// The decoder succeeded, so the document parses; the AST is only used
	// to point each problem at a line.
	file, _ := parser.ParseBytes(data, 0)
	errs := make([]error, 0, len(probs))
	for _, p := range probs {
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", filename, lineOf(file, p.path), p.path, p.msg))
	}
	return nil, errors.Join(errs...)
}

// problem is one validation failure; path is the field path in the YAML
// document ("tables[0].attributes[2].type").
type problem struct {
	path string
	msg  string
}

// lineOf returns the line of the deepest node on path that exists in file, so
// that a missing field is reported at its parent.
func lineOf(file *ast.File, path string) int {
	if file == nil {
		return 0
	}
	for p := path; p != ""; p = parentPath(p) {
		yp, err := yaml.PathString("$." + p)
		if err != nil {
			continue
		}
		if node, err := yp.FilterFile(file); err == nil && node != nil && node.GetToken() != nil {
			return node.GetToken().Position.Line
		}
	}
	return 1
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

var (
	logicalNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,49}$`)
	entitySetRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)
)

// reservedSegments are first URL segments the emulator serves itself; an
// entity set may not shadow them.
var reservedSegments = map[string]bool{
	"EntityDefinitions": true, "WhoAmI": true, "$metadata": true, "$batch": true,
	"RelationshipDefinitions": true, "GlobalOptionSetDefinitions": true,
}

// systemColumns are added to every table; user attributes may not reuse them.
var systemColumns = []string{"createdon", "modifiedon", "versionnumber", "statecode", "statuscode", "createdby", "modifiedby"}

// keyTypes are the column types a Dataverse alternate key may contain.
var keyTypes = map[string]bool{
	"string": true, "integer": true, "decimal": true, "datetime": true, "dateonly": true,
	"lookup": true, "picklist": true,
}

// validateSchema checks everything New relies on and returns every problem.
func validateSchema(s *Schema) []problem {
	var probs []problem
	add := func(path, format string, args ...any) {
		probs = append(probs, problem{path, fmt.Sprintf(format, args...)})
	}
	if s.Version != 0 && s.Version != 1 {
		add("version", "unsupported version %d (want 1)", s.Version)
	}
	if len(s.Tables) == 0 {
		add("tables", "at least one table is required")
	}
	logical := map[string]int{}
	sets := map[string]int{}
	for i, t := range s.Tables {
		if t.LogicalName != "" {
			if j, dup := logical[t.LogicalName]; dup {
				add(fmt.Sprintf("tables[%d].logical_name", i), "duplicate logical name %q (also tables[%d])", t.LogicalName, j)
			}
			logical[t.LogicalName] = i
		}
		if t.EntitySet != "" {
			if j, dup := sets[t.EntitySet]; dup {
				add(fmt.Sprintf("tables[%d].entity_set", i), "duplicate entity set %q (also tables[%d])", t.EntitySet, j)
			}
			sets[t.EntitySet] = i
		}
	}
	for i, t := range s.Tables {
		if t.LogicalName == systemUserLogical || t.EntitySet == systemUserSet {
			add(fmt.Sprintf("tables[%d]", i), "the %s table (%s) is provided by the emulator", systemUserLogical, systemUserSet)
		}
	}
	// Lookups may point at the built-in user table.
	logical[systemUserLogical] = -1
	for i := range s.Tables {
		probs = append(probs, validateTable(&s.Tables[i], fmt.Sprintf("tables[%d]", i), logical)...)
	}
	probs = append(probs, validateApplications(s.Applications)...)
	probs = append(probs, validateWebhooks(s)...)
	probs = append(probs, validateEventHubs(s)...)
	return probs
}

func validateApplications(apps []Application) []problem {
	var probs []problem
	ids := map[string]int{}
	for i, a := range apps {
		path := fmt.Sprintf("applications[%d]", i)
		if a.ClientID == "" {
			probs = append(probs, problem{path + ".client_id", "is required"})
		} else if j, dup := ids[strings.ToLower(a.ClientID)]; dup {
			probs = append(probs, problem{path + ".client_id", fmt.Sprintf("duplicate client id (also applications[%d])", j)})
		}
		ids[strings.ToLower(a.ClientID)] = i
		if a.ClientSecret == "" {
			probs = append(probs, problem{path + ".client_secret", "is required"})
		}
		if a.UserID != "" {
			if _, err := uuid.Parse(a.UserID); err != nil {
				probs = append(probs, problem{path + ".user_id", fmt.Sprintf("%q is not a GUID", a.UserID)})
			}
		}
	}
	return probs
}

func validateTable(t *Table, path string, tables map[string]int) []problem {
	var probs []problem
	add := func(field, format string, args ...any) {
		probs = append(probs, problem{path + field, fmt.Sprintf(format, args...)})
	}
	switch {
	case t.LogicalName == "":
		add(".logical_name", "is required")
	case !logicalNameRE.MatchString(t.LogicalName):
		add(".logical_name", "%q is not a logical name (lower-case letters, digits and _, starting with a letter)", t.LogicalName)
	}
	switch {
	case t.EntitySet == "":
		add(".entity_set", "is required")
	case !entitySetRE.MatchString(t.EntitySet):
		add(".entity_set", "%q is not a valid entity set name", t.EntitySet)
	case reservedSegments[t.EntitySet]:
		add(".entity_set", "%q is reserved by the Web API", t.EntitySet)
	}
	primaryID := t.PrimaryID
	if primaryID == "" {
		primaryID = t.LogicalName + "id"
	} else if !logicalNameRE.MatchString(primaryID) {
		add(".primary_id", "%q is not a column logical name", primaryID)
	}

	names := map[string]string{primaryID: "the primary id"}
	for _, c := range systemColumns {
		names[c] = "a system column added to every table"
	}
	if t.Elastic {
		names["partitionid"] = "the partition column of elastic tables"
	}
	attrs := map[string]*Attribute{}
	for i := range t.Attributes {
		a := &t.Attributes[i]
		ap := fmt.Sprintf(".attributes[%d]", i)
		switch {
		case a.Name == "":
			add(ap+".name", "is required")
		case !logicalNameRE.MatchString(a.Name):
			add(ap+".name", "%q is not a column logical name (lower-case letters, digits and _, starting with a letter)", a.Name)
		case names[a.Name] != "":
			add(ap+".name", "%q clashes with %s", a.Name, names[a.Name])
		default:
			names[a.Name] = fmt.Sprintf("attribute %s", ap[1:])
			attrs[a.Name] = a
		}
		probs = append(probs, validateAttribute(a, path+ap, tables)...)
		// Navigation property names share the property namespace.
		if a.Type == "lookup" && len(a.Targets) > 1 {
			for _, target := range a.Targets {
				nav := a.Name + "_" + target
				if other, clash := names[nav]; clash {
					add(ap+".targets", "navigation property %q clashes with %s", nav, other)
				}
				names[nav] = fmt.Sprintf("a navigation property of %s", ap[1:])
			}
		}
	}
	if t.PrimaryName != "" {
		a, ok := attrs[t.PrimaryName]
		switch {
		case !ok:
			add(".primary_name", "%q is not one of the table's attributes", t.PrimaryName)
		case a.Type != "string":
			add(".primary_name", "%q has type %s; the primary name must be a string", t.PrimaryName, a.Type)
		}
	}

	if len(t.Keys) > 10 {
		add(".keys", "a table has at most 10 alternate keys, got %d", len(t.Keys))
	}
	keyNames := map[string]bool{}
	keySets := map[string]string{}
	for i, k := range t.Keys {
		kp := fmt.Sprintf(".keys[%d]", i)
		switch {
		case k.Name == "":
			add(kp+".name", "is required")
		case keyNames[k.Name]:
			add(kp+".name", "duplicate key name %q", k.Name)
		}
		keyNames[k.Name] = true
		if len(k.Attributes) == 0 || len(k.Attributes) > 16 {
			add(kp+".attributes", "a key has 1 to 16 attributes, got %d", len(k.Attributes))
		}
		seen := map[string]bool{}
		for j, name := range k.Attributes {
			ap := fmt.Sprintf("%s.attributes[%d]", kp, j)
			a, ok := attrs[name]
			switch {
			case !ok:
				add(ap, "%q is not one of the table's attributes", name)
			case !keyTypes[a.Type]:
				add(ap, "%q has type %s, which cannot be part of a key (string, integer, decimal, datetime, dateonly, lookup, picklist can)", name, a.Type)
			case seen[name]:
				add(ap, "%q appears twice", name)
			}
			seen[name] = true
		}
		set := sortedKeyAttrs(k.Attributes)
		if other, dup := keySets[set]; dup && len(k.Attributes) > 0 {
			add(kp+".attributes", "same columns as key %q", other)
		}
		keySets[set] = k.Name
	}
	return probs
}

func validateAttribute(a *Attribute, path string, tables map[string]int) []problem {
	var probs []problem
	add := func(field, format string, args ...any) {
		probs = append(probs, problem{path + field, fmt.Sprintf(format, args...)})
	}
	typ, known := attrTypeNames[a.Type]
	if !known || typ == tState || typ == tStatus {
		if a.Type == "" {
			add(".type", "is required")
		} else {
			add(".type", "unknown type %q (want one of %s)", a.Type, strings.Join(userTypeNames, ", "))
		}
		return probs
	}
	if a.MaxLength != 0 {
		limit := map[attrType]int{tString: 4000, tMemo: 1048576}[typ]
		switch {
		case limit == 0:
			add(".max_length", "only string and memo attributes have a max_length")
		case a.MaxLength < 1 || a.MaxLength > limit:
			add(".max_length", "%d is out of range 1..%d for %s", a.MaxLength, limit, a.Type)
		}
	}
	if a.Precision != nil {
		limit, ok := map[attrType]int{tDecimal: 10, tMoney: 4, tDouble: 5}[typ]
		switch {
		case !ok:
			add(".precision", "only decimal, money and double attributes have a precision")
		case *a.Precision < 0 || *a.Precision > limit:
			add(".precision", "%d is out of range 0..%d for %s", *a.Precision, limit, a.Type)
		}
	}
	if typ == tPicklist || typ == tMultiSelect {
		if len(a.Options) == 0 {
			add(".options", "a %s needs at least one option", a.Type)
		}
		seen := map[int]bool{}
		for i, o := range a.Options {
			if seen[o] {
				add(fmt.Sprintf(".options[%d]", i), "duplicate option %d", o)
			}
			if o < -2147483648 || o > 2147483647 {
				add(fmt.Sprintf(".options[%d]", i), "option %d is not a 32-bit integer", o)
			}
			seen[o] = true
		}
	} else if len(a.Options) > 0 {
		add(".options", "only picklist and multiselectpicklist attributes have options")
	}
	if typ == tLookup {
		if len(a.Targets) == 0 {
			add(".targets", "a lookup needs at least one target table")
		}
		seen := map[string]bool{}
		for i, target := range a.Targets {
			if _, ok := tables[target]; !ok {
				add(fmt.Sprintf(".targets[%d]", i), "%q is not the logical name of a table in this schema", target)
			}
			if seen[target] {
				add(fmt.Sprintf(".targets[%d]", i), "duplicate target %q", target)
			}
			seen[target] = true
		}
	} else if len(a.Targets) > 0 {
		add(".targets", "only lookup attributes have targets")
	}
	return probs
}

func sortedKeyAttrs(names []string) string {
	return strings.Join(slices.Sorted(slices.Values(names)), ",")
}
