package main

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/state"
)

// bidirectional holds the Syncs of the mappings with direction both, by
// connection and source table: the state the two pipelines of such a
// mapping share.
type bidirectional map[string]map[string]*engine.Sync

// newBidirectional builds one Sync per mapping with direction both. Their
// Reverse maps Dataverse rows back with live's mappings at the time of the
// call, so that reloaded mappings apply to the conflicts met after the
// reload.
func newBidirectional(set *mapping.Set, live func() *mapping.Set, st state.Store, logger *slog.Logger, reg prometheus.Registerer) (bidirectional, error) {
	b := bidirectional{}
	for _, m := range set.Mappings() {
		if m.Direction != mapping.Both {
			continue
		}
		s, err := newMappingSync(m, live, st, logger, reg)
		if err != nil {
			return nil, err
		}
		conn := m.Source.Connection
		if b[conn] == nil {
			b[conn] = map[string]*engine.Sync{}
		}
		b[conn][m.Source.SourceName()] = s
	}
	return b, nil
}

// newMappingSync builds the Sync of m, a mapping with direction both.
func newMappingSync(m *mapping.Mapping, live func() *mapping.Set, st state.Store, logger *slog.Logger, reg prometheus.Registerer) (*engine.Sync, error) {
	ss, ok := st.(state.SyncStore)
	if !ok {
		return nil, fmt.Errorf("mapping %s: direction both: the state store cannot keep sync state", m.Name)
	}
	conn := m.Source.Connection
	s, err := engine.NewSync(engine.SyncConfig{
		Mapping:         m.Name,
		Rules:           conflictRules(m.Conflict),
		Columns:         syncColumns(m),
		TimestampColumn: m.Conflict.TimestampColumn,
		Reverse: func(rec *change.Record) (change.Record, bool, error) {
			return live().Mapper(conn).MapToSource(rec)
		},
		Store:   ss,
		Logger:  logger,
		Metrics: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", m.Name, err)
	}
	return s, nil
}

// syncColumns are the columns whose values the Sync of m compares and
// records: those synced both ways, less the key's. The key addresses the
// row's sync state rather than being part of it, and each side may spell
// it differently (a number written to a string attribute comes back as
// text).
func syncColumns(m *mapping.Mapping) []string {
	key := slices.Clone(m.Source.Key)
	if m.Key.ID.Column != "" {
		key = append(key, m.Key.ID.Column)
	}
	for _, c := range m.Columns {
		if c.Source != "" && slices.Contains(m.Key.AlternateKey, c.Target) {
			key = append(key, c.Source)
		}
	}
	var cols []string
	for _, c := range m.SyncedColumns() {
		if !slices.Contains(key, c) {
			cols = append(cols, c)
		}
	}
	return cols
}

// conflictRules turns a mapping's conflict block into the rules the
// engine applies. The block's defaults are already filled, so the
// engine's own (source-wins for an empty policy) never apply.
func conflictRules(c mapping.Conflict) conflict.Rules {
	return conflict.Rules{Policy: conflict.Policy(c.Policy), TieBreak: conflict.Policy(c.TieBreak)}
}

// resolver returns the Resolver of the named pipeline: the Syncs of its
// connection's bidirectional mappings, seen from the side the pipeline
// reads; nil when the connection has none, which leaves it one-way.
func (b bidirectional) resolver(pipeline string) engine.Resolver {
	side, conn := conflict.Source, pipeline
	if c, ok := strings.CutPrefix(pipeline, reversePrefix); ok {
		side, conn = conflict.Dataverse, c
	}
	syncs := b[conn]
	if len(syncs) == 0 || strings.HasPrefix(pipeline, publishPrefix) {
		return nil
	}
	byTable := make(map[string]engine.Resolver, len(syncs))
	for table, s := range syncs {
		byTable[table] = s.Resolver(side)
	}
	return engine.NewTableResolvers(side, byTable)
}

// bidirectionalChanges lists why set cannot replace old in a running
// daemon as far as bidirectional mappings go: their Syncs are built at
// start, with the mapping's name, conflict rules and the columns synced
// both ways.
func bidirectionalChanges(old, set *mapping.Set) error {
	type id struct{ conn, table string }
	index := func(s *mapping.Set) map[id]*mapping.Mapping {
		out := map[id]*mapping.Mapping{}
		for _, m := range s.Mappings() {
			out[id{m.Source.Connection, m.Source.SourceName()}] = m
		}
		return out
	}
	before, after := index(old), index(set)
	var errs []error
	for k, m := range after {
		o := before[k]
		wasBoth, isBoth := o != nil && o.Direction == mapping.Both, m.Direction == mapping.Both
		switch {
		case wasBoth != isBoth:
			errs = append(errs, fmt.Errorf("%s: direction both was added or removed; restart dvsync to apply it", m.File))
		case !isBoth:
		case o.Name != m.Name:
			errs = append(errs, fmt.Errorf("%s: the name of a direction both mapping keys its sync state; restart dvsync to rename it", m.File))
		case o.Conflict != m.Conflict:
			errs = append(errs, fmt.Errorf("%s: conflict: the conflict rules of a running mapping are fixed; restart dvsync to apply them", m.File))
		case !slices.Equal(syncColumns(o), syncColumns(m)):
			errs = append(errs, fmt.Errorf("%s: the columns synced both ways changed; restart dvsync to apply them", m.File))
		}
	}
	for k, o := range before {
		if _, ok := after[k]; !ok && o.Direction == mapping.Both {
			errs = append(errs, fmt.Errorf("%s: a direction both mapping was removed; restart dvsync to apply it", o.File))
		}
	}
	return errors.Join(errs...)
}
