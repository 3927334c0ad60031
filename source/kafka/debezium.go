package kafka

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
)

// unwrapConnect returns the payload of Kafka Connect's JSON converter
// envelope ({"schema": ..., "payload": ...}) and its schema, when value is
// one (wrapped), and value itself otherwise. An envelope of exactly those
// two members whose schema has been seen before is split without parsing
// the schema again, which is most of the work of an event.
func unwrapConnect(value []byte, schemas *schemaCache) (payload json.RawMessage, schema *connectSchema, wrapped bool, err error) {
	if st, pl, ok := splitConnect(value); ok {
		if schema, ok = schemas.parse(st); ok {
			return pl, schema, true, nil
		}
	}
	return unwrapConnectSlow(value)
}

// unwrapConnectSlow is unwrapConnect through encoding/json, which reads
// every value and says what is wrong with those that are not JSON.
func unwrapConnectSlow(value []byte) (payload json.RawMessage, schema *connectSchema, wrapped bool, err error) {
	var outer struct {
		Schema  *connectSchema  `json:"schema"`
		Payload json.RawMessage `json:"payload"`
		Op      *string         `json:"op"`
	}
	if err := json.Unmarshal(value, &outer); err != nil {
		return nil, nil, false, fmt.Errorf("value: not a JSON object: %w", err)
	}
	if outer.Op == nil && outer.Payload != nil {
		return outer.Payload, outer.Schema, true, nil
	}
	return value, nil, false, nil
}

// bareEnvelope decodes value in one pass when it is a Debezium envelope
// without Kafka Connect's wrapper, and reports false for anything else:
// a wrapper, a value with a schema member, a value encoding/json cannot
// read. The caller then reads value as unwrapConnect and the envelope's
// decoder do, which say what is wrong with it.
func bareEnvelope(value []byte) (dbzEnvelope, bool) {
	var v struct {
		Before json.RawMessage `json:"before"`
		After  json.RawMessage `json:"after"`
		Op     *string         `json:"op"`
		TsMs   *int64          `json:"ts_ms"`
		Source *struct {
			TsMs *int64 `json:"ts_ms"`
		} `json:"source"`
		Schema  json.RawMessage `json:"schema"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(value, &v); err != nil || v.Schema != nil || v.Op == nil && v.Payload != nil {
		return dbzEnvelope{}, false
	}
	env := dbzEnvelope{Before: v.Before, After: v.After, TsMs: v.TsMs, Source: v.Source}
	if v.Op != nil {
		env.Op = *v.Op
	}
	return env, true
}

// dbzEnvelope is a Debezium change event's payload.
type dbzEnvelope struct {
	Before json.RawMessage `json:"before"`
	After  json.RawMessage `json:"after"`
	Op     string          `json:"op"`
	TsMs   *int64          `json:"ts_ms"`
	Source *struct {
		TsMs *int64 `json:"ts_ms"`
	} `json:"source"`
}

// connectSchema is the part of a Kafka Connect schema the decoder uses:
// field names and the logical types that change how a value is written.
type connectSchema struct {
	Type       string            `json:"type"`
	Name       string            `json:"name"`
	Field      string            `json:"field"`
	Parameters map[string]string `json:"parameters"`
	Fields     []connectSchema   `json:"fields"`
}

// field returns the schema of the named field of a struct schema.
func (s *connectSchema) field(name string) *connectSchema {
	if s == nil {
		return nil
	}
	for i := range s.Fields {
		if s.Fields[i].Field == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// decodeDebezium reads a Debezium change event. skip is true for events
// that change no row (Debezium's transaction and heartbeat messages carry
// no op).
func decodeDebezium(t *Topic, m *kafka.Message, schemas *schemaCache) (rec change.Record, skip bool, err error) {
	if m.Value == nil {
		// The tombstone Debezium sends after a delete, for compaction.
		key, err := tombstoneKey(t, m.Key, true)
		if err != nil {
			return rec, false, err
		}
		return change.Record{Op: change.OpDelete, Key: key}, false, nil
	}
	env, schema, bare := dbzEnvelope{}, (*connectSchema)(nil), false
	if !connectFirst(m.Value) {
		env, bare = bareEnvelope(m.Value)
	}
	if !bare {
		payload, s, wrapped, err := unwrapConnect(m.Value, schemas)
		if err != nil {
			return rec, false, err
		}
		if wrapped && isNull(payload) {
			key, err := tombstoneKey(t, m.Key, true)
			if err != nil {
				return rec, false, err
			}
			return change.Record{Op: change.OpDelete, Key: key}, false, nil
		}
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.UseNumber()
		if err := dec.Decode(&env); err != nil {
			if _, _, _, err := unwrapConnectSlow(m.Value); err != nil {
				return rec, false, err // the same error whether or not the envelope was split
			}
			return rec, false, fmt.Errorf("value: not a Debezium envelope: %w", err)
		}
		schema = s
	}
	switch env.Op {
	case "c":
		rec.Op = change.OpInsert
	case "u":
		rec.Op = change.OpUpdate
	case "d":
		rec.Op = change.OpDelete
	case "r":
		rec.Op = change.OpRead
	case "t":
		rec.Op = change.OpTruncate
	case "":
		return rec, true, nil
	default:
		// "m" (a logical decoding message) and anything newer name no row.
		return rec, true, nil
	}
	if rec.Before, err = dbzRow(env.Before, schema.field("before")); err != nil {
		return rec, false, fmt.Errorf("before: %w", err)
	}
	if rec.Op != change.OpDelete && rec.Op != change.OpTruncate {
		if rec.After, err = dbzRow(env.After, schema.field("after")); err != nil {
			return rec, false, fmt.Errorf("after: %w", err)
		}
		if rec.After == nil {
			return rec, false, fmt.Errorf("op %q without an after row", env.Op)
		}
	}
	switch {
	case env.Source != nil && env.Source.TsMs != nil:
		rec.CommitTime = time.UnixMilli(*env.Source.TsMs).UTC()
	case env.TsMs != nil:
		rec.CommitTime = time.UnixMilli(*env.TsMs).UTC()
	}
	if rec.Op == change.OpTruncate {
		return rec, false, nil
	}
	row := rec.After
	if row == nil {
		row = rec.Before
	}
	switch {
	case len(t.KeyFields) > 0 && row != nil:
		rec.Key, err = keyFrom(row, t.KeyFields)
	case len(m.Key) > 0:
		rec.Key, err = decodeKey(m.Key, "key", true)
	default:
		err = errors.New("the event has no message key, no before row and the topic has no key_fields")
	}
	return rec, false, err
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// dbzRow decodes a before or after row, converting the values whose
// schema names a logical type. A null row is nil.
func dbzRow(raw json.RawMessage, schema *connectSchema) (change.Row, error) {
	if isNull(raw) {
		return nil, nil
	}
	row, err := decodeObject(raw)
	if err != nil {
		return nil, err
	}
	if schema == nil {
		return row, nil
	}
	for i := range row {
		fs := schema.field(row[i].Name)
		if fs == nil || row[i].Value.IsNull() {
			continue
		}
		v, err := logicalValue(row[i].Value, fs)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", row[i].Name, err)
		}
		row[i].Value = v
	}
	return row, nil
}

// logicalValue converts a value as Kafka Connect's JSON converter wrote it
// into the value its schema means: a decimal from its base64 unscaled
// bytes, a date from days, a timestamp from epoch units, bytes from
// base64. Values of other schemas are kept as decoded.
func logicalValue(v change.Value, s *connectSchema) (change.Value, error) {
	switch s.Name {
	case "org.apache.kafka.connect.data.Decimal":
		if v.Kind() != change.KindText {
			return v, nil // decimal.handling.mode=double or string
		}
		scale, err := strconv.Atoi(s.Parameters["scale"])
		if err != nil {
			return v, fmt.Errorf("decimal without a scale parameter")
		}
		return connectDecimal(v.Str(), scale)
	case "io.debezium.data.VariableScaleDecimal":
		if v.Kind() != change.KindJSON {
			return v, nil
		}
		var vs struct {
			Scale int    `json:"scale"`
			Value string `json:"value"`
		}
		if err := json.Unmarshal(v.JSON(), &vs); err != nil {
			return v, fmt.Errorf("variable-scale decimal: %w", err)
		}
		return connectDecimal(vs.Value, vs.Scale)
	case "io.debezium.time.Date", "org.apache.kafka.connect.data.Date":
		if v.Kind() == change.KindInt {
			return change.Date(time.Unix(v.Int()*86400, 0).UTC()), nil
		}
	case "io.debezium.time.Timestamp", "org.apache.kafka.connect.data.Timestamp":
		if v.Kind() == change.KindInt {
			return change.Timestamp(time.UnixMilli(v.Int()).UTC()), nil
		}
	case "io.debezium.time.MicroTimestamp":
		if v.Kind() == change.KindInt {
			return change.Timestamp(time.UnixMicro(v.Int()).UTC()), nil
		}
	case "io.debezium.time.NanoTimestamp":
		if v.Kind() == change.KindInt {
			return change.Timestamp(time.Unix(0, v.Int()).UTC()), nil
		}
	case "io.debezium.time.ZonedTimestamp":
		if v.Kind() == change.KindText {
			ts, err := time.Parse(time.RFC3339Nano, v.Str())
			if err != nil {
				return v, fmt.Errorf("zoned timestamp: %w", err)
			}
			return change.Timestamp(ts), nil
		}
	case "io.debezium.data.Uuid":
		if v.Kind() == change.KindText {
			return change.ParseUUID(v.Str())
		}
	case "io.debezium.data.Json":
		if v.Kind() == change.KindText && json.Valid([]byte(v.Str())) {
			return change.JSON([]byte(v.Str())), nil
		}
	case "":
		if s.Type == "bytes" && v.Kind() == change.KindText {
			b, err := base64.StdEncoding.DecodeString(v.Str())
			if err != nil {
				return v, fmt.Errorf("bytes: %w", err)
			}
			return change.Bytes(b), nil
		}
	}
	return v, nil
}

// connectDecimal decodes Kafka Connect's decimal: the base64 of the
// unscaled value's big-endian two's complement bytes, and a scale.
func connectDecimal(b64 string, scale int) (change.Value, error) {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return change.Value{}, fmt.Errorf("decimal: %w", err)
	}
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	s := n.String()
	if scale > 0 {
		neg := s[0] == '-'
		if neg {
			s = s[1:]
		}
		for len(s) <= scale {
			s = "0" + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
		if neg {
			s = "-" + s
		}
	} else if scale < 0 {
		s += "E" + strconv.Itoa(-scale)
	}
	return change.Decimal(s)
}

func base64Std(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
