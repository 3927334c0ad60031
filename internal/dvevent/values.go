package dvevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dvsync/dvsync/change"
)

// typeName returns the SDK type of a "__type" hint such as
// "Money:http://schemas.microsoft.com/xrm/2011/Contracts".
func typeName(hint string) string {
	name, _, _ := strings.Cut(hint, ":")
	return name
}

// wireEntity is an Entity or EntityReference as serialized.
type wireEntity struct {
	Type        string          `json:"__type"`
	Attributes  []wireKV        `json:"Attributes"`
	ID          *string         `json:"Id"`
	LogicalName string          `json:"LogicalName"`
	Value       json.RawMessage `json:"Value"`
}

// decodeEntity decodes an Entity (images carry no __type) or an
// EntityReference.
func decodeEntity(raw json.RawMessage) (Entity, error) {
	var w wireEntity
	if err := unmarshal(raw, &w); err != nil {
		return Entity{}, fmt.Errorf("not an entity: %w", err)
	}
	e := Entity{LogicalName: w.LogicalName}
	switch typeName(w.Type) {
	case "", "Entity":
	case "EntityReference":
		e.Reference = true
	default:
		return Entity{}, fmt.Errorf("a %s is not an entity", typeName(w.Type))
	}
	if e.LogicalName == "" {
		return Entity{}, errors.New("the entity has no LogicalName")
	}
	if w.ID != nil && *w.ID != "" {
		id, err := canonicalGUID(*w.ID)
		if err != nil {
			return Entity{}, fmt.Errorf("entity Id: %w", err)
		}
		e.ID = id
	}
	if e.Reference {
		if e.ID == "" {
			return Entity{}, errors.New("the entity reference has no Id")
		}
		return e, nil
	}
	e.Attributes = make(change.Row, 0, len(w.Attributes))
	for i, kv := range w.Attributes {
		if kv.Key == nil || *kv.Key == "" {
			return Entity{}, fmt.Errorf("attribute %d has no key", i)
		}
		name := *kv.Key
		if _, dup := e.Attributes.Get(name); dup {
			return Entity{}, fmt.Errorf("attribute %q appears twice", name)
		}
		v, lookupTable, err := decodeValue(kv.Value)
		if err != nil {
			return Entity{}, fmt.Errorf("attribute %q: %w", name, err)
		}
		e.Attributes = append(e.Attributes, change.Column{Name: name, Value: v})
		if lookupTable != "" {
			e.Attributes = append(e.Attributes, change.Column{Name: name + LookupNameSuffix, Value: change.Text(lookupTable)})
		}
	}
	return e, nil
}

// wireTyped is any "__type"-hinted SDK value.
type wireTyped struct {
	Type        string          `json:"__type"`
	ID          *string         `json:"Id"`
	LogicalName string          `json:"LogicalName"`
	Value       json.RawMessage `json:"Value"`
}

// decodeValue decodes one attribute value. For an EntityReference it also
// returns the referenced table's logical name.
//
//   - null is NULL; true/false Bool;
//   - an integer literal is Int (Decimal beyond int64), any other number
//     Decimal with its exact digits (Decimal, Double and Money columns
//     alike: the literal is kept, nothing is rounded through float64);
//   - "/Date(ms)/" is a UTC Timestamp, a hyphenated GUID a UUID, any
//     other string Text;
//   - OptionSetValue is Int, Money Decimal, EntityReference the UUID of
//     the row it points at, AliasedValue its inner value, an
//     OptionSetValueCollection (an array of OptionSetValue) the option
//     values as Text "1,2" (NULL when empty), as the Web API writes a
//     multi-select choice.
func decodeValue(raw json.RawMessage) (change.Value, string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return change.Value{}, "", errors.New("no value")
	}
	switch raw[0] {
	case 'n':
		if string(raw) != "null" {
			return change.Value{}, "", errors.New("malformed JSON")
		}
		return change.Null(), "", nil
	case 't', 'f':
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return change.Value{}, "", errors.New("malformed JSON")
		}
		return change.Bool(b), "", nil
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return change.Value{}, "", errors.New("malformed JSON string")
		}
		return stringValue(s)
	case '[':
		return collectionValue(raw)
	case '{':
		return typedValue(raw)
	default:
		v, err := numberValue(raw)
		return v, "", err
	}
}

func stringValue(s string) (change.Value, string, error) {
	if strings.HasPrefix(s, "/Date(") {
		t, err := ParseDate(s)
		if err != nil {
			return change.Value{}, "", err
		}
		return change.Timestamp(t), "", nil
	}
	if len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' {
		if v, err := change.ParseUUID(s); err == nil {
			return v, "", nil
		}
	}
	return change.Text(s), "", nil
}

func numberValue(raw json.RawMessage) (change.Value, error) {
	s := string(raw)
	if !strings.ContainsAny(s, ".eE") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return change.Int(n), nil
		}
	}
	v, err := change.Decimal(s)
	if err != nil {
		return change.Value{}, errors.New("malformed number")
	}
	return v, nil
}

func typedValue(raw json.RawMessage) (change.Value, string, error) {
	var w wireTyped
	if err := unmarshal(raw, &w); err != nil {
		return change.Value{}, "", errors.New("malformed typed value")
	}
	switch name := typeName(w.Type); name {
	case "OptionSetValue":
		v, err := numberValue(w.Value)
		if err != nil || v.Kind() != change.KindInt {
			return change.Value{}, "", errors.New("an OptionSetValue whose Value is not an integer")
		}
		return v, "", nil
	case "Money":
		v, err := numberValue(w.Value)
		if err != nil {
			return change.Value{}, "", errors.New("a Money whose Value is not a number")
		}
		if v.Kind() == change.KindInt {
			v = change.MustDecimal(string(bytes.TrimSpace(w.Value)))
		}
		return v, "", nil
	case "EntityReference":
		if w.ID == nil {
			return change.Value{}, "", errors.New("an EntityReference without Id")
		}
		id, err := canonicalGUID(*w.ID)
		if err != nil {
			return change.Value{}, "", fmt.Errorf("EntityReference Id: %w", err)
		}
		v, _ := change.ParseUUID(id)
		return v, w.LogicalName, nil
	case "AliasedValue":
		if len(w.Value) == 0 {
			return change.Value{}, "", errors.New("an AliasedValue without Value")
		}
		return decodeValue(w.Value)
	case "OptionSetValueCollection":
		return collectionValue(w.Value)
	case "":
		return change.Value{}, "", errors.New("an object without a __type hint")
	default:
		return change.Value{}, "", fmt.Errorf("values of type %s are not supported", name)
	}
}

// collectionValue decodes an OptionSetValueCollection.
func collectionValue(raw json.RawMessage) (change.Value, string, error) {
	var items []wireTyped
	if err := unmarshal(raw, &items); err != nil {
		return change.Value{}, "", errors.New("an array that is not an OptionSetValueCollection")
	}
	if len(items) == 0 {
		return change.Null(), "", nil
	}
	var b strings.Builder
	for i, it := range items {
		if typeName(it.Type) != "OptionSetValue" {
			return change.Value{}, "", errors.New("an array that is not an OptionSetValueCollection")
		}
		v, err := numberValue(it.Value)
		if err != nil || v.Kind() != change.KindInt {
			return change.Value{}, "", errors.New("an OptionSetValue whose Value is not an integer")
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(v.Int(), 10))
	}
	return change.Text(b.String()), "", nil
}

func unmarshal(raw json.RawMessage, into any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(into)
}
