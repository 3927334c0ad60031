package kafka

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/source"
)

var (
	_ source.Source         = (*Source)(nil)
	_ source.HealthReporter = (*Source)(nil)
)

// opsByKey renders each key's operations in the order they arrived.
func opsByKey(recs []change.Record) map[string]string {
	m := map[string]string{}
	for k, rs := range byKey(recs) {
		ops := make([]string, len(rs))
		for i, r := range rs {
			ops[i] = r.Table + ":" + r.Op.String()
		}
		m[k] = strings.Join(ops, ",")
	}
	return m
}

func TestFormatsOverTheBroker(t *testing.T) {
	k := testenv.StartKafka(t, "rows", "dbz", "ce")
	produce(t, k, "rows",
		msg(`{"id":1}`, `{"id":1,"name":"a"}`),
		msg(`{"id":2}`, `{"id":2,"name":"b"}`),
		msg(`{"id":1}`, `{"id":1,"name":"a2"}`),
		msg(`{"id":2}`, ""), // tombstone
	)
	produce(t, k, "dbz",
		msg(`{"id":10}`, `{"before":null,"after":{"id":10,"v":1},"source":{},"op":"c"}`),
		msg(`{"id":11}`, `{"schema":{"type":"struct","fields":[]},"payload":{"before":null,"after":{"id":11,"v":1},"source":{},"op":"c"}}`),
		msg(`{"id":10}`, `{"before":{"id":10,"v":1},"after":{"id":10,"v":2},"source":{},"op":"u"}`),
		msg(`{"id":11}`, `{"before":{"id":11,"v":1},"after":null,"source":{},"op":"d"}`),
		msg(`{"id":11}`, ""),
	)
	ce := msg("20", `{"id":20}`)
	ce.Headers = []kafka.Header{{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_type", Value: []byte("created")}}
	produce(t, k, "ce", ce)

	s := openSource(t, testConfig(k, "formats",
		Topic{Name: "rows"}, Topic{Name: "dbz", Format: FormatDebezium},
		Topic{Name: "ce", Format: FormatCloudEvents, KeyFields: []string{"id"}}))
	got := readN(t, s, 10)
	want := map[string]string{
		"id=1":  "rows:u,rows:u",
		"id=2":  "rows:u,rows:d",
		"id=10": "dbz:c,dbz:u",
		"id=11": "dbz:c,dbz:d,dbz:d",
		"id=20": "ce:u",
	}
	if ops := opsByKey(got); fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Fatalf("operations per key = %v\nwant %v", ops, want)
	}
	for _, r := range got {
		if r.Key.String() == "id=1" && r.Op == change.OpUpdate {
			if v := value(t, r.After, "name"); v.String() != "a" && v.String() != "a2" {
				t.Errorf("row 1 name %s", v)
			}
		}
		if r.Meta[MetaTopic] != r.Table || r.Meta[MetaOffset] == "" {
			t.Errorf("%s: meta %v", r.String(), r.Meta)
		}
	}
	if last := byKey(got)["id=1"][1]; value(t, last.After, "name").String() != "a2" {
		t.Errorf("key 1's last record has name %s", value(t, last.After, "name"))
	}
	if err := s.Healthy(); err != nil {
		t.Errorf("Healthy = %v", err)
	}
}

// TestResumeAfterRestart acks part of what a source read, restarts it,
// and checks that the next source gets exactly the rest.
func TestResumeAfterRestart(t *testing.T) {
	const n = 30
	k := testenv.StartKafka(t, "rows")
	var msgs []kafka.Message
	for i := range n {
		msgs = append(msgs, msg(strconv.Itoa(i%7), fmt.Sprintf(`{"i":%d}`, i)))
	}
	produce(t, k, "rows", msgs...)
	cfg := testConfig(k, "resume", Topic{Name: "rows"})

	s := openSource(t, cfg)
	first := readN(t, s, n)
	const acked = 17
	ack(t, s, first[acked].Position)
	if err := s.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}

	produce(t, k, "rows", msg("new", `{"i":100}`))
	s = openSource(t, cfg)
	second := readN(t, s, n-acked-1+1)
	noMore(t, s)

	// Acking first[acked] covers it and every record returned before it,
	// and nothing after: those come again, with the new one, and nothing
	// else does.
	want := map[int64]bool{100: true}
	for _, r := range first[acked+1:] {
		want[value(t, r.After, "i").Int()] = true
	}
	got := map[int64]bool{}
	for _, r := range second {
		i := value(t, r.After, "i").Int()
		if !want[i] {
			t.Errorf("record i=%d delivered again although it was acked", i)
		}
		got[i] = true
	}
	for i := range want {
		if !got[i] {
			t.Errorf("record i=%d lost in the restart", i)
		}
	}
}

// TestPoisonMessageDoesNotStopThePartition puts an undecodable message
// between two good ones of the same key, hence partition.
func TestPoisonMessageDoesNotStopThePartition(t *testing.T) {
	k := testenv.StartKafka(t, "rows")
	produce(t, k, "rows",
		msg("k", `{"v":1}`),
		msg("k", `{"v":`),
		msg("k", `{"v":3}`),
	)
	cfg := testConfig(k, "poison", Topic{Name: "rows"})
	s := openSource(t, cfg)
	got := readN(t, s, 3)
	if got[0].Meta[MetaDecodeError] != "" || got[2].Meta[MetaDecodeError] != "" {
		t.Fatalf("good messages not decoded: %v / %v", got[0].Meta, got[2].Meta)
	}
	poison := got[1]
	reason := poison.Meta[MetaDecodeError]
	wantPrefix := fmt.Sprintf("kafka message rows/%s@%s: value: not JSON", poison.Meta[MetaPartition], poison.Meta[MetaOffset])
	if !strings.HasPrefix(reason, wantPrefix) || poison.Meta[MetaMessageValue] != `{"v":` {
		t.Fatalf("poison record: reason %q (want prefix %q), meta %v", reason, wantPrefix, poison.Meta)
	}
	if v := value(t, got[2].After, "v"); v.Int() != 3 {
		t.Errorf("record after the poison one: v=%s", v)
	}
	// Dead-lettering acks it like any record; the group moves past it.
	ack(t, s, got[2].Position)
	if err := s.Close(testContext(t)); err != nil {
		t.Fatal(err)
	}
	s = openSource(t, cfg)
	noMore(t, s)
}

func TestOpenNamesWhatIsMissing(t *testing.T) {
	k := testenv.StartKafka(t, "rows")
	s := newSource(t, testConfig(k, "g", Topic{Name: "rows"}, Topic{Name: "nope"}, Topic{Name: "gone"}))
	err := s.Open(testContext(t), nil)
	if err == nil || !strings.Contains(err.Error(), "topic(s) nope, gone do not exist") {
		t.Fatalf("Open = %v", err)
	}
	s = newSource(t, testConfig(k, "g", Topic{Name: "rows"}))
	if err := s.Open(testContext(t), change.Position("postgres-lsn")); err == nil {
		t.Error("Open accepted another source's position")
	}
}

func TestOpenWithWrongPassword(t *testing.T) {
	k := testenv.StartKafkaSASL(t, "alice", "s3cret", "rows")
	cfg := testConfig(k, "g", Topic{Name: "rows"})
	cfg.Connection.SASL = &kafkaconn.SASLConfig{Mechanism: kafkaconn.MechanismSCRAMSHA512, Username: "alice", Password: "wrong-pass"}
	s := newSource(t, cfg)
	err := s.Open(testContext(t), nil)
	if !kafkaconn.IsAuthError(err) || strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("Open = %v, want an authentication error without the password", err)
	}

	cfg.Connection.SASL.Password = "s3cret"
	tr, err := cfg.Connection.Transport()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	produceVia(t, k, tr, "rows", msg("1", `{"a":1}`))
	s = openSource(t, cfg)
	if got := readN(t, s, 1); got[0].Key.String() != "key=1" {
		t.Errorf("read %s", got[0].String())
	}
}

func TestConfigValidate(t *testing.T) {
	err := Config{Topics: []Topic{{Name: "a", Format: "xml", KeyFields: []string{"id", "id"}}, {Name: "a"}, {}},
		StartOffset: "middle", DrainTimeout: -1, SkipUserIDs: []string{""}}.Validate()
	for _, want := range []string{
		"connection: kafka: no brokers configured", "group_id: required", `topics[0].format: "xml"`,
		"topics[0].key_fields[1]: id is listed twice", `topics[1].name: "a" is listed twice`,
		"topics[2].name: required", `start_offset: "middle"`, "drain_timeout:", "skip_user_ids[0]: empty",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate error %v does not say %q", err, want)
		}
	}
	ok := Config{Connection: kafkaconn.Config{Brokers: []string{"b:9092"}}, GroupID: "g", Topics: []Topic{{Name: "t"}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("minimal config: %v", err)
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Error("New accepted an empty config")
	}
}
