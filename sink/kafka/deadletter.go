package kafka

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
)

// DeadLetter is a record the engine gave up on, as a DeadLetterWriter
// publishes it. It mirrors the state store's dead letter so the engine can
// hand either to an operator.
type DeadLetter struct {
	// ID is the letter's id in the state store, 0 when it has none.
	ID       uint64
	Pipeline string
	// Stage is where the record failed: "map" or "write".
	Stage  string
	Reason string
	Time   time.Time
	// Record is the record that failed: the source record for "map", the
	// mapped record for "write".
	Record change.Record
	// Sources are, for "write", the source records folded into Record,
	// in source order.
	Sources []change.Record
}

// DeadLetterConfig configures a DeadLetterWriter.
type DeadLetterConfig struct {
	Connection kafkaconn.Config `yaml:"connection"`
	// Topic receives the letters.
	Topic string `yaml:"topic"`
	// Origin, Compression and CreateTopics mean what they mean in Config.
	Origin       string `yaml:"origin,omitempty"`
	Compression  string `yaml:"compression,omitempty"`
	CreateTopics bool   `yaml:"create_topics,omitempty"`
}

// DeadLetterWriter publishes dead letters to a topic, one JSON message per
// letter, so that operators can watch, alert on and replay failures with
// their usual Kafka tools. It is safe for concurrent use.
//
// The message key is {"pipeline":…,"table":…,"key":{…}}: a row's letters
// share a partition and stay in order. The value is
//
//	{"id":7,"pipeline":"crm","stage":"write","reason":"…","time":"…",
//	 "table":"account","op":"u","key":{…},"record":{…},"sources":[{…}]}
//
// where a record is {"op","table","key","before","after","position"
// (base64),"commit_time","origin":{"system","name"},"meta"}, with values
// encoded as the sink encodes them.
type DeadLetterWriter struct {
	topic     string
	w         *kafkago.Writer
	tr        *kafkago.Transport
	headers   []kafkago.Header
	closeOnce sync.Once
}

// NewDeadLetterWriter checks the connection and, unless cfg.CreateTopics
// is set, that the topic exists, and returns a writer for it.
func NewDeadLetterWriter(ctx context.Context, cfg DeadLetterConfig) (*DeadLetterWriter, error) {
	var errs []error
	if err := cfg.Connection.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("connection: %w", err))
	}
	if err := validTopic(cfg.Topic); err != nil || cfg.Topic == "" {
		errs = append(errs, fmt.Errorf("topic: %q is not a valid topic name", cfg.Topic))
	}
	if _, err := compression(cfg.Compression); err != nil {
		errs = append(errs, fmt.Errorf("compression: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("kafka dead letters: %w", err)
	}
	pc := Config{Connection: cfg.Connection, Origin: cfg.Origin, Compression: cfg.Compression, CreateTopics: cfg.CreateTopics}.withDefaults()
	w, tr, err := newProducer(ctx, pc, []string{cfg.Topic})
	if err != nil {
		return nil, fmt.Errorf("kafka dead letters: %w", err)
	}
	return &DeadLetterWriter{
		topic:   cfg.Topic,
		w:       w,
		tr:      tr,
		headers: []kafkago.Header{{Key: kafkaconn.HeaderOrigin, Value: []byte(pc.Origin)}},
	}, nil
}

// Write publishes the letters and returns when the brokers have
// acknowledged all of them. On error, any of them may or may not have
// been published; writing them again may duplicate some, which a reader
// of dead letters tolerates. A letter that cannot be encoded fails the
// whole call with a permanent error before anything is sent.
func (d *DeadLetterWriter) Write(ctx context.Context, letters ...DeadLetter) error {
	msgs := make([]kafkago.Message, 0, len(letters))
	for i := range letters {
		m, err := encodeDeadLetter(&letters[i])
		if err != nil {
			return change.Permanent(fmt.Errorf("kafka dead letters: %s: %w", &letters[i].Record, err))
		}
		m.Topic, m.Headers = d.topic, d.headers
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := d.w.WriteMessages(ctx, msgs...); err != nil {
		var werrs kafkago.WriteErrors
		if errors.As(err, &werrs) {
			for _, e := range werrs {
				if e != nil {
					return classify(e)
				}
			}
		}
		return classify(err)
	}
	return nil
}

// Close releases the producer. Writes must have returned first. Closing
// twice is harmless.
func (d *DeadLetterWriter) Close() error {
	var err error
	d.closeOnce.Do(func() {
		err = d.w.Close()
		d.tr.CloseIdleConnections()
	})
	if err != nil {
		return fmt.Errorf("kafka dead letters: close: %w", err)
	}
	return nil
}

func encodeDeadLetter(l *DeadLetter) (kafkago.Message, error) {
	var err error
	k := []byte(`{"pipeline":`)
	k = appendString(k, l.Pipeline)
	k = append(k, `,"table":`...)
	k = appendString(k, l.Record.Table)
	k = append(k, `,"key":`...)
	if k, err = appendKeyOrNull(k, l.Record.Key); err != nil {
		return kafkago.Message{}, fmt.Errorf("key: %w", err)
	}
	k = append(k, '}')

	v := []byte(`{"id":`)
	v = strconv.AppendUint(v, l.ID, 10)
	v = append(v, `,"pipeline":`...)
	v = appendString(v, l.Pipeline)
	v = append(v, `,"stage":`...)
	v = appendString(v, l.Stage)
	v = append(v, `,"reason":`...)
	v = appendString(v, l.Reason)
	v = append(v, `,"time":`...)
	v = appendString(v, l.Time.Format(time.RFC3339Nano))
	v = append(v, `,"table":`...)
	v = appendString(v, l.Record.Table)
	v = append(v, `,"op":`...)
	v = appendString(v, l.Record.Op.String())
	v = append(v, `,"key":`...)
	if v, err = appendKeyOrNull(v, l.Record.Key); err != nil {
		return kafkago.Message{}, fmt.Errorf("key: %w", err)
	}
	v = append(v, `,"record":`...)
	if v, err = appendRecord(v, &l.Record); err != nil {
		return kafkago.Message{}, err
	}
	v = append(v, `,"sources":[`...)
	for i := range l.Sources {
		if i > 0 {
			v = append(v, ',')
		}
		if v, err = appendRecord(v, &l.Sources[i]); err != nil {
			return kafkago.Message{}, fmt.Errorf("source %d: %w", i, err)
		}
	}
	v = append(v, "]}"...)
	return kafkago.Message{Key: k, Value: v}, nil
}

func appendKeyOrNull(dst []byte, key change.Key) ([]byte, error) {
	if key == nil {
		return append(dst, "null"...), nil
	}
	return appendKey(dst, key)
}

// appendRecord appends the whole record as JSON, for dead letters.
func appendRecord(dst []byte, r *change.Record) ([]byte, error) {
	var err error
	dst = append(dst, `{"op":`...)
	dst = appendString(dst, r.Op.String())
	dst = append(dst, `,"table":`...)
	dst = appendString(dst, r.Table)
	dst = append(dst, `,"key":`...)
	if dst, err = appendKeyOrNull(dst, r.Key); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	dst = append(dst, `,"before":`...)
	if dst, err = appendRow(dst, r.Before); err != nil {
		return nil, fmt.Errorf("before: %w", err)
	}
	dst = append(dst, `,"after":`...)
	if dst, err = appendRow(dst, r.After); err != nil {
		return nil, fmt.Errorf("after: %w", err)
	}
	dst = append(dst, `,"position":`...)
	if r.Position == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, r.Position)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"commit_time":`...)
	if r.CommitTime.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = appendString(dst, r.CommitTime.Format(time.RFC3339Nano))
	}
	dst = append(dst, `,"origin":{"system":`...)
	dst = appendString(dst, r.Origin.System)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, r.Origin.Name)
	dst = append(dst, `},"meta":{`...)
	names := make([]string, 0, len(r.Meta))
	for n := range r.Meta {
		names = append(names, n)
	}
	slices.Sort(names)
	for i, n := range names {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, n)
		dst = append(dst, ':')
		dst = appendString(dst, r.Meta[n])
	}
	return append(dst, "}}"...), nil
}
