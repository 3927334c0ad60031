package dataverse

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/dvevent"
	"github.com/dvsync/dvsync/odataclient"
)

// decodeDeltaRow turns a row of a delta query into the row a webhook
// context gives for the same data: a lookup's "_x_value" becomes column
// "x" (its target's UUID) with the target table in
// x+dvevent.LookupNameSuffix; annotations and @odata members are dropped;
// values are typed by the column's metadata (choices as Int, money and
// decimals as exact Decimal, dates as Timestamp, ids as UUID,
// multi-select choices as Text "1,2"), or by their JSON form for a column
// the metadata does not know. Columns keep the service's order.
func decodeDeltaRow(raw []byte, attrs map[string]odataclient.Attribute) (change.Row, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var row change.Row
	annotated := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		key, _ := t.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		if strings.HasPrefix(key, "@") {
			continue
		}
		if base, ann, ok := strings.Cut(key, "@"); ok {
			if "@"+ann == dvevent.LookupNameSuffix && isLookupValue(base) {
				var table string
				if json.Unmarshal(val, &table) == nil && table != "" {
					name := lookupName(base)
					row = row.Set(name+dvevent.LookupNameSuffix, change.Text(table))
					annotated[name] = true
				}
			}
			continue
		}
		name := key
		if isLookupValue(key) {
			name = lookupName(key)
		}
		a, known := attrs[name]
		v, err := deltaValue(val, a, known, isLookupValue(key))
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", name, err)
		}
		row = row.Set(name, v)
		if isLookupValue(key) && !annotated[name] && len(a.Targets) == 1 && !v.IsNull() {
			row = row.Set(name+dvevent.LookupNameSuffix, change.Text(a.Targets[0]))
		}
	}
	return row, nil
}

func isLookupValue(key string) bool {
	return len(key) > len("__value") && strings.HasPrefix(key, "_") && strings.HasSuffix(key, "_value")
}

func lookupName(key string) string { return key[1 : len(key)-len("_value")] }

func deltaValue(raw json.RawMessage, a odataclient.Attribute, known, lookup bool) (change.Value, error) {
	if string(raw) == "null" {
		return change.Null(), nil
	}
	var s string
	isString := len(raw) > 0 && raw[0] == '"'
	if isString {
		if err := json.Unmarshal(raw, &s); err != nil {
			return change.Value{}, errors.New("malformed string")
		}
	}
	typ := a.Type
	if lookup {
		typ = "Lookup"
	} else if !known {
		typ = ""
	}
	switch typ {
	case "Uniqueidentifier", "Lookup", "Customer", "Owner":
		if !isString {
			return change.Value{}, errors.New("an id that is not a string")
		}
		return change.ParseUUID(s)
	case "DateTime":
		if !isString {
			return change.Value{}, errors.New("a date that is not a string")
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return change.Timestamp(t.UTC()), nil
		}
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return change.Value{}, errors.New("a date in no known format")
		}
		return change.Date(t), nil
	case "Integer", "BigInt", "Picklist", "State", "Status":
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return change.Value{}, errors.New("not an integer")
		}
		return change.Int(n), nil
	case "Decimal", "Money", "Double":
		return change.Decimal(string(raw))
	case "Boolean":
		b, err := strconv.ParseBool(string(raw))
		if err != nil {
			return change.Value{}, errors.New("not a boolean")
		}
		return change.Bool(b), nil
	}
	switch {
	case isString:
		return change.Text(s), nil
	case string(raw) == "true" || string(raw) == "false":
		return change.Bool(string(raw) == "true"), nil
	case len(raw) > 0 && (raw[0] == '{' || raw[0] == '['):
		return change.JSON(raw), nil
	}
	if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return change.Int(n), nil
	}
	return change.Decimal(string(raw))
}
