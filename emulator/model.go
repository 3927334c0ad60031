package emulator

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
)

// attrType is a column type as the emulator stores and validates it.
type attrType int

const (
	tString attrType = iota
	tMemo
	tInteger
	tBigInt
	tDecimal
	tDouble
	tMoney
	tBoolean
	tDateTime
	tDateOnly
	tGUID
	tPicklist
	tMultiSelect
	tLookup
	tState
	tStatus
)

var attrTypeNames = map[string]attrType{
	"string": tString, "memo": tMemo, "integer": tInteger, "bigint": tBigInt,
	"decimal": tDecimal, "double": tDouble, "money": tMoney, "boolean": tBoolean,
	"datetime": tDateTime, "dateonly": tDateOnly, "uniqueidentifier": tGUID,
	"picklist": tPicklist, "multiselectpicklist": tMultiSelect, "lookup": tLookup,
	"state": tState, "status": tStatus,
}

// userTypeNames are the types a schema may declare, in documentation order.
var userTypeNames = []string{
	"string", "memo", "integer", "bigint", "decimal", "double", "money", "boolean",
	"datetime", "dateonly", "uniqueidentifier", "picklist", "multiselectpicklist", "lookup",
}

// edmType is the CSDL type of the column's Web API property.
func (t attrType) edmType() string {
	switch t {
	case tString, tMemo, tMultiSelect:
		return "Edm.String"
	case tInteger, tPicklist, tState, tStatus:
		return "Edm.Int32"
	case tBigInt:
		return "Edm.Int64"
	case tDecimal, tMoney:
		return "Edm.Decimal"
	case tDouble:
		return "Edm.Double"
	case tBoolean:
		return "Edm.Boolean"
	case tDateTime:
		return "Edm.DateTimeOffset"
	case tDateOnly:
		return "Edm.Date"
	default:
		return "Edm.Guid"
	}
}

// metadataName is the AttributeMetadata.AttributeType value. Multi-select
// choices are "Virtual" columns in Dataverse's metadata; their
// AttributeTypeName says what they are.
func (t attrType) metadataName() string {
	return [...]string{
		"String", "Memo", "Integer", "BigInt", "Decimal", "Double", "Money", "Boolean",
		"DateTime", "DateTime", "Uniqueidentifier", "Picklist", "Virtual", "Lookup", "State", "Status",
	}[t]
}

// attrDef is a compiled column.
type attrDef struct {
	name      string // logical name
	prop      string // Web API property: name, or _name_value for lookups
	typ       attrType
	maxLength int
	precision int
	options   []int
	targets   []*tableDef
	navs      []string // navigation property per target (lookups)
	primaryID bool
	required  bool // RequiredLevel ApplicationRequired
	readOnly  bool // maintained by the emulator; ignored in request bodies
	system    bool
	// idx is the column's slot in a row's vals, or -1 for a column a row
	// keeps outside them (see stampCol).
	idx int
	// stamp tells which of a write's stamps the column is: such columns
	// are not stored per row but shared (see row.created).
	stamp stampCol
	// plain tells that a body member named prop is this column and
	// nothing else (no navigation property of the table has the name, and
	// it holds no '@'), so the direct decoder can resolve it once.
	plain bool
}

// navProp is one single-valued navigation property of a lookup column.
type navProp struct {
	attr   *attrDef
	target *tableDef
}

// keyDef is a compiled alternate key.
type keyDef struct {
	name       string
	attrs      []*attrDef
	metadataID uuid.UUID
}

// tableDef is a compiled table. It is immutable after New.
type tableDef struct {
	logical        string
	set            string
	primaryID      string
	primaryName    string
	changeTracking bool
	elastic        bool
	metadataID     uuid.UUID
	attrs          []*attrDef          // output order
	byProp         map[string]*attrDef // by Web API property name
	byName         map[string]*attrDef // by logical name
	navs           map[string]navProp  // by navigation property name
	keys           []*keyDef
	required       []*attrDef // columns every row must have
	sys            sysAttrs
	qualified      string // typeName, built once: every bulk target names it
	slots          int    // the length of a row's vals
}

// stampCol names the columns a row keeps outside its vals: those a write's
// stamp sets, and the id and version, which the row holds in fields of its
// own, so that a stored row carries no second, boxed copy of them.
type stampCol uint8

const (
	notStamp stampCol = iota
	stampCreatedOn
	stampModifiedOn
	stampCreatedBy
	stampModifiedBy
	stampRowID
	stampVersion
)

// sysAttrs are the columns every table has and every write sets, resolved
// once so that a write finds their slots without a name lookup.
type sysAttrs struct {
	primaryID, stateCode, statusCode                  *attrDef
	createdOn, modifiedOn, createdBy, modifiedBy, ver *attrDef
}

// typeName is the entity type's qualified name used in OData messages.
func (d *tableDef) typeName() string {
	if d.qualified != "" {
		return d.qualified
	}
	return "Microsoft.Dynamics.CRM." + d.logical
}

// metadataNamespace seeds the deterministic MetadataId values, so that the
// same schema always reports the same ids.
var metadataNamespace = uuid.MustParse("6f0c1f0e-2a1b-4d5e-9c7a-3b8e4f1d2c60")

// The built-in user table: the static token's user and one application
// user per Application live here, so that _createdby_value and
// _modifiedby_value point at rows a client can read.
const (
	systemUserLogical = "systemuser"
	systemUserSet     = "systemusers"
)

var systemUserTable = Table{
	LogicalName: systemUserLogical, EntitySet: systemUserSet, PrimaryID: "systemuserid", PrimaryName: "fullname",
	Attributes: []Attribute{
		{Name: "fullname", Type: "string", MaxLength: 200},
		{Name: "applicationid", Type: "uniqueidentifier"},
		{Name: "domainname", Type: "string", MaxLength: 1024},
		{Name: "isdisabled", Type: "boolean"},
	},
}

// compileSchema validates s and builds the table definitions.
func compileSchema(s *Schema) ([]*tableDef, error) {
	if s == nil {
		return nil, errors.New("emulator: nil schema")
	}
	if probs := validateSchema(s); len(probs) > 0 {
		errs := make([]error, len(probs))
		for i, p := range probs {
			errs[i] = fmt.Errorf("schema: %s: %s", p.path, p.msg)
		}
		return nil, errors.Join(errs...)
	}
	byLogical := map[string]*tableDef{}
	tables := append(slices.Clone(s.Tables), systemUserTable)
	defs := make([]*tableDef, len(tables))
	for i, t := range tables {
		d := &tableDef{
			logical:        t.LogicalName,
			set:            t.EntitySet,
			primaryID:      t.PrimaryID,
			primaryName:    t.PrimaryName,
			changeTracking: t.ChangeTracking,
			elastic:        t.Elastic,
			qualified:      "Microsoft.Dynamics.CRM." + t.LogicalName,
			metadataID:     uuid.NewSHA1(metadataNamespace, []byte("entity/"+t.LogicalName)),
			byProp:         map[string]*attrDef{},
			byName:         map[string]*attrDef{},
			navs:           map[string]navProp{},
		}
		if d.primaryID == "" {
			d.primaryID = t.LogicalName + "id"
		}
		defs[i] = d
		byLogical[d.logical] = d
	}
	users := byLogical[systemUserLogical]
	for i, t := range tables {
		d := defs[i]
		d.add(&attrDef{name: d.primaryID, typ: tGUID, primaryID: true, system: true, stamp: stampRowID})
		for _, a := range t.Attributes {
			d.add(compileAttribute(a, byLogical))
		}
		d.add(&attrDef{name: "statecode", typ: tState, options: []int{0, 1}, system: true})
		d.add(&attrDef{name: "statuscode", typ: tStatus, options: []int{1, 2}, system: true})
		d.add(&attrDef{name: "createdon", typ: tDateTime, readOnly: true, system: true, stamp: stampCreatedOn})
		d.add(&attrDef{name: "modifiedon", typ: tDateTime, readOnly: true, system: true, stamp: stampModifiedOn})
		d.add(&attrDef{name: "versionnumber", typ: tBigInt, readOnly: true, system: true, stamp: stampVersion})
		d.add(&attrDef{name: "createdby", typ: tLookup, targets: []*tableDef{users}, navs: []string{"createdby"}, readOnly: true, system: true, stamp: stampCreatedBy})
		d.add(&attrDef{name: "modifiedby", typ: tLookup, targets: []*tableDef{users}, navs: []string{"modifiedby"}, readOnly: true, system: true, stamp: stampModifiedBy})
		d.sys = sysAttrs{
			primaryID: d.byName[d.primaryID], stateCode: d.byName["statecode"], statusCode: d.byName["statuscode"],
			createdOn: d.byName["createdon"], modifiedOn: d.byName["modifiedon"],
			createdBy: d.byName["createdby"], modifiedBy: d.byName["modifiedby"], ver: d.byName["versionnumber"],
		}
		if d.elastic {
			// Elastic tables partition their rows; the value is stored
			// and returned but has no other effect here.
			d.add(&attrDef{name: "partitionid", typ: tString, maxLength: 100, system: true})
		}
		for _, k := range t.Keys {
			kd := &keyDef{name: k.Name, metadataID: uuid.NewSHA1(metadataNamespace, []byte("key/"+t.LogicalName+"/"+k.Name))}
			for _, name := range k.Attributes {
				kd.attrs = append(kd.attrs, d.byName[name])
			}
			d.keys = append(d.keys, kd)
		}
	}
	return defs, nil
}

func compileAttribute(a Attribute, tables map[string]*tableDef) *attrDef {
	ad := &attrDef{name: a.Name, typ: attrTypeNames[a.Type], maxLength: a.MaxLength, required: a.Required}
	switch ad.typ {
	case tString:
		if ad.maxLength == 0 {
			ad.maxLength = 100
		}
	case tMemo:
		if ad.maxLength == 0 {
			ad.maxLength = 2000
		}
	case tDecimal, tMoney, tDouble:
		ad.precision = 2
		if a.Precision != nil {
			ad.precision = *a.Precision
		}
	case tPicklist, tMultiSelect:
		ad.options = append([]int(nil), a.Options...)
	case tLookup:
		for _, target := range a.Targets {
			ad.targets = append(ad.targets, tables[target])
			nav := a.Name
			if len(a.Targets) > 1 {
				nav = a.Name + "_" + target
			}
			ad.navs = append(ad.navs, nav)
		}
	}
	return ad
}

func (d *tableDef) add(a *attrDef) {
	a.prop = a.name
	if a.typ == tLookup {
		a.prop = "_" + a.name + "_value"
		for i, nav := range a.navs {
			d.navs[nav] = navProp{attr: a, target: a.targets[i]}
			if shadowed, ok := d.byProp[nav]; ok {
				shadowed.plain = false
			}
		}
	}
	_, isNav := d.navs[a.prop]
	a.plain = !isNav && !strings.Contains(a.prop, "@")
	a.idx = -1
	if a.stamp == notStamp {
		a.idx = d.slots
		d.slots++
	}
	d.attrs = append(d.attrs, a)
	if a.required {
		d.required = append(d.required, a)
	}
	d.byProp[a.prop] = a
	d.byName[a.name] = a
}

// keyFor returns the alternate key whose columns are exactly props (Web API
// property names, in any order), or nil.
func (d *tableDef) keyFor(props []string) *keyDef {
	if len(props) == 1 {
		// The common case, once per row of a bulk upsert by key: no
		// strings to build.
		for _, k := range d.keys {
			if len(k.attrs) == 1 && k.attrs[0].prop == props[0] {
				return k
			}
		}
		return nil
	}
	want := sortedKeyAttrs(props)
	for _, k := range d.keys {
		names := make([]string, len(k.attrs))
		for i, a := range k.attrs {
			names[i] = a.prop
		}
		if sortedKeyAttrs(names) == want {
			return k
		}
	}
	return nil
}

// attrList renders key columns for messages ("accountnumber, name").
func (k *keyDef) attrList() string {
	names := make([]string, len(k.attrs))
	for i, a := range k.attrs {
		names[i] = a.name
	}
	return strings.Join(names, ", ")
}
