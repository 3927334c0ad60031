package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
)

// OriginHeader is the message header in which dvsync's Kafka sink names
// the dvsync that published the message. A source whose
// Config.SkipOrigin equals its value skips the message.
const OriginHeader = kafkaconn.HeaderOrigin

// Meta keys of the records a Source returns.
const (
	// MetaTopic, MetaPartition and MetaOffset locate the message a record
	// was read from; every record carries them.
	MetaTopic     = "topic"
	MetaPartition = "partition"
	MetaOffset    = "offset"
	// MetaDecodeError marks a record that stands for a message the source
	// could not decode; its value says why. Such a record has the topic as
	// Table, the message's partition and offset as Key
	// (partition=3,offset=1207), no rows, and the message's key and value
	// under MetaMessageKey and MetaMessageValue (as text when they are
	// UTF-8, else as base64 under names ending in "_base64"). It is meant
	// for the dead-letter store: the engine stores it there with the
	// reason, without mapping it, and the partition goes on.
	MetaDecodeError  = "decode_error"
	MetaMessageKey   = "message_key"
	MetaMessageValue = "message_value"
)

// maxDeadLetterBytes caps the message key and value kept in a dead
// letter's Meta, so that one huge malformed message does not bloat the
// store.
const maxDeadLetterBytes = 64 << 10

// decoded is what one message becomes: a record, or nothing (skip).
type decoded struct {
	rec  change.Record
	skip bool
}

// decode turns a message into a record according to its topic's format.
// It never fails: a message it cannot read becomes a record carrying
// MetaDecodeError.
func (s *Source) decode(m *kafka.Message) decoded {
	if s.cfg.SkipOrigin != "" {
		for _, h := range m.Headers {
			if h.Key == OriginHeader && string(h.Value) == s.cfg.SkipOrigin {
				return decoded{skip: true}
			}
		}
	}
	t := s.cfg.topic(m.Topic)
	if t == nil {
		return s.undecodable(m, errors.New("the topic is not configured"))
	}
	var (
		rec  change.Record
		skip bool
		err  error
	)
	switch t.Format {
	case FormatJSON:
		rec, err = decodeJSON(t, m)
	case FormatDebezium:
		rec, skip, err = decodeDebezium(t, m, &s.schemas)
	case FormatCloudEvents:
		rec, err = decodeCloudEvent(t, m)
	case FormatDataverseEvent:
		rec, skip, err = s.decodeDataverseEvent(m)
	}
	switch {
	case err != nil:
		return s.undecodable(m, err)
	case skip:
		return decoded{skip: true}
	}
	if rec.Table == "" {
		rec.Table = m.Topic
	}
	rec.Position = encodePosition(m.Topic, m.Partition, m.Offset)
	if rec.Origin.System == "" {
		rec.Origin.System = "kafka"
		for _, h := range m.Headers {
			if h.Key == OriginHeader {
				rec.Origin.Name = string(h.Value)
			}
		}
	}
	if rec.CommitTime.IsZero() {
		rec.CommitTime = m.Time
	}
	if rec.Meta == nil {
		rec.Meta = make(map[string]string, 3)
	}
	rec.Meta[MetaTopic] = m.Topic
	rec.Meta[MetaPartition] = strconv.Itoa(m.Partition)
	rec.Meta[MetaOffset] = strconv.FormatInt(m.Offset, 10)
	return decoded{rec: rec}
}

// undecodable returns the record that stands for m, which could not be
// decoded because of err (see MetaDecodeError).
func (s *Source) undecodable(m *kafka.Message, err error) decoded {
	meta := map[string]string{
		MetaTopic:       m.Topic,
		MetaPartition:   strconv.Itoa(m.Partition),
		MetaOffset:      strconv.FormatInt(m.Offset, 10),
		MetaDecodeError: fmt.Sprintf("kafka message %s/%d@%d: %v", m.Topic, m.Partition, m.Offset, err),
	}
	keepBytes(meta, MetaMessageKey, m.Key)
	keepBytes(meta, MetaMessageValue, m.Value)
	return decoded{rec: change.Record{
		Op:    change.OpInsert,
		Table: m.Topic,
		Key: change.Key{
			{Name: MetaPartition, Value: change.Int(int64(m.Partition))},
			{Name: MetaOffset, Value: change.Int(m.Offset)},
		},
		Position:   encodePosition(m.Topic, m.Partition, m.Offset),
		CommitTime: m.Time,
		Origin:     change.Origin{System: "kafka"},
		Meta:       meta,
	}}
}

func keepBytes(meta map[string]string, name string, b []byte) {
	if b == nil {
		return
	}
	if len(b) > maxDeadLetterBytes {
		b = b[:maxDeadLetterBytes]
	}
	if utf8.Valid(b) {
		meta[name] = string(b)
		return
	}
	meta[name+"_base64"] = base64Std(b)
}

// decodeJSON reads a FormatJSON message: the value is the row; a
// tombstone deletes the row its key names.
func decodeJSON(t *Topic, m *kafka.Message) (change.Record, error) {
	if m.Value == nil {
		key, err := tombstoneKey(t, m.Key, false)
		if err != nil {
			return change.Record{}, err
		}
		return change.Record{Op: change.OpDelete, Key: key}, nil
	}
	row, err := decodeObject(m.Value)
	if err != nil {
		return change.Record{}, fmt.Errorf("value: %w", err)
	}
	key, err := rowKey(t, row, m.Key, false)
	if err != nil {
		return change.Record{}, err
	}
	return change.Record{Op: change.OpUpdate, Key: key, After: row}, nil
}

// rowKey returns the key of row: its KeyFields when configured, else the
// message key.
func rowKey(t *Topic, row change.Row, msgKey []byte, wrapped bool) (change.Key, error) {
	if len(t.KeyFields) > 0 {
		return keyFrom(row, t.KeyFields)
	}
	if len(msgKey) == 0 {
		return nil, errors.New("the message has no key and the topic has no key_fields")
	}
	return decodeKey(msgKey, "key", wrapped)
}

// tombstoneKey returns the key a tombstone deletes. With KeyFields, an
// object key gives those fields, and a scalar key is the single key field.
func tombstoneKey(t *Topic, msgKey []byte, wrapped bool) (change.Key, error) {
	if len(msgKey) == 0 {
		return nil, errors.New("a tombstone without a key")
	}
	name := "key"
	if len(t.KeyFields) == 1 {
		name = t.KeyFields[0]
	}
	key, err := decodeKey(msgKey, name, wrapped)
	if err != nil || len(t.KeyFields) == 0 {
		return key, err
	}
	if len(key) == 1 && key[0].Name == name {
		return key, nil
	}
	return keyFrom(change.Row(key), t.KeyFields)
}
