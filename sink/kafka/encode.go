package kafka

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dvsync/dvsync/change"
)

// Values are encoded by change.Value.MarshalJSON, the same mapping every
// dvsync JSON output uses:
//
//   - decimals as JSON strings ("12.3400"), exact and with their scale,
//     which is what Debezium writes with decimal.handling.mode=string and
//     what a consumer without schemas can parse without float loss;
//   - timestamps as RFC 3339 strings with their offset and dates as
//     "YYYY-MM-DD" (Debezium's ZonedTimestamp and ISO date forms, rather
//     than its epoch-based integers, which need the schema to read);
//   - UUIDs as canonical strings, bytes as base64, JSON documents inline,
//     integers, floats and booleans as JSON numbers and booleans.
//
// A column whose value is Unchanged (the source did not send it) is left
// out of the row, never written as null: a consumer merging the event
// into its copy of the row keeps its old value.

// appendKey appends the record key as a JSON object in key order.
func appendKey(dst []byte, key change.Key) ([]byte, error) {
	return appendColumns(dst, key)
}

// appendRow appends row as a JSON object in column order, leaving out
// Unchanged columns; a nil row is JSON null.
func appendRow(dst []byte, row change.Row) ([]byte, error) {
	if row == nil {
		return append(dst, "null"...), nil
	}
	return appendColumns(dst, row)
}

func appendColumns(dst []byte, cols []change.Column) ([]byte, error) {
	dst = append(dst, '{')
	first := true
	for _, c := range cols {
		if c.Value.IsUnchanged() {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, c.Name)
		dst = append(dst, ':')
		v, err := c.Value.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		dst = append(dst, v...)
	}
	return append(dst, '}'), nil
}

func appendString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always marshals
	return append(dst, b...)
}

// eventSource is what the Debezium "source" block says about a record.
type eventSource struct {
	version string
	name    string
}

// appendDebezium appends rec as a Debezium change event without the
// schema wrapper. now is the event's ts_ms, when dvsync processed it;
// source.ts_ms is when the source committed it (0 if unknown).
func appendDebezium(dst []byte, rec *change.Record, src eventSource, now time.Time) ([]byte, error) {
	var err error
	dst = append(dst, `{"before":`...)
	if dst, err = appendRow(dst, rec.Before); err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	dst = append(dst, `,"after":`...)
	after := rec.After
	if rec.Op == change.OpDelete || rec.Op == change.OpTruncate {
		after = nil
	}
	if dst, err = appendRow(dst, after); err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	dst = append(dst, `,"source":{"version":`...)
	dst = appendString(dst, src.version)
	dst = append(dst, `,"connector":"dvsync","name":`...)
	dst = appendString(dst, src.name)
	dst = append(dst, `,"ts_ms":`...)
	dst = strconv.AppendInt(dst, millis(rec.CommitTime), 10)
	if rec.Op == change.OpRead {
		dst = append(dst, `,"snapshot":"true"`...)
	} else {
		dst = append(dst, `,"snapshot":"false"`...)
	}
	dst = append(dst, `,"table":`...)
	dst = appendString(dst, rec.Table)
	if rec.Position != nil {
		// Opaque to everyone but the source that made it; base64 keeps
		// it intact for an operator correlating an event with a log.
		dst = append(dst, `,"position":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, rec.Position)
		dst = append(dst, '"')
	}
	if rec.Origin.System != "" || rec.Origin.Name != "" {
		dst = append(dst, `,"origin":{"system":`...)
		dst = appendString(dst, rec.Origin.System)
		dst = append(dst, `,"name":`...)
		dst = appendString(dst, rec.Origin.Name)
		dst = append(dst, '}')
	}
	dst = append(dst, `},"op":"`...)
	dst = append(dst, rec.Op.String()...)
	dst = append(dst, `","ts_ms":`...)
	dst = strconv.AppendInt(dst, millis(now), 10)
	return append(dst, '}'), nil
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

var errTruncateJSON = errors.New("a truncate has no plain-JSON form; publish this table with format debezium")

// encoded is the messages one record becomes: a key and a value (nil for
// a tombstone, the FormatJSON delete) and, for a Debezium delete, possibly
// a tombstone after it.
type encoded struct {
	key    []byte
	value  []byte
	follow bool // a tombstone follows the value
}

// encode turns rec into its messages under t.
func encode(rec *change.Record, t Table, src eventSource, now time.Time) (encoded, error) {
	var e encoded
	switch rec.Op {
	case change.OpInsert, change.OpUpdate, change.OpRead, change.OpDelete:
		if len(rec.Key) == 0 {
			return e, fmt.Errorf("%s record has no key", rec.Op)
		}
		k, err := appendKey(nil, rec.Key)
		if err != nil {
			return e, fmt.Errorf("key: %w", err)
		}
		e.key = k
	case change.OpTruncate:
	default:
		return e, fmt.Errorf("unknown operation %s", rec.Op)
	}
	if t.Format == FormatJSON {
		switch rec.Op {
		case change.OpTruncate:
			return e, errTruncateJSON
		case change.OpDelete:
			return e, nil // a tombstone
		}
		if rec.After == nil {
			return e, fmt.Errorf("%s record has no row", rec.Op)
		}
		v, err := appendRow(nil, rec.After)
		if err != nil {
			return e, err
		}
		e.value = v
		return e, nil
	}
	v, err := appendDebezium(nil, rec, src, now)
	if err != nil {
		return e, err
	}
	e.value = v
	e.follow = rec.Op == change.OpDelete && t.Tombstones
	return e, nil
}
