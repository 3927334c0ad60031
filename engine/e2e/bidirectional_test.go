package e2e

import (
	"context"
	"testing"

	"github.com/dvsync/dvsync/conflict"
)

// xmin returns the transaction id that last wrote row id.
func (w *world) xmin(id int) string {
	w.t.Helper()
	var x string
	if err := w.db.Conn.QueryRow(context.Background(), "SELECT xmin::text FROM public.customers WHERE id = $1", id).Scan(&x); err != nil {
		w.t.Fatal(err)
	}
	return x
}

// An edit on either side is written once to the other side, and the
// write does not come back: PostgreSQL's comes back to no one (its
// replication origin is skipped), Dataverse's comes back through change
// tracking and is recognised as an echo.
func TestNoPingPong(t *testing.T) {
	w := newWorld(t, conflict.Rules{})
	w.start()

	w.exec("INSERT INTO public.customers (id, name, city) VALUES (1, 'Ann', 'Oslo')")
	w.bothSides(1, "Ann", "Oslo", false)
	w.quiet()
	if dv, pg := w.dvWrites.Load(), w.pgWrites.Load(); dv != 1 || pg != 0 {
		t.Fatalf("after an insert in PostgreSQL: %d Dataverse writes, %d PostgreSQL writes; want 1 and 0", dv, pg)
	}
	if w.run.b.Stats().Settled == 0 {
		t.Error("pipeline B settled no echo: did it read the row back at all?")
	}

	w.dvEdit(1, map[string]any{"new_name": "Bob"})
	w.bothSides(1, "Bob", "Oslo", false)
	xmin := w.xmin(1)
	w.quiet()
	if dv, pg := w.dvWrites.Load(), w.pgWrites.Load(); dv != 1 || pg != 1 {
		t.Fatalf("after an edit in Dataverse: %d Dataverse writes, %d PostgreSQL writes; want 1 and 1", dv, pg)
	}
	if x := w.xmin(1); x != xmin {
		t.Errorf("the row was written again (xmin %s, then %s)", xmin, x)
	}

	w.exec("UPDATE public.customers SET city = 'Bergen' WHERE id = 1")
	w.bothSides(1, "Bob", "Bergen", false)
	w.exec("DELETE FROM public.customers WHERE id = 1")
	w.bothSides(1, "", "", true)
	w.quiet()
	if dv, pg := w.dvWrites.Load(), w.pgWrites.Load(); dv != 3 || pg != 1 {
		t.Fatalf("after an update and a delete in PostgreSQL: %d Dataverse writes, %d PostgreSQL writes; want 3 and 1", dv, pg)
	}
	if n, _ := w.conflicts(); n != 0 {
		t.Errorf("%v conflicts counted, want none", n)
	}
}

// Both sides change one row while dvsync is down; after the restart the
// mapping's policy decides, both sides end equal, and one conflict is
// counted whichever pipeline met it first.
func TestConflicts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rules    conflict.Rules
		pg       string         // the edit in PostgreSQL
		dv       map[string]any // the edit in Dataverse; nil deletes the row
		want     string         // the final name and city on both sides
		city     string
		gone     bool
		manual   bool
		decision string
		policy   conflict.Policy
	}{
		{name: "source-wins", rules: conflict.Rules{Policy: conflict.SourceWins},
			pg: "UPDATE public.customers SET name = 'Sam' WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			want: "Sam", city: "Oslo", decision: "take-source", policy: conflict.SourceWins},
		{name: "dataverse-wins", rules: conflict.Rules{Policy: conflict.DataverseWins},
			pg: "UPDATE public.customers SET name = 'Sam' WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			want: "Dora", city: "Oslo", decision: "take-dataverse", policy: conflict.DataverseWins},
		{name: "newest-wins source newer", rules: conflict.Rules{Policy: conflict.NewestWins},
			pg: "UPDATE public.customers SET name = 'Sam', updated_at = now() + interval '1 hour' WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			want: "Sam", city: "Oslo", decision: "take-source", policy: conflict.NewestWins},
		{name: "newest-wins dataverse newer", rules: conflict.Rules{Policy: conflict.NewestWins},
			pg: "UPDATE public.customers SET name = 'Sam', updated_at = now() - interval '1 hour' WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			want: "Dora", city: "Oslo", decision: "take-dataverse", policy: conflict.NewestWins},
		{name: "merge different fields", rules: conflict.Rules{Policy: conflict.Merge},
			pg: "UPDATE public.customers SET city = 'Bergen' WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			want: "Dora", city: "Bergen", decision: "merged", policy: conflict.Merge},
		{name: "merge same field tie-break", rules: conflict.Rules{Policy: conflict.Merge, TieBreak: conflict.DataverseWins},
			pg: "UPDATE public.customers SET name = 'Sam', city = 'Bergen' WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			want: "Dora", city: "Bergen", decision: "merged", policy: conflict.Merge},
		{name: "manual", rules: conflict.Rules{Policy: conflict.Manual},
			pg: "UPDATE public.customers SET name = 'Sam' WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			manual: true, decision: "parked", policy: conflict.Manual},
		{name: "source delete wins", rules: conflict.Rules{Policy: conflict.SourceWins},
			pg: "DELETE FROM public.customers WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			gone: true, decision: "take-source", policy: conflict.SourceWins},
		{name: "dataverse update beats delete", rules: conflict.Rules{Policy: conflict.DataverseWins},
			pg: "DELETE FROM public.customers WHERE id = 1", dv: map[string]any{"new_name": "Dora"},
			want: "Dora", city: "Oslo", decision: "take-dataverse", policy: conflict.DataverseWins},
		{name: "source update beats dataverse delete", rules: conflict.Rules{Policy: conflict.SourceWins},
			pg: "UPDATE public.customers SET name = 'Sam' WHERE id = 1", dv: nil,
			want: "Sam", city: "Oslo", decision: "take-source", policy: conflict.SourceWins},
		{name: "dataverse delete wins", rules: conflict.Rules{Policy: conflict.DataverseWins},
			pg: "UPDATE public.customers SET name = 'Sam' WHERE id = 1", dv: nil,
			gone: true, decision: "take-dataverse", policy: conflict.DataverseWins},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.rules)
			w.start()
			w.exec("INSERT INTO public.customers (id, name, city, updated_at) VALUES (1, 'Ann', 'Oslo', now())")
			w.bothSides(1, "Ann", "Oslo", false)
			w.quiet()

			w.stop()
			w.exec(tc.pg)
			if tc.dv != nil {
				w.dvEdit(1, tc.dv)
			} else {
				w.dvDelete(1)
			}
			w.restart()

			if tc.manual {
				w.eventually("a parked conflict", func() bool {
					cs, err := w.store.ParkedConflicts(context.Background(), "customers", 0)
					return err == nil && len(cs) == 1
				})
				w.quiet()
				if n, _, _ := w.pgRow(1); n != "Sam" {
					t.Errorf("PostgreSQL has %q, want its own version kept", n)
				}
				if row, _ := w.dvRow(1); row["new_name"] != "Dora" {
					t.Errorf("Dataverse has %v, want its own version kept", row["new_name"])
				}
				cs, _ := w.store.ParkedConflicts(context.Background(), "customers", 0)
				if len(cs) != 1 || len(cs[0].Source) == 0 || len(cs[0].Dataverse) == 0 {
					t.Fatalf("parked %+v, want one conflict with both versions", cs)
				}
				// The operator takes Dataverse's version: it is written to
				// the table, and nothing comes back.
				if _, err := w.sync.Settle(context.Background(), cs[0].ID, conflict.Dataverse, w.dvETag(1)); err != nil {
					t.Fatal(err)
				}
				writes := w.dvWrites.Load()
				w.exec("UPDATE public.customers SET name = 'Dora' WHERE id = 1")
				w.quiet()
				w.bothSides(1, "Dora", "Oslo", false)
				if n := w.dvWrites.Load(); n != writes {
					t.Errorf("%d Dataverse writes after the settled version reached the table, want none", n-writes)
				}
				if cs, _ := w.store.ParkedConflicts(context.Background(), "customers", 0); len(cs) != 0 {
					t.Errorf("still parked: %+v", cs)
				}
			} else {
				w.bothSides(1, tc.want, tc.city, tc.gone)
				w.quiet()
				w.bothSides(1, tc.want, tc.city, tc.gone)
			}
			n, labels := w.conflicts()
			if n != 1 {
				t.Errorf("%v conflicts counted, want 1", n)
			}
			if labels["decision"] != tc.decision || labels["policy"] != string(tc.policy) || labels["mapping"] != "customers" {
				t.Errorf("conflict counted with labels %v, want decision %s by %s", labels, tc.decision, tc.policy)
			}
		})
	}
}
