package kafka

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
	"github.com/dvsync/dvsync/internal/testenv"
)

func TestDeadLetterWriter(t *testing.T) {
	k := testenv.StartKafka(t, "dlq")
	d, err := NewDeadLetterWriter(testContext(t), DeadLetterConfig{Connection: plainConn(k), Topic: "dlq"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })

	at := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	src := change.Record{Op: change.OpUpdate, Table: "public.accounts", Key: key(9),
		After:    change.Row{{Name: "id", Value: change.Int(9)}, {Name: "credit", Value: change.MustDecimal("10.50")}},
		Position: change.Position{1, 2, 3}, CommitTime: at, Origin: change.Origin{System: "postgres", Name: "app"},
		Meta: map[string]string{"xid": "77", "lsn": "0/16B3748"}}
	mapped := src
	mapped.Table = "account"
	mapped.Key = change.Key{{Name: "accountid", Value: change.Text("a-9")}}
	letters := []DeadLetter{
		{ID: 3, Pipeline: "crm", Stage: "write", Reason: "400: credit out of range", Time: at, Record: mapped, Sources: []change.Record{src}},
		{Pipeline: "crm", Stage: "map", Reason: "no mapping", Time: at, Record: change.Record{Op: change.OpTruncate, Table: "public.x"}},
	}
	if err := d.Write(testContext(t), letters...); err != nil {
		t.Fatal(err)
	}

	msgs := allMessages(t, k, "dlq")
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	type record struct {
		Op         string            `json:"op"`
		Table      string            `json:"table"`
		Key        json.RawMessage   `json:"key"`
		Before     json.RawMessage   `json:"before"`
		After      json.RawMessage   `json:"after"`
		Position   []byte            `json:"position"`
		CommitTime *time.Time        `json:"commit_time"`
		Origin     change.Origin     `json:"origin"`
		Meta       map[string]string `json:"meta"`
	}
	type letter struct {
		ID       uint64          `json:"id"`
		Pipeline string          `json:"pipeline"`
		Stage    string          `json:"stage"`
		Reason   string          `json:"reason"`
		Time     time.Time       `json:"time"`
		Table    string          `json:"table"`
		Op       string          `json:"op"`
		Key      json.RawMessage `json:"key"`
		Record   record          `json:"record"`
		Sources  []record        `json:"sources"`
	}
	for _, m := range msgs {
		if o, _ := header(m, kafkaconn.HeaderOrigin); o != kafkaconn.DefaultOrigin {
			t.Errorf("origin header %q", o)
		}
		var one letter
		if err := json.Unmarshal(m.Value, &one); err != nil {
			t.Fatalf("letter %s: %v", m.Value, err)
		}
		switch one.Stage {
		case "write":
			if string(m.Key) != `{"pipeline":"crm","table":"account","key":{"accountid":"a-9"}}` {
				t.Errorf("write letter key %s", m.Key)
			}
			if one.ID != 3 || one.Reason != "400: credit out of range" || !one.Time.Equal(at) || one.Table != "account" ||
				one.Op != "u" || string(one.Key) != `{"accountid":"a-9"}` {
				t.Errorf("write letter %s", m.Value)
			}
			if len(one.Sources) != 1 {
				t.Fatalf("write letter has %d sources", len(one.Sources))
			}
			s := one.Sources[0]
			if s.Table != "public.accounts" || string(s.After) != `{"id":9,"credit":"10.50"}` || string(s.Position) != "\x01\x02\x03" ||
				s.CommitTime == nil || !s.CommitTime.Equal(at) || s.Origin != src.Origin || s.Meta["xid"] != "77" || string(s.Before) != "null" {
				t.Errorf("source record %+v", s)
			}
		case "map":
			if string(m.Key) != `{"pipeline":"crm","table":"public.x","key":null}` || one.Op != "t" || len(one.Sources) != 0 ||
				one.Record.CommitTime != nil {
				t.Errorf("map letter %s key %s", m.Value, m.Key)
			}
		default:
			t.Errorf("letter %s", m.Value)
		}
	}

	bad := DeadLetter{Record: change.Record{Op: change.OpInsert, Table: "t", Key: key(1), After: change.Row{{Name: "j", Value: change.JSON([]byte("{"))}}}}
	if err := d.Write(testContext(t), bad); !change.IsPermanent(err) {
		t.Fatalf("a letter that does not encode: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestDeadLetterWriterConfig(t *testing.T) {
	k := testenv.StartKafka(t)
	_, err := NewDeadLetterWriter(testContext(t), DeadLetterConfig{Connection: plainConn(k), Topic: "absent"})
	if err == nil || !strings.Contains(err.Error(), "absent do not exist") {
		t.Fatalf("missing topic: %v", err)
	}
	_, err = NewDeadLetterWriter(testContext(t), DeadLetterConfig{Topic: "", Compression: "rar"})
	if err == nil || !strings.Contains(err.Error(), "topic") || !strings.Contains(err.Error(), "compression") || !strings.Contains(err.Error(), "no brokers") {
		t.Fatalf("invalid config: %v", err)
	}
}
