package engine

import (
	"context"
	"fmt"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
)

// TableResolvers dispatches the records of a pipeline that carries
// several mappings to the Resolver of each record's mapping, so that one
// pipeline can hold bidirectional mappings (each with its own Sync) next
// to one-way ones. Records of tables it holds no Resolver for pass
// through: they are written as mapped, without a condition, and nothing is
// recorded for them.
//
// A mapping is named by its source table in both pipelines: pipeline A
// (side conflict.Source) reads it as the table of the source record,
// pipeline B (side conflict.Dataverse) writes it as the table of the
// record mapped back.
//
// A TableResolvers keeps the guarantees of the Resolvers it dispatches to:
// each of them is called with the pairs of its own table only, in the
// batch's order, and never for two batches that hold the same key.
type TableResolvers struct {
	side    conflict.Side
	byTable map[string]Resolver
}

// NewTableResolvers returns the Resolver of the pipeline that reads side's
// changes, dispatching by source table to byTable, which must not change
// afterwards.
func NewTableResolvers(side conflict.Side, byTable map[string]Resolver) *TableResolvers {
	return &TableResolvers{side: side, byTable: byTable}
}

// table returns the source table p belongs to.
func (t *TableResolvers) table(p Pair) string {
	if t.side == conflict.Dataverse {
		return p.Out.Table
	}
	return p.Source.Table
}

// split groups the indexes of pairs by their table's Resolver, in the
// order each Resolver first appears; pairs of tables without one are left
// out.
func (t *TableResolvers) split(pairs []Pair) (order []Resolver, groups map[Resolver][]int) {
	for i := range pairs {
		r, ok := t.byTable[t.table(pairs[i])]
		if !ok {
			continue
		}
		if groups == nil {
			groups = map[Resolver][]int{}
		}
		if _, seen := groups[r]; !seen {
			order = append(order, r)
		}
		groups[r] = append(groups[r], i)
	}
	return order, groups
}

// Prepare hands each table's pairs to its Resolver; pairs of tables
// without one keep the verdict Write.
func (t *TableResolvers) Prepare(ctx context.Context, m Mapper, pairs []Pair, verdicts []Verdict) error {
	order, groups := t.split(pairs)
	if len(order) == 1 && len(groups[order[0]]) == len(pairs) {
		return order[0].Prepare(ctx, m, pairs, verdicts)
	}
	for _, r := range order {
		idx := groups[r]
		sub := make([]Pair, len(idx))
		for k, i := range idx {
			sub[k] = pairs[i]
		}
		subv := make([]Verdict, len(idx))
		if err := r.Prepare(ctx, m, sub, subv); err != nil {
			return err
		}
		for k, i := range idx {
			verdicts[i] = subv[k]
		}
	}
	return nil
}

// Conflict hands the conflict to the Resolver of p's table. A conflict on
// a table without one cannot arise, since only Resolvers make writes
// conditional; it is reported as an error rather than written again.
func (t *TableResolvers) Conflict(ctx context.Context, m Mapper, p Pair, err *change.ConflictError) (Verdict, error) {
	r, ok := t.byTable[t.table(p)]
	if !ok {
		return Write, fmt.Errorf("conflict on %s, which no bidirectional mapping syncs: %w", t.table(p), err)
	}
	return r.Conflict(ctx, m, p, err)
}

// Synced hands each table's durable pairs to its Resolver.
func (t *TableResolvers) Synced(ctx context.Context, pairs []Pair) error {
	order, groups := t.split(pairs)
	if len(order) == 1 && len(groups[order[0]]) == len(pairs) {
		return order[0].Synced(ctx, pairs)
	}
	for _, r := range order {
		idx := groups[r]
		sub := make([]Pair, len(idx))
		for k, i := range idx {
			sub[k] = pairs[i]
		}
		if err := r.Synced(ctx, sub); err != nil {
			return err
		}
	}
	return nil
}
