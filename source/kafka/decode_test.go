package kafka

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/kafkaconn"
)

// decoder returns a source, never opened, that decodes topic t.
func decoder(t *testing.T, topics ...Topic) *Source {
	t.Helper()
	s, err := New(Config{Connection: kafkaconn.Config{Brokers: []string{"127.0.0.1:9"}}, GroupID: "g",
		Topics: topics, SkipOrigin: "dvsync-a", SkipUserIDs: []string{"{8D0E3A0B-0000-0000-0000-00000000D5D5}"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func decodeOne(t *testing.T, s *Source, m kafka.Message) decoded {
	t.Helper()
	if m.Topic == "" {
		m.Topic = s.cfg.Topics[0].Name
	}
	m.Partition, m.Offset = 2, 41
	return s.decode(&m)
}

func mustRecord(t *testing.T, d decoded) change.Record {
	t.Helper()
	if d.skip {
		t.Fatal("message skipped")
	}
	if reason := d.rec.Meta[MetaDecodeError]; reason != "" {
		t.Fatalf("message not decoded: %s", reason)
	}
	return d.rec
}

func wantRow(t *testing.T, got change.Row, want change.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("row = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name || !got[i].Value.Equal(want[i].Value) {
			t.Errorf("column %d = %s:%s %s, want %s:%s %s", i, got[i].Name, got[i].Value.Kind(), got[i].Value,
				want[i].Name, want[i].Value.Kind(), want[i].Value)
		}
	}
}

func TestDecodeJSON(t *testing.T) {
	s := decoder(t, Topic{Name: "rows"}, Topic{Name: "keyed", KeyFields: []string{"tenant", "id"}})
	rec := mustRecord(t, decodeOne(t, s, msg(`{"id":7}`,
		`{"id":7,"name":"Ann","big":12345678901234567890,"price":"x","amount":10.50,"exp":1e3,"ok":true,"none":null,"tags":["a"],"addr":{"city":"Oslo"}}`)))
	if rec.Op != change.OpUpdate || rec.Table != "rows" || rec.Key.String() != "id=7" {
		t.Fatalf("record %s", rec.String())
	}
	wantRow(t, rec.After, change.Row{
		{Name: "id", Value: change.Int(7)}, {Name: "name", Value: change.Text("Ann")},
		{Name: "big", Value: change.MustDecimal("12345678901234567890")}, {Name: "price", Value: change.Text("x")},
		{Name: "amount", Value: change.MustDecimal("10.50")}, {Name: "exp", Value: change.MustDecimal("1e3")},
		{Name: "ok", Value: change.Bool(true)}, {Name: "none", Value: change.Null()},
		{Name: "tags", Value: change.JSON([]byte(`["a"]`))}, {Name: "addr", Value: change.JSON([]byte(`{"city":"Oslo"}`))},
	})
	if rec.Meta[MetaTopic] != "rows" || rec.Meta[MetaPartition] != "2" || rec.Meta[MetaOffset] != "41" || rec.Origin.System != "kafka" {
		t.Errorf("meta %v, origin %v", rec.Meta, rec.Origin)
	}
	if topic, p, off, err := decodePosition(rec.Position); err != nil || topic != "rows" || p != 2 || off != 41 {
		t.Errorf("position = %s/%d@%d, %v", topic, p, off, err)
	}

	// Scalar keys, text keys.
	for key, want := range map[string]string{`42`: "key=42", `"abc"`: "key=abc", `abc`: "key=abc"} {
		if rec := mustRecord(t, decodeOne(t, s, msg(key, `{"a":1}`))); rec.Key.String() != want {
			t.Errorf("message key %s: record key %s, want %s", key, rec.Key, want)
		}
	}
	// Key fields from the row, in configured order.
	rec = mustRecord(t, decodeOne(t, s, kafka.Message{Topic: "keyed", Value: []byte(`{"id":"A","tenant":3,"x":1}`)}))
	if rec.Key.String() != "tenant=3,id=A" {
		t.Errorf("key = %s", rec.Key)
	}
	// Tombstones delete by the message key; with one key field a scalar
	// key is that field.
	rec = mustRecord(t, decodeOne(t, s, msg(`{"id":7}`, "")))
	if rec.Op != change.OpDelete || rec.Key.String() != "id=7" || rec.After != nil {
		t.Errorf("tombstone: %s", rec.String())
	}
	rec = mustRecord(t, decodeOne(t, s, kafka.Message{Topic: "keyed", Key: []byte(`{"id":"A","tenant":3}`)}))
	if rec.Op != change.OpDelete || rec.Key.String() != "tenant=3,id=A" {
		t.Errorf("tombstone with key fields: %s", rec.String())
	}
}

func TestDecodeUndecodable(t *testing.T) {
	s := decoder(t, Topic{Name: "rows"}, Topic{Name: "keyed", KeyFields: []string{"id"}})
	for _, tc := range []struct {
		m    kafka.Message
		want string
	}{
		{msg(`1`, `{"id":`), "not JSON"},
		{msg(`1`, `[1,2]`), "array where an object was expected"},
		{msg(`1`, `{"a":1,"a":2}`), `"a" appears twice`},
		{msg(`1`, `{"a":1} {"b":2}`), "not JSON: invalid character '{' after top-level value"},
		{kafka.Message{Value: []byte(`{"a":1}`)}, "no key"},
		{kafka.Message{Topic: "keyed", Value: []byte(`{"a":1}`)}, `key field "id" is missing`},
		{kafka.Message{Topic: "keyed", Value: []byte(`{"id":null}`)}, `key field "id" is null`},
		{kafka.Message{Value: nil}, "tombstone without a key"},
		{kafka.Message{Topic: "unknown", Value: []byte(`{}`)}, "not configured"},
	} {
		d := decodeOne(t, s, tc.m)
		reason := d.rec.Meta[MetaDecodeError]
		if d.skip || !strings.Contains(reason, tc.want) {
			t.Errorf("%s: decode error %q, want one saying %q", tc.m.Value, reason, tc.want)
			continue
		}
		topic := tc.m.Topic
		if topic == "" {
			topic = "rows"
		}
		if !strings.HasPrefix(reason, "kafka message "+topic+"/2@41: ") {
			t.Errorf("reason %q does not locate the message", reason)
		}
		r := d.rec
		if r.Table != topic || r.Key.String() != "partition=2,offset=41" || r.After != nil || len(r.Position) == 0 {
			t.Errorf("dead-letter record %s, position %x", r.String(), r.Position)
		}
		if tc.m.Value != nil && r.Meta[MetaMessageValue] != string(tc.m.Value) {
			t.Errorf("dead-letter record keeps value %q", r.Meta[MetaMessageValue])
		}
	}
	d := decodeOne(t, s, kafka.Message{Key: []byte{0xff, 0xfe}, Value: []byte{0x80}})
	if d.rec.Meta[MetaMessageValue+"_base64"] != "gA==" || d.rec.Meta[MetaMessageKey+"_base64"] != "//4=" {
		t.Errorf("binary key and value kept as %v", d.rec.Meta)
	}
}

func TestDecodeSkipsOwnOrigin(t *testing.T) {
	s := decoder(t, Topic{Name: "rows"})
	own := msg(`1`, `{"a":1}`)
	own.Headers = []kafka.Header{{Key: OriginHeader, Value: []byte("dvsync-a")}}
	if d := decodeOne(t, s, own); !d.skip {
		t.Errorf("message with our origin header was not skipped: %s", d.rec.String())
	}
	other := msg(`1`, `{"a":1}`)
	other.Headers = []kafka.Header{{Key: OriginHeader, Value: []byte("dvsync-b")}}
	rec := mustRecord(t, decodeOne(t, s, other))
	if rec.Origin != (change.Origin{System: "kafka", Name: "dvsync-b"}) {
		t.Errorf("origin = %+v", rec.Origin)
	}
}

const dbzSchema = `{"type":"struct","fields":[
 {"type":"struct","optional":true,"field":"before","fields":[
  {"type":"int32","field":"id"},{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"field":"price"},
  {"type":"int32","name":"io.debezium.time.Date","field":"born"},{"type":"int64","name":"io.debezium.time.MicroTimestamp","field":"seen"},
  {"type":"string","name":"io.debezium.time.ZonedTimestamp","field":"at"},{"type":"bytes","field":"blob"},
  {"type":"string","name":"io.debezium.data.Uuid","field":"guid"},{"type":"string","field":"name"}]},
 {"type":"struct","optional":true,"field":"after","fields":[
  {"type":"int32","field":"id"},{"type":"bytes","name":"org.apache.kafka.connect.data.Decimal","parameters":{"scale":"2"},"field":"price"},
  {"type":"int32","name":"io.debezium.time.Date","field":"born"},{"type":"int64","name":"io.debezium.time.MicroTimestamp","field":"seen"},
  {"type":"string","name":"io.debezium.time.ZonedTimestamp","field":"at"},{"type":"bytes","field":"blob"},
  {"type":"string","name":"io.debezium.data.Uuid","field":"guid"},{"type":"string","field":"name"}]},
 {"type":"struct","field":"source","fields":[]},{"type":"string","field":"op"},{"type":"int64","optional":true,"field":"ts_ms"}]}`

func TestDecodeDebezium(t *testing.T) {
	s := decoder(t, Topic{Name: "dbz", Format: FormatDebezium})
	bare := `{"before":null,"after":{"id":1,"name":"Ann"},"source":{"ts_ms":1700000000123,"table":"customers"},"op":"c","ts_ms":1700000000999}`
	rec := mustRecord(t, decodeOne(t, s, msg(`{"id":1}`, bare)))
	if rec.Op != change.OpInsert || rec.Key.String() != "id=1" || rec.Before != nil {
		t.Fatalf("create: %s before %v", rec.String(), rec.Before)
	}
	wantRow(t, rec.After, change.Row{{Name: "id", Value: change.Int(1)}, {Name: "name", Value: change.Text("Ann")}})
	if !rec.CommitTime.Equal(time.UnixMilli(1700000000123)) {
		t.Errorf("commit time %s, want source.ts_ms", rec.CommitTime)
	}

	// With the schema wrapper, and a key with its own wrapper. The price
	// 1234.56 is the unscaled 123456 = 0x01E240; -1.00 is -100 = 0x9C.
	after := `{"id":2,"price":"` + base64.StdEncoding.EncodeToString([]byte{0x01, 0xE2, 0x40}) +
		`","born":19000,"seen":1700000000123456,"at":"2024-03-01T12:00:00+02:00","blob":"aGk=",` +
		`"guid":"6F9619FF-8B86-D011-B42D-00C04FC964FF","name":"Bo"}`
	before := `{"id":2,"price":"nA==","born":null,"seen":null,"at":null,"blob":null,"guid":null,"name":"B"}`
	wrapped := `{"schema":` + dbzSchema + `,"payload":{"before":` + before + `,"after":` + after + `,"source":{},"op":"u","ts_ms":1}}`
	key := `{"schema":{"type":"struct","fields":[{"type":"int32","field":"id"}]},"payload":{"id":2}}`
	rec = mustRecord(t, decodeOne(t, s, msg(key, wrapped)))
	if rec.Op != change.OpUpdate || rec.Key.String() != "id=2" {
		t.Fatalf("update: %s", rec.String())
	}
	guid, _ := change.ParseUUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
	wantRow(t, rec.After, change.Row{
		{Name: "id", Value: change.Int(2)}, {Name: "price", Value: change.MustDecimal("1234.56")},
		{Name: "born", Value: change.Date(time.Date(2022, 1, 8, 0, 0, 0, 0, time.UTC))},
		{Name: "seen", Value: change.Timestamp(time.UnixMicro(1700000000123456).UTC())},
		{Name: "at", Value: change.Timestamp(time.Date(2024, 3, 1, 12, 0, 0, 0, time.FixedZone("", 2*3600)))},
		{Name: "blob", Value: change.Bytes([]byte("hi"))}, {Name: "guid", Value: guid}, {Name: "name", Value: change.Text("Bo")},
	})
	if v, _ := rec.Before.Get("price"); !v.Equal(change.MustDecimal("-1.00")) {
		t.Errorf("before price = %s", v)
	}

	// Deletes carry before; the tombstone that follows deletes again.
	rec = mustRecord(t, decodeOne(t, s, msg(`{"id":2}`, `{"before":{"id":2},"after":null,"source":{},"op":"d"}`)))
	if rec.Op != change.OpDelete || rec.Key.String() != "id=2" || rec.After != nil || rec.Before == nil {
		t.Errorf("delete: %s", rec.String())
	}
	rec = mustRecord(t, decodeOne(t, s, msg(key, "")))
	if rec.Op != change.OpDelete || rec.Key.String() != "id=2" {
		t.Errorf("tombstone: %s", rec.String())
	}
	rec = mustRecord(t, decodeOne(t, s, msg(`{"id":3}`, `{"before":null,"after":{"id":3},"op":"r"}`)))
	if rec.Op != change.OpRead {
		t.Errorf("snapshot read: %s", rec.String())
	}
	// Heartbeats and transaction markers name no row.
	if d := decodeOne(t, s, msg(`{"serverName":"x"}`, `{"ts_ms":1}`)); !d.skip {
		t.Errorf("heartbeat not skipped: %v", d.rec.Meta)
	}
	for _, bad := range []string{`{"op":"c","after":null}`, `{"op":"c","after":[1]}`, `"c"`} {
		if d := decodeOne(t, s, msg(`{"id":1}`, bad)); d.rec.Meta[MetaDecodeError] == "" {
			t.Errorf("%s decoded as %s", bad, d.rec.String())
		}
	}
}

func TestConnectDecimal(t *testing.T) {
	for _, tc := range []struct {
		b     []byte
		scale int
		want  string
	}{
		{[]byte{0x00}, 2, "0.00"}, {[]byte{0x05}, 3, "0.005"}, {[]byte{0xff}, 1, "-0.1"},
		{[]byte{0x80}, 0, "-128"}, {[]byte{0x7f, 0xff}, 2, "327.67"}, {[]byte{0x01}, -2, "1E2"},
		{[]byte{0x00, 0x8a, 0xc7, 0x23, 0x04, 0x89, 0xe8, 0x00, 0x00}, 4, "1000000000000000.0000"},
	} {
		v, err := connectDecimal(base64.StdEncoding.EncodeToString(tc.b), tc.scale)
		if err != nil || v.Decimal() != tc.want {
			t.Errorf("connectDecimal(%x, %d) = %v, %v; want %s", tc.b, tc.scale, v, err, tc.want)
		}
	}
}

func TestDecodeCloudEvents(t *testing.T) {
	s := decoder(t, Topic{Name: "ce", Format: FormatCloudEvents, KeyFields: []string{"id"}})
	structured := `{"specversion":"1.0","id":"e1","source":"/shop","type":"order.updated","time":"2024-03-01T10:00:00Z",` +
		`"datacontenttype":"application/json","data":{"id":5,"total":9.99}}`
	rec := mustRecord(t, decodeOne(t, s, msg("", structured)))
	if rec.Op != change.OpUpdate || rec.Key.String() != "id=5" || rec.Meta[MetaCloudEventType] != "order.updated" ||
		rec.Meta[MetaCloudEventID] != "e1" || !rec.CommitTime.Equal(time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("structured: %s %v %s", rec.String(), rec.Meta, rec.CommitTime)
	}
	wantRow(t, rec.After, change.Row{{Name: "id", Value: change.Int(5)}, {Name: "total", Value: change.MustDecimal("9.99")}})

	b64 := `{"specversion":"1.0","id":"e2","source":"/shop","type":"t","data_base64":"` +
		base64.StdEncoding.EncodeToString([]byte(`{"id":6}`)) + `"}`
	if rec := mustRecord(t, decodeOne(t, s, msg("", b64))); rec.Key.String() != "id=6" {
		t.Errorf("data_base64: %s", rec.String())
	}

	binary := kafka.Message{Key: []byte("7"), Value: []byte(`{"id":7,"total":1}`), Headers: []kafka.Header{
		{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: []byte("e3")},
		{Key: "ce_type", Value: []byte("order.created")}, {Key: "ce_source", Value: []byte("/shop")},
		{Key: "content-type", Value: []byte("application/json; charset=utf-8")},
	}}
	rec = mustRecord(t, decodeOne(t, s, binary))
	if rec.Key.String() != "id=7" || rec.Meta[MetaCloudEventType] != "order.created" || rec.Meta[MetaCloudEventSource] != "/shop" {
		t.Errorf("binary: %s %v", rec.String(), rec.Meta)
	}

	noData := `{"specversion":"1.0","id":"e4","source":"/shop","type":"order.deleted"}`
	if rec := mustRecord(t, decodeOne(t, s, msg("8", noData))); rec.Op != change.OpDelete || rec.Key.String() != "id=8" {
		t.Errorf("event without data: %s", rec.String())
	}
	for _, bad := range []kafka.Message{
		msg("1", `{"id":1}`),
		msg("1", `{"specversion":"0.3","id":"x","data":{"id":1}}`),
		msg("1", `{"specversion":"1.0","datacontenttype":"application/xml","data":"<a/>"}`),
		msg("1", `{"specversion":"1.0","time":"yesterday","data":{"id":1}}`),
	} {
		if d := decodeOne(t, s, bad); d.rec.Meta[MetaDecodeError] == "" {
			t.Errorf("%s decoded as %s", bad.Value, d.rec.String())
		}
	}
}
