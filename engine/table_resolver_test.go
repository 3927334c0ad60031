package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
)

// tableSpy records what a TableResolvers hands it and answers Done for
// every record whose key is "done".
type tableSpy struct {
	prepared, synced, conflicts []string
}

func (s *tableSpy) Prepare(_ context.Context, _ Mapper, pairs []Pair, verdicts []Verdict) error {
	for i, p := range pairs {
		s.prepared = append(s.prepared, p.Out.Key.String())
		if p.Out.Key[0].Value.String() == "done" {
			verdicts[i] = Done
		}
	}
	return nil
}

func (s *tableSpy) Conflict(_ context.Context, _ Mapper, p Pair, _ *change.ConflictError) (Verdict, error) {
	s.conflicts = append(s.conflicts, p.Out.Key.String())
	return Done, nil
}

func (s *tableSpy) Synced(_ context.Context, pairs []Pair) error {
	for _, p := range pairs {
		s.synced = append(s.synced, p.Out.Key.String())
	}
	return nil
}

func tablePair(srcTable, outTable, key string) Pair {
	k := change.Key{{Name: "k", Value: change.Text(key)}}
	return Pair{Source: &change.Record{Table: srcTable, Key: k}, Out: &change.Record{Table: outTable, Key: k}}
}

// Each mapping's Resolver sees its own table's records only, named by the
// source table on both pipelines; other tables pass through as writes.
func TestTableResolversDispatchBySourceTable(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		side conflict.Side
		pair func(table, key string) Pair
	}{
		{side: conflict.Source, pair: func(table, key string) Pair { return tablePair(table, "dv_"+table, key) }},
		{side: conflict.Dataverse, pair: func(table, key string) Pair { return tablePair("dv_"+table, table, key) }},
	} {
		t.Run(tc.side.String(), func(t *testing.T) {
			a, b := &tableSpy{}, &tableSpy{}
			r := NewTableResolvers(tc.side, map[string]Resolver{"public.a": a, "public.b": b})
			pairs := []Pair{
				tc.pair("public.a", "a1"), tc.pair("public.oneway", "o1"), tc.pair("public.b", "done"),
				tc.pair("public.a", "done"), tc.pair("public.b", "b2"),
			}
			verdicts := make([]Verdict, len(pairs))
			if err := r.Prepare(ctx, nil, pairs, verdicts); err != nil {
				t.Fatal(err)
			}
			want := []Verdict{Write, Write, Done, Done, Write}
			for i := range want {
				if verdicts[i] != want[i] {
					t.Errorf("verdict %d = %v, want %v", i, verdicts[i], want[i])
				}
			}
			if got := fmtKeys(a.prepared); got != "[k=a1 k=done]" {
				t.Errorf("a prepared %s", got)
			}
			if got := fmtKeys(b.prepared); got != "[k=done k=b2]" {
				t.Errorf("b prepared %s", got)
			}
			if err := r.Synced(ctx, pairs); err != nil {
				t.Fatal(err)
			}
			if got := fmtKeys(a.synced); got != "[k=a1 k=done]" {
				t.Errorf("a synced %s", got)
			}
			if v, err := r.Conflict(ctx, nil, pairs[4], &change.ConflictError{}); err != nil || v != Done {
				t.Errorf("conflict on b: %v, %v", v, err)
			}
			if fmtKeys(b.conflicts) != "[k=b2]" || len(a.conflicts) != 0 {
				t.Errorf("conflicts: a %v, b %v", a.conflicts, b.conflicts)
			}
			cerr := &change.ConflictError{Err: errors.New("412")}
			if _, err := r.Conflict(ctx, nil, pairs[1], cerr); err == nil || !errors.Is(err, cerr) {
				t.Errorf("conflict on a one-way table: err = %v, want it reported", err)
			}
		})
	}
}

func fmtKeys(keys []string) string {
	out := "["
	for i, k := range keys {
		if i > 0 {
			out += " "
		}
		out += k
	}
	return out + "]"
}
