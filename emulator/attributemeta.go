package emulator

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// The type-specific parts of AttributeMetadata: the properties of the
// derived types (StringAttributeMetadata.MaxLength, DecimalAttributeMetadata
// .Precision, …) that Dataverse includes in every Attributes response, and the
// cast path that narrows Attributes to one derived type so that a client can
// expand the options of its choice columns:
//
//	EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.PicklistAttributeMetadata?$select=LogicalName&$expand=OptionSet

// attrMetaSamples are one column of every type, so that attrMetaType knows
// every property some derived type has.
func attrMetaSamples() metaRecord {
	var all metaRecord
	seen := map[string]bool{}
	for t := tString; t <= tStatus; t++ {
		for _, p := range attributeRecord(&tableDef{}, &attrDef{typ: t}) {
			if !seen[p.name] {
				seen[p.name] = true
				all = append(all, p)
			}
		}
	}
	return all
}

// metadataTypeName is the derived AttributeMetadata type of the column,
// without namespace: "StringAttributeMetadata".
func (a *attrDef) metadataTypeName() string {
	switch a.typ {
	case tGUID:
		return "UniqueIdentifierAttributeMetadata"
	case tMultiSelect:
		return "MultiSelectPicklistAttributeMetadata"
	}
	return a.typ.metadataName() + "AttributeMetadata"
}

// attributeTypeName is AttributeMetadata.AttributeTypeName.Value.
func (a *attrDef) attributeTypeName() string {
	if a.typ == tMultiSelect {
		return "MultiSelectPicklistType"
	}
	return a.typ.metadataName() + "Type"
}

// requiredLevel is AttributeMetadata.RequiredLevel.Value: the primary id is
// SystemRequired, as in Dataverse; declared required columns are
// ApplicationRequired.
func (a *attrDef) requiredLevel() string {
	switch {
	case a.primaryID:
		return "SystemRequired"
	case a.required:
		return "ApplicationRequired"
	}
	return "None"
}

// typedMetaProps are the properties of the column's derived metadata type.
// The ranges are the ones decodeValue enforces.
func typedMetaProps(a *attrDef) metaRecord {
	prec := int64(a.precision)
	switch a.typ {
	case tString, tMemo:
		return metaRecord{{"MaxLength", int64(a.maxLength)}}
	case tInteger:
		return metaRecord{{"MinValue", int64(math.MinInt32)}, {"MaxValue", int64(math.MaxInt32)}}
	case tBigInt:
		return metaRecord{{"MinValue", int64(math.MinInt64)}, {"MaxValue", int64(math.MaxInt64)}}
	case tDecimal, tDouble:
		return metaRecord{{"Precision", prec}, {"MinValue", float64(-doubleLimit)}, {"MaxValue", float64(doubleLimit)}}
	case tMoney:
		limit, _ := moneyLimit.Float64()
		return metaRecord{{"Precision", prec}, {"MinValue", -limit}, {"MaxValue", limit}}
	}
	return nil
}

// hasOptionSet reports whether the column's metadata type has an OptionSet
// navigation property.
func (a *attrDef) hasOptionSet() bool {
	switch a.typ {
	case tPicklist, tMultiSelect, tState, tStatus:
		return true
	}
	return false
}

// optionSetRecord is the column's local OptionSetMetadata. The schema has no
// labels, so each option's label is its value.
func optionSetRecord(d *tableDef, a *attrDef) metaRecord {
	options := make([]metaRecord, len(a.options))
	for i, v := range a.options {
		text := strconv.Itoa(v)
		label := metaRecord{{"Label", text}, {"LanguageCode", int64(1033)}}
		options[i] = metaRecord{
			{"Value", int64(v)},
			{"Label", metaRecord{{"LocalizedLabels", []metaRecord{label}}, {"UserLocalizedLabel", label}}},
		}
	}
	kind := "Picklist"
	switch a.typ {
	case tState:
		kind = "State"
	case tStatus:
		kind = "Status"
	}
	return metaRecord{
		{"MetadataId", uuid.NewSHA1(metadataNamespace, []byte("optionset/"+d.logical+"/"+a.name))},
		{"Name", d.logical + "_" + a.name},
		{"IsGlobal", false},
		{"OptionSetType", kind},
		{"Options", options},
	}
}

// serveAttributeCast answers Attributes/Microsoft.Dynamics.CRM.<Type>: the
// table's columns of that derived metadata type, with $select, $filter and,
// for choice types, $expand=OptionSet.
func serveAttributeCast(w http.ResponseWriter, req *request, d *tableDef, cast segment, ctx string) error {
	typeName, ok := strings.CutPrefix(cast.name, "Microsoft.Dynamics.CRM.")
	if !ok || cast.hasArg || !strings.HasSuffix(typeName, "AttributeMetadata") {
		return errSegmentNotFound(cast.name)
	}
	if err := checkOptions(req.query, "$select", "$filter", "$expand"); err != nil {
		return err
	}
	var members []*attrDef
	for _, a := range d.attrs {
		if a.metadataTypeName() == typeName {
			members = append(members, a)
		}
	}
	sel, selCtx, err := parseMetaSelect(attrMetaType, req.query.Get("$select"))
	if err != nil {
		return err
	}
	expandOptions := false
	if e := strings.TrimSpace(req.query.Get("$expand")); e != "" {
		for _, item := range strings.Split(e, ",") {
			item = strings.TrimSpace(item)
			switch {
			case item == "OptionSet" && len(members) > 0 && members[0].hasOptionSet():
				expandOptions = true
			case item == "GlobalOptionSet" && len(members) > 0 && members[0].hasOptionSet():
				// Schema choices are all local: GlobalOptionSet is null.
			default:
				return errNoProperty(item, "Microsoft.Dynamics.CRM."+typeName)
			}
		}
	}
	var filter filterNode
	if req.query.Has("$filter") {
		if filter, err = parseFilter(attrMetaType, req.query.Get("$filter"), req.query); err != nil {
			return err
		}
	}
	buf := []byte(`{"@odata.context":`)
	buf = appendJSONString(buf, req.base+"/$metadata#"+ctx+"/"+cast.name+selCtx)
	buf = append(buf, `,"value":[`...)
	n := 0
	for _, a := range members {
		rec := attributeRecord(d, a)
		if filter != nil && !filter.eval(valueMap(rec.values())) {
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = appendMetaRecord(buf, "", rec, sel)
		if expandOptions {
			buf = append(buf, `,"OptionSet":`...)
			buf = append(appendMetaRecord(buf, "", optionSetRecord(d, a), nil), '}')
		}
		buf = append(buf, '}')
	}
	writeJSON(w, http.StatusOK, append(buf, "]}"...))
	return nil
}

// appendMetaNumber renders an integer or floating-point metadata value.
func appendMetaNumber(buf []byte, v any) []byte {
	switch x := v.(type) {
	case int64:
		return strconv.AppendInt(buf, x, 10)
	case float64:
		return strconv.AppendFloat(buf, x, 'f', -1, 64)
	}
	return fmt.Append(buf, v)
}
