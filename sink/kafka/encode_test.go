package kafka

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func TestEncodeDebeziumExactly(t *testing.T) {
	commit := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := commit.Add(1500 * time.Millisecond)
	rec := change.Record{
		Op: change.OpUpdate, Table: "account",
		Key:        change.Key{{Name: "accountid", Value: change.Text("a/1")}},
		Before:     change.Row{{Name: "name", Value: change.Text(`Old "Co"`)}},
		After:      change.Row{{Name: "name", Value: change.Text("New <Co>")}, {Name: "skip", Value: change.Unchanged()}, {Name: "n", Value: change.Null()}, {Name: "amt", Value: change.MustDecimal("-0.50")}, {Name: "on", Value: change.Date(commit)}, {Name: "at", Value: change.Timestamp(commit.In(time.FixedZone("", -5*3600)))}, {Name: "doc", Value: change.JSON([]byte(`{ "a" : [1, 2] }`))}, {Name: "raw", Value: change.Bytes([]byte{0xff, 0})}, {Name: "f", Value: change.Float(0.25)}, {Name: "ok", Value: change.Bool(true)}},
		Position:   change.Position{0xde, 0xad},
		CommitTime: commit,
	}
	e, err := encode(&rec, Table{Topic: "t", Tombstones: true}, eventSource{version: "1.0", name: "crm"}, now)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(e.key), `{"accountid":"a/1"}`; got != want {
		t.Errorf("key %s, want %s", got, want)
	}
	want := `{"before":{"name":"Old \"Co\""},` +
		`"after":{"name":"New \u003cCo\u003e","n":null,"amt":"-0.50","on":"2026-01-02","at":"2026-01-01T22:04:05-05:00","doc":{"a":[1,2]},"raw":"/wA=","f":0.25,"ok":true},` +
		`"source":{"version":"1.0","connector":"dvsync","name":"crm","ts_ms":1767323045000,"snapshot":"false","table":"account","position":"3q0="},` +
		`"op":"u","ts_ms":1767323046500}`
	if string(e.value) != want {
		t.Errorf("event\n got %s\nwant %s", e.value, want)
	}
	if !json.Valid(e.value) || e.follow {
		t.Errorf("valid %v, follow %v (an update is never followed by a tombstone)", json.Valid(e.value), e.follow)
	}
}

func TestEncodeRejects(t *testing.T) {
	src := eventSource{}
	for name, tc := range map[string]struct {
		rec  change.Record
		tbl  Table
		want string
	}{
		"no key":         {change.Record{Op: change.OpInsert, After: change.Row{}}, Table{}, "has no key"},
		"json no row":    {change.Record{Op: change.OpUpdate, Key: key(1)}, Table{Format: FormatJSON}, "has no row"},
		"json truncate":  {change.Record{Op: change.OpTruncate}, Table{Format: FormatJSON}, "no plain-JSON form"},
		"bad json value": {change.Record{Op: change.OpInsert, Key: key(1), After: change.Row{{Name: "d", Value: change.JSON([]byte("nope"))}}}, Table{}, "after: column d"},
		"unknown op":     {change.Record{Op: change.Op(42), Key: key(1)}, Table{}, "unknown operation"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := encode(&tc.rec, tc.tbl, src, time.Now())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("encode = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
