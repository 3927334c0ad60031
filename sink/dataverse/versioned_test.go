package dataverse

import (
	"errors"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

// conditional returns rec with an expected version (empty: none, but
// report the new one) in a Meta of its own.
func conditional(rec change.Record, version string) change.Record {
	rec.Meta = map[string]string{change.MetaExpectedVersion: version}
	return rec
}

// conflictOf returns the conflict error of the only record of a failed
// one-record write.
func conflictOf(t *testing.T, err error) *change.ConflictError {
	t.Helper()
	var be *change.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 {
		t.Fatalf("Write = %v, want a BatchError for the one record", err)
	}
	c := change.AsConflict(be.Failed[0])
	if c == nil {
		t.Fatalf("record failed with %v, want a conflict", be.Failed[0])
	}
	return c
}

// Records with an expected version are written with If-Match and report
// the row's new ETag; a stale version fails that record alone with the
// row as it is now.
func TestConditionalWrites(t *testing.T) {
	for _, mode := range []string{ModeAuto, ModeSingle} {
		t.Run(mode, func(t *testing.T) {
			_, c, s := emulatorSink(t, Config{Mode: mode})
			ctx := t.Context()

			first := conditional(accountRecord(1, "one"), "")
			if err := s.Write(ctx, []change.Record{first}); err != nil {
				t.Fatal(err)
			}
			v1 := first.Meta[change.MetaVersion]
			if v1 == "" {
				t.Fatal("no version reported for an unconditional write with Meta")
			}

			second := conditional(accountRecord(1, "two"), v1)
			plain := accountRecord(2, "plain") // goes the bulk way alongside
			if err := s.Write(ctx, []change.Record{second, plain}); err != nil {
				t.Fatal(err)
			}
			v2 := second.Meta[change.MetaVersion]
			if v2 == "" || v2 == v1 {
				t.Fatalf("versions %q then %q, want a new one", v1, v2)
			}
			if got := accounts(t, c); got["E-00001"] != "two" || got["E-00002"] != "plain" {
				t.Fatalf("rows %v", got)
			}

			stale := conditional(accountRecord(1, "three"), v1)
			cerr := conflictOf(t, s.Write(ctx, []change.Record{stale}))
			if name, _ := cerr.Current.Get("name"); cerr.Deleted || name.String() != "two" || cerr.Version != v2 {
				t.Errorf("conflict with row %v (deleted %v) at %s; want the row named two at %s", cerr.Current, cerr.Deleted, cerr.Version, v2)
			}
			if mod, ok := cerr.Current.Get("modifiedon"); !ok || mod.Kind() != change.KindTimestamp || cerr.Time.IsZero() {
				t.Errorf("modifiedon %v, time %v: want the row's modification time", mod, cerr.Time)
			}
			if got := accounts(t, c); got["E-00001"] != "two" {
				t.Errorf("the refused write changed the row: %v", got)
			}

			del := conditional(change.Record{Op: change.OpDelete, Table: "account", Key: first.Key}, v1)
			_ = conflictOf(t, s.Write(ctx, []change.Record{del}))

			gone := conditional(accountRecord(3, "never"), `W/"1"`)
			if cerr := conflictOf(t, s.Write(ctx, []change.Record{gone})); !cerr.Deleted {
				t.Errorf("conflict for a missing row does not say it is deleted: %+v", cerr)
			}

			del = conditional(change.Record{Op: change.OpDelete, Table: "account", Key: first.Key}, v2)
			if err := s.Write(ctx, []change.Record{del}); err != nil {
				t.Fatal(err)
			}
			if _, ok := accounts(t, c)["E-00001"]; ok {
				t.Error("the conditional delete left the row")
			}
		})
	}
}

func TestDecodeRow(t *testing.T) {
	row, err := decodeRow([]byte(`{"@odata.etag":"W/\"5\"","name":"a","n":12,"d":1.50,"b":true,"x":null,
		"modifiedon":"2026-01-02T03:04:05Z","id":"0a000000-0000-0000-0000-000000000000","o":{"k":1}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]change.Value{
		"name": change.Text("a"), "n": change.Int(12), "d": change.MustDecimal("1.50"), "b": change.Bool(true),
		"x": change.Null(), "modifiedon": change.Timestamp(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
		"id": change.Text("0a000000-0000-0000-0000-000000000000"), "o": change.JSON([]byte(`{"k":1}`)),
	}
	if len(row) != len(want) {
		t.Errorf("%d columns, want %d: %v", len(row), len(want), row)
	}
	for name, w := range want {
		if v, ok := row.Get(name); !ok || !v.Equal(w) {
			t.Errorf("%s = %v, want %v", name, v, w)
		}
	}
}
