package dataverse

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/dvsync/dvsync/change"
)

// An inbox entry is a record encoded as JSON, every value as its kind and
// its text form (change.Value.AppendText), which each kind parses back
// exactly. The record's Position is not stored: it is the entry's
// sequence number.

type wireRecord struct {
	Op         string            `json:"op"`
	Table      string            `json:"t"`
	Key        []wireColumn      `json:"k"`
	Before     []wireColumn      `json:"b,omitempty"`
	After      []wireColumn      `json:"a,omitempty"`
	HasAfter   bool              `json:"ha,omitempty"`
	CommitTime string            `json:"ct,omitempty"`
	Origin     string            `json:"o,omitempty"`
	Meta       map[string]string `json:"m,omitempty"`
}

// wireColumn is [name, kind, text]; text is absent for null and
// unchanged values.
type wireColumn []string

var opCodes = map[string]change.Op{"c": change.OpInsert, "u": change.OpUpdate, "d": change.OpDelete, "r": change.OpRead}

var kindsByName = func() map[string]change.Kind {
	m := map[string]change.Kind{}
	for k := change.KindUnchanged; k <= change.KindJSON; k++ {
		m[k.String()] = k
	}
	return m
}()

func encodeRecord(r *change.Record) ([]byte, error) {
	w := wireRecord{
		Op: r.Op.String(), Table: r.Table, Key: encodeRow(change.Row(r.Key)),
		Before: encodeRow(r.Before), After: encodeRow(r.After), HasAfter: r.After != nil,
		Origin: r.Origin.Name, Meta: r.Meta,
	}
	if !r.CommitTime.IsZero() {
		w.CommitTime = r.CommitTime.Format(time.RFC3339Nano)
	}
	return json.Marshal(&w)
}

func encodeRow(r change.Row) []wireColumn {
	if r == nil {
		return nil
	}
	out := make([]wireColumn, len(r))
	for i, c := range r {
		switch c.Value.Kind() {
		case change.KindNull, change.KindUnchanged:
			out[i] = wireColumn{c.Name, c.Value.Kind().String()}
		default:
			out[i] = wireColumn{c.Name, c.Value.Kind().String(), string(c.Value.AppendText(nil))}
		}
	}
	return out
}

func decodeRecord(data []byte) (change.Record, error) {
	var w wireRecord
	if err := json.Unmarshal(data, &w); err != nil {
		return change.Record{}, fmt.Errorf("decode inbox entry: %w", err)
	}
	op, ok := opCodes[w.Op]
	if !ok {
		return change.Record{}, fmt.Errorf("decode inbox entry: unknown operation %q", w.Op)
	}
	r := change.Record{Op: op, Table: w.Table, Meta: w.Meta}
	key, err := decodeRow(w.Key)
	if err != nil {
		return change.Record{}, err
	}
	r.Key = change.Key(key)
	if r.Before, err = decodeRow(w.Before); err != nil {
		return change.Record{}, err
	}
	if r.After, err = decodeRow(w.After); err != nil {
		return change.Record{}, err
	}
	if w.HasAfter && r.After == nil {
		r.After = change.Row{}
	}
	if w.CommitTime != "" {
		if r.CommitTime, err = time.Parse(time.RFC3339Nano, w.CommitTime); err != nil {
			return change.Record{}, fmt.Errorf("decode inbox entry: commit time: %w", err)
		}
	}
	r.Origin = change.Origin{System: "dataverse", Name: w.Origin}
	return r, nil
}

func decodeRow(cols []wireColumn) (change.Row, error) {
	if cols == nil {
		return nil, nil
	}
	out := make(change.Row, len(cols))
	for i, c := range cols {
		if len(c) < 2 {
			return nil, fmt.Errorf("decode inbox entry: malformed column %d", i)
		}
		v, err := parseValue(c)
		if err != nil {
			return nil, fmt.Errorf("decode inbox entry: column %s: %w", c[0], err)
		}
		out[i] = change.Column{Name: c[0], Value: v}
	}
	return out, nil
}

func parseValue(c wireColumn) (change.Value, error) {
	kind, ok := kindsByName[c[1]]
	if !ok {
		return change.Value{}, fmt.Errorf("unknown kind %q", c[1])
	}
	switch kind {
	case change.KindUnchanged:
		return change.Unchanged(), nil
	case change.KindNull:
		return change.Null(), nil
	}
	if len(c) != 3 {
		return change.Value{}, fmt.Errorf("a %s without its text", kind)
	}
	s := c[2]
	switch kind {
	case change.KindText:
		return change.Text(s), nil
	case change.KindInt:
		n, err := strconv.ParseInt(s, 10, 64)
		return change.Int(n), err
	case change.KindFloat:
		f, err := strconv.ParseFloat(s, 64)
		return change.Float(f), err
	case change.KindDecimal:
		return change.Decimal(s)
	case change.KindBool:
		b, err := strconv.ParseBool(s)
		return change.Bool(b), err
	case change.KindTimestamp:
		t, err := time.Parse(time.RFC3339Nano, s)
		return change.Timestamp(t), err
	case change.KindDate:
		t, err := time.Parse(time.DateOnly, s)
		return change.Date(t), err
	case change.KindUUID:
		return change.ParseUUID(s)
	case change.KindBytes:
		b, err := hex.DecodeString(s)
		return change.Bytes(b), err
	default: // KindJSON
		return change.JSON([]byte(s)), nil
	}
}
