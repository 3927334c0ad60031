package kafka

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
)

// Meta keys of records read from CloudEvents: the event's id, type and
// source attributes.
const (
	MetaCloudEventID     = "ce_id"
	MetaCloudEventType   = "ce_type"
	MetaCloudEventSource = "ce_source"
)

// cloudEvent is a structured-mode CloudEvent, JSON format.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	DataBase64      *string         `json:"data_base64"`
}

// decodeCloudEvent reads a CloudEvent as the Kafka protocol binding
// carries it: in binary mode (ce_specversion header, the value is the
// data) or structured mode (the value is the whole event). The data must
// be a JSON object, the row; an event without data, or a tombstone,
// deletes the row the message key names.
func decodeCloudEvent(t *Topic, m *kafka.Message) (change.Record, error) {
	var ev cloudEvent
	var data []byte
	if header(m, "ce_specversion") != "" {
		ev = cloudEvent{
			SpecVersion:     header(m, "ce_specversion"),
			ID:              header(m, "ce_id"),
			Source:          header(m, "ce_source"),
			Type:            header(m, "ce_type"),
			Time:            header(m, "ce_time"),
			DataContentType: header(m, "content-type"),
		}
		data = m.Value
	} else {
		if m.Value == nil {
			return deleteByKey(t, m)
		}
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			return change.Record{}, fmt.Errorf("value: not a structured CloudEvent: %w", err)
		}
		if ev.SpecVersion == "" {
			return change.Record{}, errors.New("value: not a CloudEvent: no specversion (and no ce_specversion header)")
		}
		data = ev.Data
		if ev.DataBase64 != nil {
			b, err := base64.StdEncoding.DecodeString(*ev.DataBase64)
			if err != nil {
				return change.Record{}, fmt.Errorf("data_base64: %w", err)
			}
			data = b
		}
	}
	if !strings.HasPrefix(ev.SpecVersion, "1.") {
		return change.Record{}, fmt.Errorf("CloudEvents specversion %q is not supported (want 1.0)", ev.SpecVersion)
	}
	if ct := ev.DataContentType; ct != "" && !isJSONContentType(ct) {
		return change.Record{}, fmt.Errorf("CloudEvent data content type %q is not JSON", ct)
	}
	var rec change.Record
	var err error
	if isNull(data) {
		rec, err = deleteByKey(t, m)
	} else {
		rec.After, err = decodeObject(bytes.TrimSpace(data))
		if err != nil {
			return rec, fmt.Errorf("data: %w", err)
		}
		rec.Op = change.OpUpdate
		rec.Key, err = rowKey(t, rec.After, m.Key, false)
	}
	if err != nil {
		return rec, err
	}
	if ev.Time != "" {
		ts, err := time.Parse(time.RFC3339Nano, ev.Time)
		if err != nil {
			return rec, fmt.Errorf("CloudEvent time %q: %w", ev.Time, err)
		}
		rec.CommitTime = ts
	}
	rec.Meta = map[string]string{MetaCloudEventID: ev.ID, MetaCloudEventType: ev.Type, MetaCloudEventSource: ev.Source}
	return rec, nil
}

func deleteByKey(t *Topic, m *kafka.Message) (change.Record, error) {
	key, err := tombstoneKey(t, m.Key, false)
	if err != nil {
		return change.Record{}, err
	}
	return change.Record{Op: change.OpDelete, Key: key}, nil
}

// isJSONContentType reports whether a media type is JSON:
// application/json, or any type with a +json suffix.
func isJSONContentType(ct string) bool {
	ct, _, _ = strings.Cut(ct, ";")
	ct = strings.ToLower(strings.TrimSpace(ct))
	return ct == "application/json" || ct == "text/json" || strings.HasSuffix(ct, "+json")
}

// header returns the value of m's last header named name, or "".
func header(m *kafka.Message, name string) string {
	v := ""
	for _, h := range m.Headers {
		if h.Key == name {
			v = string(h.Value)
		}
	}
	return v
}
