package kafka

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
	"github.com/dvsync/dvsync/internal/testenv"
)

func key(id int64) change.Key { return change.Key{{Name: "id", Value: change.Int(id)}} }

func TestDebeziumEvents(t *testing.T) {
	k := testenv.StartKafka(t, "customers")
	s := newSink(t, Config{
		Connection: plainConn(k),
		Tables:     map[string]Table{"public.customers": {Topic: "customers", Tombstones: true}},
		Name:       "crm",
		Version:    "1.2.3",
	})
	commit := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	now := time.Date(2026, 3, 4, 5, 6, 8, 0, time.UTC)
	s.now = func() time.Time { return now }
	uid, _ := change.ParseUUID("0f8fad5b-d9cb-469f-a165-70867728950e")
	base := change.Record{Table: "public.customers", CommitTime: commit, Position: change.Position("lsn/1"),
		Origin: change.Origin{System: "dataverse", Name: "user-1"}}
	insert, update, read, del := base, base, base, base
	insert.Op, insert.Key = change.OpInsert, key(1)
	insert.After = change.Row{{Name: "id", Value: change.Int(1)}, {Name: "name", Value: change.Text("Ada")},
		{Name: "balance", Value: change.MustDecimal("12345678901234567890.1200")}, {Name: "uid", Value: uid}}
	update.Op, update.Key = change.OpUpdate, key(2)
	update.Before = change.Row{{Name: "id", Value: change.Int(2)}, {Name: "name", Value: change.Text("Bob")}}
	update.After = change.Row{{Name: "id", Value: change.Int(2)}, {Name: "name", Value: change.Text("Robert")},
		{Name: "notes", Value: change.Unchanged()}, {Name: "balance", Value: change.Null()}}
	read.Op, read.Key = change.OpRead, key(3)
	read.After = change.Row{{Name: "id", Value: change.Int(3)}}
	del.Op, del.Key = change.OpDelete, key(4)
	del.Before = change.Row{{Name: "id", Value: change.Int(4)}, {Name: "name", Value: change.Text("Dan")}}
	if err := s.Write(testContext(t), []change.Record{insert, update, read, del}); err != nil {
		t.Fatal(err)
	}

	parts := readTopic(t, k, "customers")
	byKey := map[string][]kafkago.Message{}
	n := 0
	for p, msgs := range parts {
		for _, m := range msgs {
			n++
			byKey[string(m.Key)] = append(byKey[string(m.Key)], m)
			if origin, ok := header(m, kafkaconn.HeaderOrigin); !ok || origin != kafkaconn.DefaultOrigin {
				t.Errorf("message %s has origin header %q, %v", m.Key, origin, ok)
			}
			// The Java client's murmur2 partitioner places the key.
			want := (&kafkago.Murmur2Balancer{}).Balance(kafkago.Message{Key: m.Key}, 0, 1, 2)
			if p != want {
				t.Errorf("key %s on partition %d, murmur2 says %d", m.Key, p, want)
			}
		}
	}
	if n != 5 {
		t.Fatalf("%d messages, want 4 events and a tombstone", n)
	}

	e := decodeEnvelope(t, byKey[`{"id":1}`][0])
	if e.Op != "c" || e.Before != nil || e.TsMs != now.UnixMilli() {
		t.Errorf("insert: op %q, before %v, ts_ms %d", e.Op, e.Before, e.TsMs)
	}
	if got := string(e.After["balance"]); got != `"12345678901234567890.1200"` {
		t.Errorf("decimal encoded as %s, want an exact string", got)
	}
	if got := string(e.After["uid"]); got != `"0f8fad5b-d9cb-469f-a165-70867728950e"` {
		t.Errorf("uuid encoded as %s", got)
	}
	src := e.Source
	if src.Connector != "dvsync" || src.Name != "crm" || src.Version != "1.2.3" || src.Table != "public.customers" ||
		src.TsMs != commit.UnixMilli() || src.Snapshot != "false" || string(src.Position) != "lsn/1" ||
		src.Origin == nil || src.Origin.System != "dataverse" || src.Origin.Name != "user-1" {
		t.Errorf("source block = %+v", src)
	}

	e = decodeEnvelope(t, byKey[`{"id":2}`][0])
	if e.Op != "u" || string(e.Before["name"]) != `"Bob"` || string(e.After["name"]) != `"Robert"` {
		t.Errorf("update: %+v", e)
	}
	if _, ok := e.After["notes"]; ok {
		t.Errorf("an Unchanged column was written: %s", e.After["notes"])
	}
	if got, ok := e.After["balance"]; !ok || string(got) != "null" {
		t.Errorf("a NULL column was written as %s, %v", got, ok)
	}

	if e = decodeEnvelope(t, byKey[`{"id":3}`][0]); e.Op != "r" || e.Source.Snapshot != "true" {
		t.Errorf("read: op %q snapshot %q", e.Op, e.Source.Snapshot)
	}

	msgs := byKey[`{"id":4}`]
	if len(msgs) != 2 {
		t.Fatalf("delete became %d messages, want the event and a tombstone", len(msgs))
	}
	if e = decodeEnvelope(t, msgs[0]); e.Op != "d" || e.After != nil || string(e.Before["name"]) != `"Dan"` {
		t.Errorf("delete: %+v", e)
	}
	if msgs[1].Value != nil || msgs[1].Offset != msgs[0].Offset+1 {
		t.Errorf("tombstone: value %q at offset %d after %d", msgs[1].Value, msgs[1].Offset, msgs[0].Offset)
	}
}

func TestTruncateAndTombstoneOptions(t *testing.T) {
	k := testenv.StartKafka(t, "dbz", "plain")
	s := newSink(t, Config{
		Connection: plainConn(k),
		Tables: map[string]Table{
			"a": {Topic: "dbz"}, // no tombstones
			"b": {Topic: "plain", Format: FormatJSON},
		},
		Origin: "site-7",
	})
	batch := []change.Record{
		{Op: change.OpDelete, Table: "a", Key: key(1)},
		{Op: change.OpTruncate, Table: "a"},
		{Op: change.OpInsert, Table: "b", Key: key(1), After: change.Row{{Name: "id", Value: change.Int(1)}, {Name: "x", Value: change.Text("y")}}},
		{Op: change.OpDelete, Table: "b", Key: key(2)},
		{Op: change.OpTruncate, Table: "b"},
	}
	err := s.Write(testContext(t), batch)
	var be *change.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 || !change.IsPermanent(be.Failed[4]) {
		t.Fatalf("Write = %v, want a permanent failure of the plain-JSON truncate only", err)
	}

	dbz := allMessages(t, k, "dbz")
	if len(dbz) != 2 {
		t.Fatalf("debezium topic has %d messages, want a delete and a truncate without tombstone", len(dbz))
	}
	ops := map[string]string{}
	for _, m := range dbz {
		ops[decodeEnvelope(t, m).Op] = string(m.Key)
		if o, _ := header(m, kafkaconn.HeaderOrigin); o != "site-7" {
			t.Errorf("origin header %q, want site-7", o)
		}
	}
	if ops["d"] != `{"id":1}` || ops["t"] != "" {
		t.Errorf("ops by key = %v, want a keyed delete and an unkeyed truncate", ops)
	}

	plain := allMessages(t, k, "plain")
	if len(plain) != 2 {
		t.Fatalf("plain topic has %d messages, want a row and a tombstone", len(plain))
	}
	for _, m := range plain {
		switch string(m.Key) {
		case `{"id":1}`:
			if string(m.Value) != `{"id":1,"x":"y"}` {
				t.Errorf("plain row %s", m.Value)
			}
		case `{"id":2}`:
			if m.Value != nil {
				t.Errorf("plain delete is %q, want a tombstone", m.Value)
			}
		default:
			t.Errorf("unexpected key %s", m.Key)
		}
	}
}

func TestCompositeKeyOrder(t *testing.T) {
	k := testenv.StartKafka(t, "lines")
	s := newSink(t, Config{Connection: plainConn(k), Tables: map[string]Table{"lines": {Topic: "lines", Format: FormatJSON}}})
	rec := change.Record{Op: change.OpInsert, Table: "lines",
		Key:   change.Key{{Name: "order_id", Value: change.Int(7)}, {Name: "line", Value: change.Int(2)}},
		After: change.Row{{Name: "order_id", Value: change.Int(7)}, {Name: "line", Value: change.Int(2)}}}
	if err := s.Write(testContext(t), []change.Record{rec}); err != nil {
		t.Fatal(err)
	}
	msgs := allMessages(t, k, "lines")
	if len(msgs) != 1 || string(msgs[0].Key) != `{"order_id":7,"line":2}` {
		t.Fatalf("messages %v", msgs)
	}
}

func TestBadRecordsFailAloneAndTheRestIsPublished(t *testing.T) {
	k := testenv.StartKafka(t, "t")
	s := newSink(t, Config{Connection: plainConn(k), Tables: map[string]Table{"t": {Topic: "t"}}, BatchBytes: 4096})
	big := strings.Repeat("x", 5000)
	batch := []change.Record{
		{Op: change.OpInsert, Table: "unmapped", Key: key(1), After: change.Row{{Name: "id", Value: change.Int(1)}}},
		{Op: change.OpInsert, Table: "t", Key: key(2), After: change.Row{{Name: "id", Value: change.Int(2)}}},
		{Op: change.OpInsert, Table: "t", Key: key(3), After: change.Row{{Name: "blob", Value: change.Text(big)}}},
		{Op: change.OpInsert, Table: "t", Key: key(4), After: change.Row{{Name: "doc", Value: change.JSON([]byte("{bad"))}}},
		{Op: change.OpInsert, Table: "t", After: change.Row{{Name: "id", Value: change.Int(5)}}},
		{Op: change.OpUpdate, Table: "t", Key: key(6), After: change.Row{{Name: "id", Value: change.Int(6)}}},
	}
	err := s.Write(testContext(t), batch)
	var be *change.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("Write = %v, want a BatchError", err)
	}
	for _, i := range []int{0, 2, 3, 4} {
		if !change.IsPermanent(be.Failed[i]) {
			t.Errorf("record %d: %v, want a permanent error", i, be.Failed[i])
		}
	}
	if len(be.Failed) != 4 {
		t.Errorf("failed = %v, want records 0, 2, 3 and 4", be.Failed)
	}
	if msg := be.Failed[0].Error(); !strings.Contains(msg, "no topic configured for table unmapped") {
		t.Errorf("unmapped table error %q", msg)
	}
	if msg := be.Failed[2].Error(); !strings.Contains(msg, "exceeds batch_bytes 4096") {
		t.Errorf("oversized message error %q", msg)
	}
	var keys []string
	for _, m := range allMessages(t, k, "t") {
		keys = append(keys, string(m.Key))
	}
	if len(keys) != 2 {
		t.Fatalf("published keys %v, want ids 2 and 6", keys)
	}
}

// A Write is not done until the leader has answered the produce request:
// with the broker holding its answer, Write must still be waiting.
func TestWriteReturnsAfterBrokerAck(t *testing.T) {
	k := testenv.StartKafka(t, "acks")
	s := newSink(t, Config{Connection: plainConn(k), Tables: map[string]Table{"t": {Topic: "acks"}}})

	received := make(chan int16, 1)
	release := make(chan struct{})
	k.Cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		received <- req.(*kmsg.ProduceRequest).Acks
		k.Cluster.SleepControl(func() { <-release })
		return nil, nil, false // now let the broker store and answer it
	})
	done := make(chan error, 1)
	go func() {
		done <- s.Write(testContext(t), []change.Record{{Op: change.OpInsert, Table: "t", Key: key(1), After: change.Row{{Name: "id", Value: change.Int(1)}}}})
	}()
	var acks int16
	select {
	case acks = <-received:
	case err := <-done:
		t.Fatalf("Write returned %v before the broker received the produce request", err)
	case <-testContext(t).Done():
		t.Fatal("no produce request")
	}
	if acks != -1 {
		t.Errorf("produce request with acks=%d, want -1 (all)", acks)
	}
	select {
	case err := <-done:
		t.Fatalf("Write returned %v while the broker held its answer", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Write after the ack: %v", err)
	}
	if msgs := allMessages(t, k, "acks"); len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
}

// produceError makes the broker answer every produce request for the
// next n requests with code.
func produceError(k *testenv.Kafka, code int16, n int) *atomic.Int32 {
	var seen atomic.Int32
	k.Cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if seen.Add(1) < int32(n) {
			k.Cluster.KeepControl()
		}
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	return &seen
}

func TestBrokerErrorsClassified(t *testing.T) {
	one := []change.Record{{Op: change.OpInsert, Table: "t", Key: key(1), After: change.Row{{Name: "id", Value: change.Int(1)}}}}
	for _, tc := range []struct {
		name  string
		code  kafkago.Error
		check func(error) bool
		want  string
	}{
		{"rejected record is permanent", kafkago.MessageSizeTooLarge, func(err error) bool {
			var be *change.BatchError
			return errors.As(err, &be) && change.IsPermanent(be.Failed[0])
		}, "permanent"},
		{"authorization is fatal", kafkago.TopicAuthorizationFailed, change.IsFatal, "fatal"},
		{"unavailable broker is retryable", kafkago.NotEnoughReplicas, func(err error) bool {
			_, ok := change.RetryWait(err)
			return ok && !change.IsPermanent(err) && !change.IsFatal(err)
		}, "retryable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testenv.StartKafka(t, "t")
			s := newSink(t, Config{Connection: plainConn(k), Tables: map[string]Table{"t": {Topic: "t"}}})
			produceError(k, int16(tc.code), 10)
			err := s.Write(testContext(t), one)
			if !tc.check(err) {
				t.Fatalf("broker error %v: Write = %v (%T), want %s", tc.code, err, err, tc.want)
			}
		})
	}
}

func TestCompressionCodecs(t *testing.T) {
	for name, codec := range map[string]int8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4, "": 2} {
		t.Run("codec="+name, func(t *testing.T) {
			k := testenv.StartKafka(t, "z")
			s := newSink(t, Config{Connection: plainConn(k), Tables: map[string]Table{"t": {Topic: "z"}}, Compression: name})
			var attrs atomic.Int32
			attrs.Store(-1)
			k.Cluster.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
				recs := kreq.(*kmsg.ProduceRequest).Topics[0].Partitions[0].Records
				// A v2 record batch: attributes sit after base offset
				// (8), length (4), leader epoch (4), magic (1) and crc (4).
				if len(recs) >= 23 {
					attrs.Store(int32(recs[22] & 0x07))
				}
				return nil, nil, false
			})
			var batch []change.Record
			for i := range 20 {
				batch = append(batch, change.Record{Op: change.OpInsert, Table: "t", Key: key(1),
					After: change.Row{{Name: "text", Value: change.Text(strings.Repeat("compressible ", i+10))}}})
			}
			// One key, so one partition and one produce request.
			if err := s.Write(testContext(t), batch); err != nil {
				t.Fatal(err)
			}
			if got := attrs.Load(); got != int32(codec) {
				t.Errorf("record batch codec %d, want %d", got, codec)
			}
			msgs := allMessages(t, k, "z")
			if len(msgs) != 20 || !bytes.Contains(msgs[19].Value, []byte("compressible")) {
				t.Fatalf("read back %d messages", len(msgs))
			}
		})
	}
}

func TestNewChecksTopicsAndCredentials(t *testing.T) {
	k := testenv.StartKafka(t, "exists")
	_, err := New(testContext(t), Config{Connection: plainConn(k), Tables: map[string]Table{
		"a": {Topic: "exists"}, "b": {Topic: "missing"}}})
	if err == nil || !strings.Contains(err.Error(), "missing do not exist") {
		t.Fatalf("New with a missing topic = %v", err)
	}

	// With create_topics the brokers create it on first use.
	s := newSink(t, Config{Connection: plainConn(k), CreateTopics: true, Tables: map[string]Table{"b": {Topic: "created"}}})
	if err := s.Write(testContext(t), []change.Record{{Op: change.OpInsert, Table: "b", Key: key(1), After: change.Row{{Name: "id", Value: change.Int(1)}}}}); err != nil {
		t.Fatalf("write to an auto-created topic: %v", err)
	}
	if msgs := allMessages(t, k, "created"); len(msgs) != 1 {
		t.Fatalf("%d messages in the created topic", len(msgs))
	}

	if _, err := New(testContext(t), Config{Tables: map[string]Table{"a": {Topic: "bad topic"}}, Compression: "brotli"}); err == nil ||
		!strings.Contains(err.Error(), "connection: kafka: no brokers") || !strings.Contains(err.Error(), "tables.a.topic") ||
		!strings.Contains(err.Error(), "compression") {
		t.Fatalf("New with an invalid config = %v", err)
	}
}

func TestSASL(t *testing.T) {
	k := testenv.StartKafkaSASL(t, "dvsync", "correct horse", "secure")
	conn := kafkaconn.Config{Brokers: k.Addrs, SASL: &kafkaconn.SASLConfig{Mechanism: "scram-sha-512", Username: "dvsync", Password: "battery staple"}}
	_, err := New(testContext(t), Config{Connection: conn, Tables: map[string]Table{"t": {Topic: "secure"}}})
	if !kafkaconn.IsAuthError(err) || !strings.Contains(err.Error(), `rejected SASL SCRAM-SHA-512 authentication as user "dvsync"`) {
		t.Fatalf("New with a wrong password = %v, want a clear authentication error", err)
	}
	if strings.Contains(err.Error(), "battery") {
		t.Fatalf("error %q contains the password", err)
	}

	conn.SASL.Password = "correct horse"
	s := newSink(t, Config{Connection: conn, Tables: map[string]Table{"t": {Topic: "secure"}}})
	if err := s.Write(testContext(t), []change.Record{{Op: change.OpInsert, Table: "t", Key: key(1), After: change.Row{{Name: "id", Value: change.Int(1)}}}}); err != nil {
		t.Fatalf("write with SASL: %v", err)
	}
}

func TestWriteAfterCancel(t *testing.T) {
	k := testenv.StartKafka(t, "t")
	s := newSink(t, Config{Connection: plainConn(k), Tables: map[string]Table{"t": {Topic: "t"}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Write(ctx, []change.Record{{Op: change.OpInsert, Table: "t", Key: key(1), After: change.Row{{Name: "id", Value: change.Int(1)}}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a cancelled context = %v", err)
	}
}
