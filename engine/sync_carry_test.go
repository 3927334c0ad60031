package engine

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
	"github.com/dvsync/dvsync/state"
)

// carryWorld drives the two resolvers of one bidirectional row by hand,
// so that the interleavings of the two pipelines can be chosen.
type carryWorld struct {
	t    *testing.T
	a, b Resolver
	m    Mapper
}

func newCarryWorld(t *testing.T) *carryWorld {
	return newCarryWorldLogging(t, slog.DiscardHandler)
}

// newCarryWorldLogging is newCarryWorld with the Sync logging to h.
func newCarryWorldLogging(t *testing.T, h slog.Handler) *carryWorld {
	st, err := state.OpenBolt(t.TempDir() + "/s.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	identity := func(r *change.Record) (change.Record, bool, error) { return *r, true, nil }
	s, err := NewSync(SyncConfig{Mapping: "m", Columns: []string{"name", "rating"}, Store: st, Reverse: identity,
		Rules: conflict.Rules{Policy: conflict.Merge, TieBreak: conflict.DataverseWins}, Logger: slog.New(h)})
	if err != nil {
		t.Fatal(err)
	}
	// Pipeline A's mapping: the same names, in the Dataverse table.
	toDV := MapperFunc(func(r *change.Record) (change.Record, bool, error) {
		out := *r
		out.Table = "dv"
		return out, true, nil
	})
	return &carryWorld{t: t, a: s.Resolver(conflict.Source), b: s.Resolver(conflict.Dataverse), m: toDV}
}

func supplier(name string, rating int64) change.Row {
	return change.Row{{Name: "code", Value: change.Text("C0")}, {Name: "name", Value: change.Text(name)}, {Name: "rating", Value: change.Int(rating)}}
}

var supplierKey = change.Key{{Name: "code", Value: change.Text("C0")}}

// fromSource is pipeline A's pair for a change of the table's row.
func (w *carryWorld) fromSource(name string, rating int64, committed time.Time) Pair {
	src := &change.Record{Op: change.OpUpdate, Table: "public.suppliers", Key: supplierKey, After: supplier(name, rating), CommitTime: committed}
	out, _, _ := w.m.Map(src)
	return Pair{Source: src, Out: &out}
}

// fromDataverse is pipeline B's pair for a change of Dataverse's row at
// versionnumber n.
func (w *carryWorld) fromDataverse(name string, rating int64, n string) Pair {
	src := &change.Record{Op: change.OpUpdate, Table: "dv", Key: supplierKey, After: supplier(name, rating),
		CommitTime: time.Now(), Meta: map[string]string{"versionnumber": n}}
	out := &change.Record{Op: change.OpUpdate, Table: "public.suppliers", Key: supplierKey, After: supplier(name, rating)}
	return Pair{Source: src, Out: out}
}

func (w *carryWorld) prepare(r Resolver, p Pair) Verdict {
	w.t.Helper()
	v := []Verdict{Write}
	if err := r.Prepare(context.Background(), w.m, []Pair{p}, v); err != nil {
		w.t.Fatal(err)
	}
	return v[0]
}

func (w *carryWorld) synced(r Resolver, p Pair) {
	w.t.Helper()
	if err := r.Synced(context.Background(), []Pair{p}); err != nil {
		w.t.Fatal(err)
	}
}

// start syncs the row start|0 to Dataverse, which reports version 3.
func (w *carryWorld) start() time.Time {
	w.t.Helper()
	p := w.fromSource("start", 0, time.Now())
	if v := w.prepare(w.a, p); v != Write {
		w.t.Fatalf("first sync: verdict %v", v)
	}
	p.Out.Meta = cloneMeta(p.Out.Meta)
	p.Out.Meta[change.MetaVersion] = `W/"3"`
	w.synced(w.a, p)
	return time.Now()
}

// aDecides has pipeline A read the table's edit pg1|0 and meet
// Dataverse's start|2 at version 13: the merge pg1|2 is decided and
// being written to Dataverse.
func (w *carryWorld) aDecides() Pair {
	w.t.Helper()
	a := w.fromSource("pg1", 0, time.Now())
	if v := w.prepare(w.a, a); v != Write {
		w.t.Fatalf("the table's change: verdict %v", v)
	}
	verdict, err := w.a.Conflict(context.Background(), w.m, a,
		&change.ConflictError{Current: supplier("start", 2), Version: `W/"13"`})
	if err != nil || verdict != Write {
		w.t.Fatalf("A's conflict: %v, %v", verdict, err)
	}
	return a
}

func (v Verdict) String() string { return map[Verdict]string{Write: "write", Done: "done"}[v] }

// Pipeline B decides a conflict and is writing the decision to the
// table; pipeline A reads the table's side of the conflict before that
// write is recorded. A carries the decision over to Dataverse, which it
// must do against the Dataverse version B decided against: the one the
// state still holds is older, and a write conditional on it would be
// refused as if Dataverse had changed again.
func TestCarryOverOfADecisionInFlightExpectsItsDataverseVersion(t *testing.T) {
	w := newCarryWorld(t)
	w.start()
	edited := time.Now() // the table's edit, made while Dataverse was edited too

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write {
		t.Fatalf("Dataverse's change: verdict %v", v)
	}
	verdict, err := w.b.Conflict(context.Background(), w.m, b, &change.ConflictError{Current: supplier("pg1", 0)})
	if err != nil || verdict != Write {
		t.Fatalf("B's conflict: %v, %v", verdict, err)
	}
	if got := b.Out.After; !rowIs(got, "pg1", 2) {
		t.Fatalf("B writes %v, want the merge pg1|2", got)
	}

	a := w.fromSource("pg1", 0, edited)
	if v := w.prepare(w.a, a); v != Write {
		t.Fatalf("the table's side of the conflict: verdict %v, want a write carrying the decision over", v)
	}
	if got := a.Out.After; !rowIs(got, "pg1", 2) {
		t.Errorf("A writes %v, want the decision pg1|2", got)
	}
	if got := a.Out.Meta[change.MetaExpectedVersion]; got != `W/"13"` {
		t.Errorf("A's write expects Dataverse at %q, want the version B decided against, W/\"13\"", got)
	}
}

// The mirror: pipeline A decides and is writing the decision to
// Dataverse; pipeline B reads Dataverse's side of the conflict before
// that is recorded. B's write to the table is conditional on the table
// still holding the version A decided against.
func TestCarryOverOfADecisionInFlightExpectsItsSourceVersion(t *testing.T) {
	w := newCarryWorld(t)
	w.start()

	w.aDecides()

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write {
		t.Fatalf("Dataverse's side of the conflict: verdict %v, want a write carrying the decision over", v)
	}
	if got := b.Out.After; !rowIs(got, "pg1", 2) {
		t.Errorf("B writes %v, want the decision pg1|2", got)
	}
	wantExpectedRow(t, b, "pg1", 0, "B's write", "the row A decided against, pg1|0")
}

// wantExpectedRow checks that p's write is conditional on the table
// holding the row name|rating; what names the write, want the row in words.
func wantExpectedRow(t *testing.T, p Pair, name string, rating int64, what, want string) {
	t.Helper()
	if got := p.Out.Meta[change.MetaExpectedVersion]; got != change.ExpectedRow || !rowIs(p.Out.Before, name, rating) {
		t.Errorf("%s expects %q %v, want %s", what, got, p.Out.Before, want)
	}
}

func rowIs(r change.Row, name string, rating int64) bool {
	n, _ := r.Get("name")
	g, _ := r.Get("rating")
	return n.Kind() == change.KindText && n.Str() == name && g.Kind() == change.KindInt && g.Int() == rating
}

// Pipeline A decides a conflict against Dataverse's version 13 and is
// writing the decision. Pipeline B then reads Dataverse's edits made
// before version 13, delivered late: they are overtaken by the decision
// however many of them B writes, and none may bring its own values back
// to the table.
func TestChangesOlderThanADecisionStayOvertaken(t *testing.T) {
	w := newCarryWorld(t)
	w.start()

	w.aDecides()

	for _, n := range []string{"10", "12"} {
		b := w.fromDataverse("start", 7, n)
		v := w.prepare(w.b, b)
		if v == Write && !rowIs(b.Out.After, "pg1", 2) {
			t.Fatalf("Dataverse's version %s, older than the decision, is written to the table as %v", n, b.Out.After)
		}
		if v == Write {
			w.synced(w.b, b)
		}
	}
}

// Pipeline B carries a decision over to the table; before B records that
// write, pipeline A decides a second conflict over the row, which the
// table is owed. B's late record of the first write must not undo what
// the second decision left owed: when B reads Dataverse's side of the
// second conflict, it carries the second decision over.
func TestALateWriteKeepsALaterDecisionOwed(t *testing.T) {
	w := newCarryWorld(t)
	w.start()
	ctx := context.Background()

	a := w.aDecides()
	a.Out.Meta[change.MetaVersion] = `W/"14"`
	w.synced(w.a, a)

	b1 := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b1); v != Write || !rowIs(b1.Out.After, "pg1", 2) {
		t.Fatalf("B carries the first decision over: verdict %v, %v", v, b1.Out.After)
	}

	a2 := w.fromSource("pg1", 5, time.Now())
	if v := w.prepare(w.a, a2); v != Write {
		t.Fatalf("the table's next edit: verdict %v", v)
	}
	if v, err := w.a.Conflict(ctx, w.m, a2, &change.ConflictError{Current: supplier("pg1", 9), Version: `W/"16"`}); err != nil || v != Done {
		t.Fatalf("second conflict (Dataverse holds its result): %v, %v", v, err)
	}

	w.synced(w.b, b1) // the first carry-over, recorded late

	b2 := w.fromDataverse("pg1", 9, "16")
	if v := w.prepare(w.b, b2); v != Write || !rowIs(b2.Out.After, "pg1", 9) {
		t.Fatalf("Dataverse's side of the second conflict: verdict %v, %v; want the decision pg1|9 carried to the table", v, b2.Out.After)
	}
	wantExpectedRow(t, b2, "pg1", 5, "the carry-over", "the row the decision replaced, pg1|5")
}

// Pipeline A decides a conflict over Dataverse's version 13, and its
// write of the decision, version 14, is recorded; only then does pipeline
// B read version 13, which reaches it after dvsync's own 14 (webhooks are
// posted concurrently). B carries the decision over to the table, on
// condition that the table still holds what A decided against, and the
// row is then settled on both sides: nothing more is written.
func TestAChangeReadAfterTheDecisionOverItCarriesItOver(t *testing.T) {
	w := newCarryWorld(t)
	w.start()

	a := w.aDecides()
	a.Out.Meta[change.MetaVersion] = `W/"14"`
	w.synced(w.a, a)

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write || !rowIs(b.Out.After, "pg1", 2) {
		t.Fatalf("Dataverse's version 13, read after the decision over it: verdict %v, %v; want the decision pg1|2 carried to the table", v, b.Out.After)
	}
	wantExpectedRow(t, b, "pg1", 0, "the carry-over", "the row A decided against, pg1|0")
	w.synced(w.b, b)

	if v := w.prepare(w.b, w.fromDataverse("pg1", 2, "14")); v != Done {
		t.Errorf("the decision's own version read back from Dataverse: verdict %v, want done", v)
	}
	if v := w.prepare(w.a, w.fromSource("pg1", 2, time.Now())); v != Done {
		t.Errorf("the carried-over decision read back from the table: verdict %v, want done", v)
	}
}

// Pipeline B decides a conflict and, before its write reaches the table,
// decides again over the table's next edit. Pipeline A has carried the
// first decision over to Dataverse meanwhile, and that write is recorded
// only after the second decision. When A carries the second decision
// over, Dataverse refuses it, holding dvsync's own write of the first:
// nobody else changed Dataverse, no change will reach B, and the second
// decision must be written over the first.
func TestACarryOverRefusedOnlyByAnEarlierOneWritesTheLaterDecision(t *testing.T) {
	w := newCarryWorld(t)
	w.start()
	ctx := context.Background()

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write {
		t.Fatalf("Dataverse's change: verdict %v", v)
	}
	if v, err := w.b.Conflict(ctx, w.m, b, &change.ConflictError{Current: supplier("pg1", 0)}); err != nil || v != Write {
		t.Fatalf("B's first conflict: %v, %v", v, err)
	}

	a1 := w.fromSource("pg1", 0, time.Now())
	if v := w.prepare(w.a, a1); v != Write || !rowIs(a1.Out.After, "pg1", 2) {
		t.Fatalf("A carries the first decision over: verdict %v, %v", v, a1.Out.After)
	}

	if v, err := w.b.Conflict(ctx, w.m, b, &change.ConflictError{Current: supplier("pg2", 0)}); err != nil || v != Write || !rowIs(b.Out.After, "pg2", 2) {
		t.Fatalf("B's second conflict: %v, %v, %v; want the merge pg2|2", v, err, b.Out.After)
	}
	a1.Out.Meta[change.MetaVersion] = `W/"14"`
	w.synced(w.a, a1) // the first carry-over, recorded after the second decision

	a2 := w.fromSource("pg2", 0, time.Now())
	if v := w.prepare(w.a, a2); v != Write || !rowIs(a2.Out.After, "pg2", 2) {
		t.Fatalf("A carries the second decision over: verdict %v, %v", v, a2.Out.After)
	}
	v, err := w.a.Conflict(ctx, w.m, a2, &change.ConflictError{Current: supplier("pg1", 2), Version: `W/"14"`})
	if err != nil || v != Write || !rowIs(a2.Out.After, "pg2", 2) {
		t.Fatalf("the second carry-over refused by the first: %v, %v, %v; want pg2|2 written again", v, err, a2.Out.After)
	}
	if got := a2.Out.Meta[change.MetaExpectedVersion]; got != `W/"14"` {
		t.Errorf("the second carry-over, again, expects Dataverse at %q, want dvsync's own W/\"14\"", got)
	}
	a2.Out.Meta[change.MetaVersion] = `W/"15"`
	w.synced(w.a, a2)
	w.synced(w.b, b)

	// Both sides hold pg2|2: Dataverse's version of it, read back, is
	// settled.
	if v := w.prepare(w.b, w.fromDataverse("pg2", 2, "15")); v != Done {
		t.Errorf("Dataverse's version 15 read back: verdict %v, want done", v)
	}
}

// Pipeline A decides a conflict, and pipeline B carries the decision over
// to the table and records it before Dataverse, edited again, refuses A's
// write of it. The table holds the decision now, not the edit A read: A
// decides again between the decision and Dataverse's new version, measured
// from the version the decision was made against, so that neither the
// table's edit nor Dataverse's is lost; B carries that over in turn.
func TestADecisionRefusedAfterItsCarryOverIsDecidedFromWhatTheTableHolds(t *testing.T) {
	w := newCarryWorld(t)
	w.start()
	ctx := context.Background()

	a := w.aDecides() // pg1|0 against start|2: pg1|2

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write || !rowIs(b.Out.After, "pg1", 2) {
		t.Fatalf("B carries the decision over: verdict %v, %v", v, b.Out.After)
	}
	w.synced(w.b, b)

	v, err := w.a.Conflict(ctx, w.m, a, &change.ConflictError{Current: supplier("start", 7), Version: `W/"15"`})
	if err != nil || v != Write || !rowIs(a.Out.After, "pg1", 7) {
		t.Fatalf("the decision refused by Dataverse's start|7: %v, %v, %v; want the merge pg1|7", v, err, a.Out.After)
	}
	if got := a.Out.Meta[change.MetaExpectedVersion]; got != `W/"15"` {
		t.Errorf("A's write expects Dataverse at %q, want W/\"15\"", got)
	}
	a.Out.Meta[change.MetaVersion] = `W/"16"`
	w.synced(w.a, a)

	b2 := w.fromDataverse("start", 7, "15")
	if v := w.prepare(w.b, b2); v != Write || !rowIs(b2.Out.After, "pg1", 7) {
		t.Fatalf("Dataverse's start|7: verdict %v, %v; want the decision pg1|7 carried to the table", v, b2.Out.After)
	}
	wantExpectedRow(t, b2, "pg1", 2, "the carry-over", "the first decision the table holds, pg1|2")
}

// The mirror: pipeline B decides, pipeline A carries the decision over to
// Dataverse and records it, and the table, edited again, refuses B's
// write. B decides again between the table's new edit and the decision
// Dataverse holds.
func TestADecisionRefusedAfterItsCarryOverIsDecidedFromWhatDataverseHolds(t *testing.T) {
	w := newCarryWorld(t)
	w.start()
	ctx := context.Background()

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write {
		t.Fatalf("Dataverse's change: verdict %v", v)
	}
	if v, err := w.b.Conflict(ctx, w.m, b, &change.ConflictError{Current: supplier("pg1", 0)}); err != nil || v != Write || !rowIs(b.Out.After, "pg1", 2) {
		t.Fatalf("B's conflict: %v, %v, %v", v, err, b.Out.After)
	}
	a := w.fromSource("pg1", 0, time.Now())
	if v := w.prepare(w.a, a); v != Write || !rowIs(a.Out.After, "pg1", 2) {
		t.Fatalf("A carries the decision over: verdict %v, %v", v, a.Out.After)
	}
	a.Out.Meta[change.MetaVersion] = `W/"14"`
	w.synced(w.a, a)

	v, err := w.b.Conflict(ctx, w.m, b, &change.ConflictError{Current: supplier("pg5", 0)})
	if err != nil || v != Write || !rowIs(b.Out.After, "pg5", 2) {
		t.Fatalf("the decision refused by the table's pg5|0: %v, %v, %v; want the merge pg5|2", v, err, b.Out.After)
	}
	wantExpectedRow(t, b, "pg5", 0, "B's write", "the table's pg5|0")
	w.synced(w.b, b)

	a2 := w.fromSource("pg5", 0, time.Now())
	if v := w.prepare(w.a, a2); v != Write || !rowIs(a2.Out.After, "pg5", 2) {
		t.Fatalf("the table's pg5|0: verdict %v, %v; want the decision pg5|2 carried to Dataverse", v, a2.Out.After)
	}
	if got := a2.Out.Meta[change.MetaExpectedVersion]; got != `W/"14"` {
		t.Errorf("the carry-over expects Dataverse at %q, want the first decision's W/\"14\"", got)
	}
}

// The mirror of TestACarryOverRefusedOnlyByAnEarlierOneWritesTheLaterDecision:
// pipeline A decides, pipeline B carries the decision over to the table,
// and A decides again, Dataverse having changed, before B records that
// write. B's carry-over of the second decision is refused by the table
// holding B's own write of the first, and is written again over it.
func TestACarryOverRefusedOnlyByAnEarlierOneWritesTheLaterDecisionToTheTable(t *testing.T) {
	w := newCarryWorld(t)
	w.start()
	ctx := context.Background()

	a := w.aDecides() // pg1|0 against start|2: pg1|2

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write || !rowIs(b.Out.After, "pg1", 2) {
		t.Fatalf("B carries the first decision over: verdict %v, %v", v, b.Out.After)
	}

	v, err := w.a.Conflict(ctx, w.m, a, &change.ConflictError{Current: supplier("start", 7), Version: `W/"15"`})
	if err != nil || v != Write || !rowIs(a.Out.After, "pg1", 7) {
		t.Fatalf("the first decision refused by Dataverse's start|7: %v, %v, %v; want the merge pg1|7", v, err, a.Out.After)
	}
	a.Out.Meta[change.MetaVersion] = `W/"16"`
	w.synced(w.a, a)
	w.synced(w.b, b) // the first carry-over, recorded after the second decision

	b2 := w.fromDataverse("start", 7, "15")
	if v := w.prepare(w.b, b2); v != Write || !rowIs(b2.Out.After, "pg1", 7) {
		t.Fatalf("B carries the second decision over: verdict %v, %v", v, b2.Out.After)
	}
	v, err = w.b.Conflict(ctx, w.m, b2, &change.ConflictError{Current: supplier("pg1", 2)})
	if err != nil || v != Write || !rowIs(b2.Out.After, "pg1", 7) {
		t.Fatalf("the second carry-over refused by the first: %v, %v, %v; want pg1|7 written again", v, err, b2.Out.After)
	}
	wantExpectedRow(t, b2, "pg1", 2, "the second carry-over, again,", "dvsync's own pg1|2")

	// Had the table been edited by someone else, the carry-over would
	// have been dropped: that edit reaches pipeline A.
	w2 := newCarryWorld(t)
	w2.start()
	a = w2.aDecides()
	b = w2.fromDataverse("start", 2, "13")
	w2.prepare(w2.b, b)
	if _, err := w2.a.Conflict(ctx, w2.m, a, &change.ConflictError{Current: supplier("start", 7), Version: `W/"15"`}); err != nil {
		t.Fatal(err)
	}
	a.Out.Meta[change.MetaVersion] = `W/"16"`
	w2.synced(w2.a, a)
	w2.synced(w2.b, b)
	b2 = w2.fromDataverse("start", 7, "15")
	w2.prepare(w2.b, b2)
	if v, err := w2.b.Conflict(ctx, w2.m, b2, &change.ConflictError{Current: supplier("pg9", 2)}); err != nil || v != Done {
		t.Errorf("a carry-over refused by someone else's edit: %v, %v; want done", v, err)
	}
}

// Pipeline B decides a conflict against the table's second of two quick
// edits. Pipeline A reads the first, older than the decision, and carries
// the decision over; that write must not count as A having read the
// version B decided against: when A reads the second edit, it is still
// the decided version, and is not written over the decision.
func TestACarryOverForAnOlderEditLeavesTheDecidedOnePending(t *testing.T) {
	w := newCarryWorld(t)
	w.start()
	ctx := context.Background()
	first := time.Now().Add(-time.Second)
	second := first.Add(time.Millisecond)

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write {
		t.Fatalf("Dataverse's change: verdict %v", v)
	}
	if v, err := w.b.Conflict(ctx, w.m, b, &change.ConflictError{Current: supplier("pg2", 5)}); err != nil || v != Write || !rowIs(b.Out.After, "pg2", 2) {
		t.Fatalf("B's conflict with the table's second edit: %v, %v, %v; want the merge pg2|2", v, err, b.Out.After)
	}

	a1 := w.fromSource("pg1", 0, first)
	if v := w.prepare(w.a, a1); v != Write || !rowIs(a1.Out.After, "pg2", 2) {
		t.Fatalf("the table's first edit: verdict %v, %v; want the decision pg2|2 carried over", v, a1.Out.After)
	}
	a1.Out.Meta[change.MetaVersion] = `W/"14"`
	w.synced(w.a, a1)
	w.synced(w.b, b)

	a2 := w.fromSource("pg2", 5, second)
	if v := w.prepare(w.a, a2); v == Write && !rowIs(a2.Out.After, "pg2", 2) {
		t.Fatalf("the table's second edit, which B decided against, is written to Dataverse as %v over the decision", a2.Out.After)
	}
}

// stampHandler notes when a conflict is logged: a moment while the
// resolver decides it.
type stampHandler struct{ at *time.Time }

func (h stampHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h stampHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h stampHandler) WithGroup(string) slog.Handler            { return h }
func (h stampHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "conflict" {
		*h.at = time.Now()
	}
	return nil
}

// Pipeline B decides a conflict against the table's version it found. A
// table edit committed while B decides, once the write that found that
// version was refused, is later than it: pipeline A writes it as a change
// of its own rather than settle it as overtaken by the decision.
func TestATableEditCommittedWhileAConflictIsDecidedIsLater(t *testing.T) {
	var logged time.Time
	w := newCarryWorldLogging(t, stampHandler{&logged})
	w.start()
	ctx := context.Background()

	b := w.fromDataverse("start", 2, "13")
	if v := w.prepare(w.b, b); v != Write {
		t.Fatalf("Dataverse's change: verdict %v", v)
	}
	if v, err := w.b.Conflict(ctx, w.m, b, &change.ConflictError{Current: supplier("pg1", 0)}); err != nil || v != Write {
		t.Fatalf("B's conflict: %v, %v", v, err)
	}
	if logged.IsZero() {
		t.Fatal("the conflict was not logged")
	}
	a := w.fromSource("pg1", 9, logged)
	if v := w.prepare(w.a, a); v != Write || !rowIs(a.Out.After, "pg1", 9) {
		t.Errorf("the table's edit committed while B decided: verdict %v, %v; want pg1|9 written as a change", v, a.Out.After)
	}
}
