package kafka

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// splitCorpus are envelopes splitConnect splits (the last two have schemas
// that do not parse, so that unwrapConnect reads them the slow way), and
// otherCorpus values it must leave to encoding/json.
var (
	splitCorpus = []string{
		`{"schema":{"type":"struct","fields":[{"type":"int32","field":"id"}]},"payload":{"op":"c","after":{"id":1}}}`,
		` { "payload" : {"op":"d","before":{"id":"}"}} , "schema" : {"type":"struct","name":"a{b"} } `,
		`{"schema":null,"payload":{"op":"c"}}`,
		`{"schema":{"type":"struct"},"payload":null}`,
		`{"schema":{"type":5},"payload":{"op":"c"}}`,
		`{"schema":{"type" "struct"},"payload":{"op":"c"}}`,
	}
	otherCorpus = []string{
		`{"schema":{"type":"struct"},"payload":{"op":"c"},}`,
		`{"schema":{"type":"struct"},"payload":{"op":"c"},"op":"c"}`,
		`{"schema":{"type":"struct"},"schema":{"type":"struct"}}`,
		`{"schema":{"type":"struct"}}`,
		`{"sch\u0065ma":{"type":"struct"},"payload":{"op":"c"}}`,
		`{"Schema":{"type":"struct"},"Payload":{"op":"c"}}`,
		`{"schema":{"type":"struct"} x,"payload":{"op":"c"}}`,
		`{"schema":{"type":"struct"},"payload":{"op":"c"}} {}`,
		`{"schema":{"type":"struct"},"payload":"text"}`,
		`{"schema":[1],"payload":{"op":"c"}}`,
		`{"op":"c","after":{"id":1}}`,
		`[]`, ``, `{`,
	}
)

// TestUnwrapConnect checks that whatever unwrapConnect splits, encoding/json
// reads to the same payload and schema, and that a schema seen before is
// not parsed again.
func TestUnwrapConnect(t *testing.T) {
	for _, v := range splitCorpus {
		if _, _, ok := splitConnect([]byte(v)); !ok {
			t.Errorf("splitConnect(%s) did not split it", v)
		}
		checkUnwrap(t, v)
	}
	for _, v := range otherCorpus {
		if _, _, ok := splitConnect([]byte(v)); ok {
			t.Errorf("splitConnect(%s) split it", v)
		}
		checkUnwrap(t, v)
	}
	var c schemaCache
	v := []byte(splitCorpus[0])
	_, s1, _, _ := unwrapConnect(v, &c)
	_, s2, _, _ := unwrapConnect(bytes.Clone(v), &c)
	if s1 == nil || s1 != s2 {
		t.Errorf("the same schema parsed twice: %p, %p", s1, s2)
	}
}

// TestDecodeDebeziumSplitPayloadNotJSON checks that an envelope split
// without validating its payload reports a payload that is not JSON as
// the slow path does.
func TestDecodeDebeziumSplitPayloadNotJSON(t *testing.T) {
	s := decoder(t, Topic{Name: "dbz", Format: FormatDebezium})
	d := decodeOne(t, s, msg(`{"id":1}`, `{"schema":{"type":"struct"},"payload":{"op":"c",}}`))
	if reason := d.rec.Meta[MetaDecodeError]; !strings.Contains(reason, "value: not a JSON object: invalid character '}'") {
		t.Errorf("decode error %q", reason)
	}
}

func FuzzUnwrapConnect(f *testing.F) {
	for _, v := range append(splitCorpus, otherCorpus...) {
		f.Add(v)
	}
	f.Fuzz(checkUnwrap)
}

func checkUnwrap(t *testing.T, v string) {
	var c schemaCache
	payload, schema, wrapped, err := unwrapConnect([]byte(v), &c)
	slowPayload, slowSchema, slowWrapped, slowErr := unwrapConnectSlow([]byte(v))
	if _, _, split := splitConnect([]byte(v)); !split || err != nil {
		return // the slow path's own result
	}
	if slowErr != nil {
		// Only the payload is left unvalidated; decodeDebezium validates
		// it, and reports the slow path's error when it is not JSON.
		return
	}
	if !wrapped || !slowWrapped || !bytes.Equal(payload, slowPayload) || !reflect.DeepEqual(schema, slowSchema) {
		t.Fatalf("unwrapConnect(%q) = %s %+v %v, the slow path %s %+v %v",
			v, payload, schema, wrapped, slowPayload, slowSchema, slowWrapped)
	}
}

// bareCorpus are bare Debezium events bareEnvelope reads, and values it
// must leave to the slow path.
var bareCorpus = []string{
	`{"before":null,"after":{"id":1,"name":"Ann"},"source":{"ts_ms":1700000000123,"schema":"public"},"op":"c","ts_ms":1700000000999}`,
	`{"before":{"id":2},"after":null,"source":{},"op":"d"}`,
	`{"op":null,"ts_ms":1}`,
	`{"ts_ms":1}`,
	`{"op":"c","payload":{"x":1}}`,
	`{"OP":"u","After":{"id":1}}`,
	`{"op":"c","schema":{"type":"struct"},"after":{"id":1}}`,
	`{"op":"c","schema":"public","after":{"id":1}}`,
	`{"payload":{"op":"c"}}`,
	`{"op":5}`, `{"op":"c","ts_ms":1.5}`, `{"op":"c","source":"x"}`, `{"op":"c"} x`, `"c"`, `[1]`,
}

// TestBareEnvelope checks that whatever bareEnvelope reads, the slow path
// reads to the same envelope, and that it reads the common events.
func TestBareEnvelope(t *testing.T) {
	for i, v := range bareCorpus {
		if _, ok := bareEnvelope([]byte(v)); ok != (i < 6) {
			t.Errorf("bareEnvelope(%s) reports %v", v, ok)
		}
		checkBare(t, v)
	}
}

func FuzzBareEnvelope(f *testing.F) {
	for _, v := range bareCorpus {
		f.Add(v)
	}
	f.Fuzz(checkBare)
}

func checkBare(t *testing.T, v string) {
	env, ok := bareEnvelope([]byte(v))
	if !ok {
		return
	}
	payload, _, wrapped, err := unwrapConnectSlow([]byte(v))
	if err != nil || wrapped {
		t.Fatalf("bareEnvelope(%q) read it; the slow path: wrapped %v, %v", v, wrapped, err)
	}
	var slow dbzEnvelope
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&slow); err != nil {
		t.Fatalf("bareEnvelope(%q) read it; the slow path: %v", v, err)
	}
	if !reflect.DeepEqual(env, slow) {
		t.Fatalf("bareEnvelope(%q) = %+v, the slow path %+v", v, env, slow)
	}
}
