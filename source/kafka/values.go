package kafka

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/dvsync/dvsync/change"
)

// decodeObject reads a JSON object into a row, keeping the order of its
// members, which is the row's column order.
func decodeObject(doc []byte) (change.Row, error) {
	if row, ok := scanObject(doc); ok {
		return row, nil
	}
	return decodeObjectSlow(doc)
}

// decodeObjectSlow is decodeObject through encoding/json: it reads every
// object scanObject does not, and says what is wrong with the others.
func decodeObjectSlow(doc []byte) (change.Row, error) {
	// Validate first, for a syntax error that says where it is.
	if err := json.Unmarshal(doc, new(json.RawMessage)); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("a JSON %s where an object was expected", jsonKind(tok))
	}
	var row change.Row
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("not JSON: %w", err)
		}
		name := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("member %q: %w", name, err)
		}
		if _, dup := row.Get(name); dup {
			return nil, fmt.Errorf("member %q appears twice", name)
		}
		v, err := jsonValue(raw)
		if err != nil {
			return nil, fmt.Errorf("member %q: %w", name, err)
		}
		row = append(row, change.Column{Name: name, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("text after the JSON object")
	}
	return row, nil
}

// jsonValue converts one JSON value: strings to text, integers that fit
// 64 bits to ints and every other number to an exact decimal (never a
// float, which would round), booleans, null, and objects and arrays to
// JSON documents.
func jsonValue(raw json.RawMessage) (change.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return change.Value{}, errors.New("empty value")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return change.Value{}, err
		}
		return change.Text(s), nil
	case 't':
		return change.Bool(true), nil
	case 'f':
		return change.Bool(false), nil
	case 'n':
		return change.Null(), nil
	case '{', '[':
		var b bytes.Buffer
		if err := json.Compact(&b, raw); err != nil {
			return change.Value{}, err
		}
		return change.JSON(b.Bytes()), nil
	}
	return number(string(raw))
}

// number converts a JSON number's text.
func number(s string) (change.Value, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return change.Int(i), nil
	}
	v, err := change.Decimal(s)
	if err != nil {
		return change.Value{}, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

func jsonKind(tok json.Token) string {
	switch t := tok.(type) {
	case json.Delim:
		if t == '[' {
			return "array"
		}
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	}
	return "value"
}

// decodeKey turns a message key into a row key. A JSON object gives its
// members in order; wrapped says whether it may be Kafka Connect's
// schema/payload envelope. Any other key (a JSON scalar, plain text) gives
// one column, named name.
func decodeKey(b []byte, name string, wrapped bool) (change.Key, error) {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' {
		row, err := decodeObject(t)
		if err != nil {
			return nil, fmt.Errorf("message key: %w", err)
		}
		if wrapped {
			if payload, ok := schemaPayload(row); ok {
				if payload.Kind() != change.KindJSON {
					return change.Key{{Name: name, Value: payload}}, nil
				}
				if row, err = decodeObject(payload.JSON()); err != nil {
					return nil, fmt.Errorf("message key payload: %w", err)
				}
			}
		}
		if len(row) == 0 {
			return nil, errors.New("message key is an empty object")
		}
		return change.Key(row), nil
	}
	if len(t) > 0 && json.Valid(t) {
		v, err := jsonValue(t)
		if err != nil {
			return nil, fmt.Errorf("message key: %w", err)
		}
		if v.IsNull() || v.Kind() == change.KindJSON {
			return nil, errors.New("message key is JSON null or an array")
		}
		return change.Key{{Name: name, Value: v}}, nil
	}
	if !utf8.Valid(b) {
		return change.Key{{Name: name, Value: change.Bytes(b)}}, nil
	}
	return change.Key{{Name: name, Value: change.Text(string(b))}}, nil
}

// schemaPayload returns the payload of Kafka Connect's JSON converter
// envelope ({"schema": ..., "payload": ...}) when row is one.
func schemaPayload(row change.Row) (change.Value, bool) {
	if len(row) != 2 {
		return change.Value{}, false
	}
	if _, ok := row.Get("schema"); !ok {
		return change.Value{}, false
	}
	return row.Get("payload")
}

// keyFrom picks the named fields of row, in order, as a key.
func keyFrom(row change.Row, fields []string) (change.Key, error) {
	key := make(change.Key, len(fields))
	for i, f := range fields {
		v, ok := row.Get(f)
		if !ok {
			return nil, fmt.Errorf("key field %q is missing", f)
		}
		if v.IsNull() {
			return nil, fmt.Errorf("key field %q is null", f)
		}
		key[i] = change.Column{Name: f, Value: v}
	}
	return key, nil
}
