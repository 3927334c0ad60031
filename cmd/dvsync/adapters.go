package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/state"
)

// adapters is what the adapter factories build from: the daemon config,
// the mappings, the Dataverse client and the state store.
type adapters struct {
	cfg    *config.Config
	set    *mapping.Set
	client *odataclient.Client
	store  state.Store
	log    *slog.Logger
	// live is the mapping set in force: set until a reload applies
	// another.
	live atomic.Pointer[mapping.Set]

	userOnce sync.Once
	userID   string
	userErr  error

	idsMu sync.Mutex
	ids   map[string]*idIndex // by from-dataverse pipeline
}

// sourceFactory builds the source reading the mapped tables (or topics)
// of one connection, whose changes flow to Dataverse.
type sourceFactory func(ctx context.Context, a *adapters, name string, conn config.Connection, log *slog.Logger) (source.Source, error)

// sinkFactory builds the sink writing Dataverse changes to one connection,
// for mappings with direction from-dataverse or both.
type sinkFactory func(ctx context.Context, a *adapters, name string, conn config.Connection) (sink.Sink, error)

// storeWrapper wraps the state store a pipeline reading one connection
// uses, to add to what the engine stores (dead letters published to a
// topic, say).
type storeWrapper func(ctx context.Context, a *adapters, name string, conn config.Connection, st state.Store) (state.Store, error)

// sourceFactories, sinkFactories and storeWrappers are the adapters by
// connection type; each type's file registers its own in init.
var (
	sourceFactories = map[string]sourceFactory{}
	sinkFactories   = map[string]sinkFactory{}
	storeWrappers   = map[string]storeWrapper{}
)

// eventHubSource builds the source of Dataverse changes read from an
// event hub (dataverse.changes.event_hub), for the pipeline writing them to
// conn. Set by the Kafka wiring.
var eventHubSource func(ctx context.Context, a *adapters, pipeline, conn string, log *slog.Logger) (source.Source, error)

// pipelineStore is the state store of the pipeline reading the named
// connection: the daemon's, wrapped as the connection's type asks.
func (a *adapters) pipelineStore(ctx context.Context, name string, conn config.Connection) (state.Store, error) {
	if w := storeWrappers[conn.Type]; w != nil {
		return w(ctx, a, name, conn, a.store)
	}
	return a.store, nil
}

// sourceTables are the tables the source of a connection reads: those a
// publish entry lists, or those its mappings apply to Dataverse.
func (a *adapters) sourceTables(conn string) []string {
	for _, p := range a.cfg.Publish {
		if p.From == conn {
			return slices.Clone(p.Tables)
		}
	}
	return a.set.Tables(conn)
}

// publishPrefix names the pipelines of publish entries:
// "publish/<connection>".
const publishPrefix = "publish/"

// ownUserID is the Dataverse user dvsync writes as: the config's
// dataverse.changes.user_id, else WhoAmI's answer, asked once.
func (a *adapters) ownUserID(ctx context.Context) (string, error) {
	a.userOnce.Do(func() {
		if id := a.cfg.Dataverse.Changes.UserID; id != "" {
			a.userID = strings.ToLower(id)
			return
		}
		who, err := a.client.WhoAmI(ctx)
		if err != nil {
			a.userErr = fmt.Errorf("dataverse: WhoAmI, to learn the user whose changes are dvsync's own (or set dataverse.changes.user_id): %w", err)
			return
		}
		a.userID = strings.ToLower(who.UserID)
	})
	return a.userID, a.userErr
}

// writesBack reports whether mappings write Dataverse changes to the named
// connection.
func (a *adapters) writesBack(conn string) bool {
	for _, c := range a.set.WriteBackConnections() {
		if c == conn {
			return true
		}
	}
	return false
}

// reversePrefix names the pipelines that write Dataverse changes to a
// connection: "from-dataverse/<connection>". Connection names cannot hold
// a slash, so these names never collide with a connection's.
const reversePrefix = "from-dataverse/"

// mapper returns the mapper of the named pipeline under set: the
// connection's mappings to Dataverse, or, for a from-dataverse pipeline,
// their reverse, with the pipeline's id index.
func (a *adapters) mapper(set *mapping.Set, pipeline string) engine.Mapper {
	if strings.HasPrefix(pipeline, publishPrefix) {
		return asIs
	}
	if conn, ok := strings.CutPrefix(pipeline, reversePrefix); ok {
		return reverseMapper{m: set.Mapper(conn), ids: a.idIndex(pipeline)}
	}
	// A nil *mapping.Mapper maps nothing, which is what a pipeline whose
	// connection lost its mappings should do.
	return undecodable{set.Mapper(pipeline)}
}

// asIs passes records through unmapped, for publish pipelines.
var asIs = engine.MapperFunc(func(rec *change.Record) (change.Record, bool, error) { return *rec, true, nil })

// metaDecodeError marks a record standing for a message its source could
// not decode (a Kafka message that is not JSON, say), with the reason.
const metaDecodeError = "decode_error"

// undecodable sends records their source could not decode to the dead
// letters with the source's reason, rather than the mapping's confusion
// at a record without a row.
type undecodable struct{ m *mapping.Mapper }

func (u undecodable) Map(rec *change.Record) (change.Record, bool, error) {
	if why, ok := rec.Meta[metaDecodeError]; ok {
		return change.Record{}, false, change.Permanent(errors.New(why))
	}
	return u.m.Map(rec)
}

// ReadsColumn passes the mapping's answer on, for the engine's schema
// change checks.
func (u undecodable) ReadsColumn(table, column string) bool { return u.m.ReadsColumn(table, column) }

// idIndex returns the id index of a from-dataverse pipeline, made on first
// use; nil when the state store keeps none.
func (a *adapters) idIndex(pipeline string) *idIndex {
	a.idsMu.Lock()
	defer a.idsMu.Unlock()
	if x, ok := a.ids[pipeline]; ok {
		return x
	}
	if a.ids == nil {
		a.ids = map[string]*idIndex{}
	}
	x := newIDIndex(a.store, pipeline)
	a.ids[pipeline] = x
	return x
}

// reverseSink wraps the sink of a from-dataverse pipeline so the ids its
// mapper noted are stored before each write.
func (a *adapters) reverseSink(pipeline string, dst sink.Sink) sink.Sink {
	if x := a.idIndex(pipeline); x != nil {
		return indexingSink{Sink: dst, ids: x}
	}
	return dst
}
