package conflict

import (
	"slices"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func row(kv ...any) change.Row {
	var r change.Row
	for i := 0; i < len(kv); i += 2 {
		var v change.Value
		switch x := kv[i+1].(type) {
		case change.Value:
			v = x
		case string:
			v = change.Text(x)
		case int:
			v = change.Int(int64(x))
		case nil:
			v = change.Null()
		}
		r = append(r, change.Column{Name: kv[i].(string), Value: v})
	}
	return r
}

func TestCanonicalSame(t *testing.T) {
	ts := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	berlin := time.FixedZone("CET", 3600)
	for _, tc := range []struct {
		name string
		a, b change.Value
		same bool
	}{
		{"int and decimal", change.Int(5), change.MustDecimal("5.00"), true},
		{"decimal exponent", change.MustDecimal("1E+2"), change.Int(100), true},
		{"float and decimal", change.Float(12.5), change.MustDecimal("12.50"), true},
		{"negative zero", change.MustDecimal("-0.0"), change.Int(0), true},
		{"different numbers", change.Int(5), change.MustDecimal("5.01"), false},
		{"timestamp zones", change.Timestamp(ts), change.Timestamp(ts.In(berlin)), true},
		{"timestamp sub-second", change.Timestamp(ts), change.Timestamp(ts.Add(300 * time.Millisecond)), true},
		{"timestamp seconds", change.Timestamp(ts), change.Timestamp(ts.Add(time.Second)), false},
		{"json key order", change.JSON([]byte(`{"a":1, "b":2}`)), change.JSON([]byte(`{"b":2,"a":1}`)), true},
		{"json values", change.JSON([]byte(`{"a":1}`)), change.JSON([]byte(`{"a":2}`)), false},
		{"null and empty text", change.Null(), change.Text(""), false},
		{"text", change.Text("x"), change.Text("x"), true},
		{"text and number", change.Text("5"), change.Int(5), false},
		{"unchanged is same as anything", change.Unchanged(), change.Text("x"), true},
		{"uuid text", change.Text("0a000000-0000-0000-0000-000000000000"), change.UUID([16]byte{10}), true},
		{"date text", change.Text("2026-03-01"), change.Date(ts), true},
		{"timestamp text", change.Text("2026-03-01T11:00:00+01:00"), change.Timestamp(ts), true},
		{"text like a date but not", change.Text("2026-13-01"), change.Date(ts), false},
		{"bools", change.Bool(true), change.Bool(false), false},
		{"dates", change.Date(ts), change.Date(ts.Add(time.Hour)), true},
		{"uuid", change.UUID([16]byte{1}), change.UUID([16]byte{2}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Same(tc.a, tc.b); got != tc.same {
				t.Errorf("Same(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
}

func TestEqualChangedFingerprint(t *testing.T) {
	base := row("id", 1, "name", "a", "city", "x")
	for _, tc := range []struct {
		name    string
		row     change.Row
		equal   bool
		changed []string
	}{
		{"identical", row("id", 1, "name", "a", "city", "x"), true, nil},
		{"reordered", row("city", "x", "id", 1, "name", "a"), true, nil},
		{"unmapped extra column", row("id", 1, "name", "a", "city", "x", "secret", "s"), true, []string{"secret"}},
		{"missing column", row("id", 1, "name", "a"), true, nil},
		{"unchanged value", row("id", 1, "name", change.Unchanged(), "city", "x"), true, nil},
		{"one change", row("id", 1, "name", "b", "city", "x"), false, []string{"name"}},
		{"set to null", row("id", 1, "name", "a", "city", nil), false, []string{"city"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Equal(base, tc.row); got != tc.equal {
				t.Errorf("Equal = %v, want %v", got, tc.equal)
			}
			if got := Changed(base, tc.row); !slices.Equal(got, tc.changed) {
				t.Errorf("Changed = %v, want %v", got, tc.changed)
			}
		})
	}
	if Fingerprint(row("a", 1, "b", "x")) != Fingerprint(row("b", "x", "a", change.MustDecimal("1.0"))) {
		t.Error("fingerprint depends on column order or number kind")
	}
	if Fingerprint(row("a", 1, "b", "x")) == Fingerprint(row("a", 1, "b", "y")) {
		t.Error("fingerprint ignores a value")
	}
	if Fingerprint(row("ab", "c")) == Fingerprint(row("a", "bc")) {
		t.Error("fingerprint is ambiguous across name and value")
	}
	k1 := change.Key{{Name: "id", Value: change.Int(7)}}
	k2 := change.Key{{Name: "id", Value: change.MustDecimal("7")}}
	if string(KeyBytes(k1)) != string(KeyBytes(k2)) {
		t.Error("KeyBytes depends on the number kind")
	}
}

func TestRulesValidate(t *testing.T) {
	for _, tc := range []struct {
		rules Rules
		ok    bool
	}{
		{Rules{}, true},
		{Rules{Policy: Merge, TieBreak: NewestWins}, true},
		{Rules{Policy: Merge, TieBreak: Manual}, true},
		{Rules{Policy: NewestWins, TieBreak: DataverseWins}, true},
		{Rules{Policy: NewestWins, TieBreak: NewestWins}, false},
		{Rules{Policy: Merge, TieBreak: Merge}, false},
		{Rules{Policy: "last-writer-wins"}, false},
	} {
		if err := tc.rules.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tc.rules, err, tc.ok)
		}
	}
}

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	early, late := t0.Add(time.Minute), t0.Add(2*time.Minute)
	base := Version{Row: row("id", 1, "name", "a", "city", "x")}
	srcName := Version{Row: row("id", 1, "name", "S", "city", "x"), Time: early}
	dvName := Version{Row: row("id", 1, "name", "D", "city", "x"), Time: late}
	dvCity := Version{Row: row("id", 1, "name", "a", "city", "Y"), Time: late}
	deleted := func(at time.Time) Version { return Version{Deleted: true, Time: at} }
	noTime := func(v Version) Version { v.Time = time.Time{}; return v }

	for _, tc := range []struct {
		name    string
		rules   Rules
		c       Case
		outcome Outcome
		policy  Policy
		result  Version
		both    []string
	}{
		{"source-wins", Rules{Policy: SourceWins}, Case{base, true, srcName, dvName}, TakeSource, SourceWins, srcName, nil},
		{"default is source-wins", Rules{}, Case{base, true, srcName, dvName}, TakeSource, SourceWins, srcName, nil},
		{"dataverse-wins", Rules{Policy: DataverseWins}, Case{base, true, srcName, dvName}, TakeDataverse, DataverseWins, dvName, nil},
		{"same change on both sides", Rules{Policy: DataverseWins}, Case{base, true, srcName, Version{Row: srcName.Row, Time: late}}, TakeSource, DataverseWins, srcName, nil},
		{"newest-wins dataverse newer", Rules{Policy: NewestWins}, Case{base, true, srcName, dvName}, TakeDataverse, NewestWins, dvName, nil},
		{"newest-wins source newer", Rules{Policy: NewestWins}, Case{base, true, Version{Row: srcName.Row, Time: late}, Version{Row: dvName.Row, Time: early}}, TakeSource, NewestWins, Version{Row: srcName.Row, Time: late}, nil},
		{"newest-wins equal times use tie-break", Rules{Policy: NewestWins, TieBreak: DataverseWins}, Case{base, true, Version{Row: srcName.Row, Time: late}, dvName}, TakeDataverse, DataverseWins, dvName, nil},
		{"newest-wins unknown time uses tie-break", Rules{Policy: NewestWins}, Case{base, true, noTime(srcName), dvName}, TakeSource, SourceWins, noTime(srcName), nil},
		{"newest-wins tie-break manual", Rules{Policy: NewestWins, TieBreak: Manual}, Case{base, true, noTime(srcName), dvName}, Park, Manual, Version{}, nil},
		{"manual parks", Rules{Policy: Manual}, Case{base, true, srcName, dvName}, Park, Manual, Version{}, nil},
		{"merge different fields", Rules{Policy: Merge}, Case{base, true, srcName, dvCity}, Merged, Merge,
			Version{Row: row("id", 1, "name", "S", "city", "Y")}, nil},
		{"merge same field tie-break source", Rules{Policy: Merge}, Case{base, true, srcName, dvName}, Merged, Merge,
			Version{Row: row("id", 1, "name", "S", "city", "x")}, []string{"name"}},
		{"merge same field tie-break dataverse", Rules{Policy: Merge, TieBreak: DataverseWins}, Case{base, true, srcName, dvName}, Merged, Merge,
			Version{Row: row("id", 1, "name", "D", "city", "x")}, []string{"name"}},
		{"merge same field tie-break newest", Rules{Policy: Merge, TieBreak: NewestWins}, Case{base, true, srcName, dvName}, Merged, Merge,
			Version{Row: row("id", 1, "name", "D", "city", "x")}, []string{"name"}},
		{"merge same field tie-break manual", Rules{Policy: Merge, TieBreak: Manual}, Case{base, true, srcName, dvName}, Park, Manual, Version{}, []string{"name"}},
		{"merge same value both sides", Rules{Policy: Merge}, Case{base, true,
			Version{Row: row("id", 1, "name", "Z", "city", "x")}, Version{Row: row("id", 1, "name", "Z", "city", "Y")}}, Merged, Merge,
			Version{Row: row("id", 1, "name", "Z", "city", "Y")}, nil},
		{"merge unknown base: differing fields tie-break", Rules{Policy: Merge, TieBreak: DataverseWins}, Case{Source: srcName, Dataverse: dvCity}, Merged, Merge,
			Version{Row: row("id", 1, "name", "a", "city", "Y")}, []string{"name", "city"}},
		{"merge source unchanged column keeps dataverse", Rules{Policy: Merge}, Case{base, true,
			Version{Row: row("id", 1, "name", "S", "city", change.Unchanged())}, dvCity}, Merged, Merge,
			Version{Row: row("id", 1, "name", "S", "city", "Y")}, nil},
		{"merge extra dataverse column", Rules{Policy: Merge}, Case{base, true, srcName,
			Version{Row: row("id", 1, "name", "a", "city", "x", "extra", "e")}}, Merged, Merge,
			Version{Row: row("id", 1, "name", "S", "city", "x", "extra", "e")}, nil},

		// Deletes racing updates.
		{"source delete vs dataverse update, source-wins", Rules{Policy: SourceWins}, Case{base, true, deleted(early), dvName}, TakeSource, SourceWins, deleted(early), nil},
		{"source delete vs dataverse update, dataverse-wins", Rules{Policy: DataverseWins}, Case{base, true, deleted(early), dvName}, TakeDataverse, DataverseWins, dvName, nil},
		{"dataverse delete vs source update, source-wins", Rules{Policy: SourceWins}, Case{base, true, srcName, deleted(late)}, TakeSource, SourceWins, srcName, nil},
		{"dataverse delete vs source update, newest-wins", Rules{Policy: NewestWins}, Case{base, true, srcName, deleted(late)}, TakeDataverse, NewestWins, deleted(late), nil},
		{"delete vs update under merge uses tie-break", Rules{Policy: Merge, TieBreak: DataverseWins}, Case{base, true, deleted(early), dvCity}, TakeDataverse, DataverseWins, dvCity, nil},
		{"delete vs update under merge, newest tie-break", Rules{Policy: Merge, TieBreak: NewestWins}, Case{base, true, srcName, deleted(late)}, TakeDataverse, NewestWins, deleted(late), nil},
		{"delete vs update, manual", Rules{Policy: Manual}, Case{base, true, deleted(early), dvName}, Park, Manual, Version{}, nil},
		{"both deleted", Rules{Policy: DataverseWins}, Case{base, true, deleted(early), deleted(late)}, TakeSource, DataverseWins, deleted(early), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.rules.Validate(); err != nil {
				t.Fatal(err)
			}
			d := Decide(tc.rules, tc.c)
			if d.Outcome != tc.outcome || d.Policy != tc.policy {
				t.Fatalf("Decide = %s by %s, want %s by %s", d.Outcome, d.Policy, tc.outcome, tc.policy)
			}
			if !d.Result.Same(tc.result) || d.Result.Deleted != tc.result.Deleted {
				t.Errorf("result = %+v, want %+v", d.Result, tc.result)
			}
			if len(d.Result.Row) != len(tc.result.Row) {
				t.Errorf("result has %d columns, want %d", len(d.Result.Row), len(tc.result.Row))
			}
			if !slices.Equal(d.Both, tc.both) {
				t.Errorf("Both = %v, want %v", d.Both, tc.both)
			}
			// Deterministic: the other pipeline reaches the same decision.
			if d2 := Decide(tc.rules, tc.c); d2.Outcome != d.Outcome || !d2.Result.Same(d.Result) {
				t.Errorf("second Decide differs: %+v", d2)
			}
		})
	}
}
