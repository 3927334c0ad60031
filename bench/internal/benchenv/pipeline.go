package benchenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/dataverse"
	"github.com/dvsync/dvsync/source/postgres"
	"github.com/dvsync/dvsync/state"
)

// Mapping maps Table to the emulator's accounts, upserting by the
// alternate key accountnumber.
const Mapping = `
version: 1
source: {connection: app, table: public.customers}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id,        target: accountnumber, type: string}
  - {source: name,      target: name}
  - {source: employees, target: numberofemployees, type: integer}
  - {source: credit,    target: creditlimit, type: money}
`

// KafkaMapping maps JSON messages of the topic KafkaTopic, one row per
// message with the columns of Table, to the same accounts.
const KafkaMapping = `
version: 1
source: {connection: kafka, topic: bench, format: json, key_fields: [id]}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id,        target: accountnumber, type: string}
  - {source: name,      target: name}
  - {source: employees, target: numberofemployees, type: integer}
  - {source: credit,    target: creditlimit, type: money}
`

// KafkaTopic is the topic KafkaMapping reads.
const KafkaTopic = "bench"

// connection is Mapping's source connection name; kafkaConnection
// KafkaMapping's.
const (
	connection      = "app"
	kafkaConnection = "kafka"
)

// backfillInFlight is the engine's MaxInFlight as 'dvsync backfill' sets it.
const backfillInFlight = 20_000

var discardLogger = slog.New(slog.DiscardHandler)

func compileMapping() (*mapping.Set, error) { return compile(Mapping) }

func compile(yaml string) (*mapping.Set, error) {
	m, err := mapping.Parse([]byte(yaml), "mapping.yaml")
	if err != nil {
		return nil, err
	}
	return mapping.Compile([]*mapping.Mapping{m})
}

// NewSink returns the Dataverse sink writing to em as 'dvsync run' builds
// it, with cfg's settings (its EntitySets are filled in), and the client
// under it; the caller closes both.
func NewSink(em *Emulator, cfg dataverse.Config) (*dataverse.Sink, *odataclient.Client, error) {
	set, err := compileMapping()
	if err != nil {
		return nil, nil, err
	}
	client, err := em.Client()
	if err != nil {
		return nil, nil, err
	}
	cfg.EntitySets = set.EntitySets()
	return dataverse.New(client, cfg), client, nil
}

// Backfill reads Table through the snapshot source, the mapping and an
// engine pipeline into dst, as 'dvsync backfill' does, with a throwaway
// state store; slot must not exist yet. It returns the rows read, and
// fails if the pipeline stopped early or dead-lettered a row.
func Backfill(ctx context.Context, dsn, slot string, dst sink.Sink) (int64, error) {
	set, err := compileMapping()
	if err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "dvbench-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	st, err := state.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	snap, err := postgres.NewSnapshot(postgres.Config{
		DSN: dsn, Slot: slot, Publication: slot, Tables: set.Tables(connection), Keys: set.Keys(connection),
	}, postgres.SnapshotOptions{}, discardLogger)
	if err != nil {
		return 0, err
	}
	p, err := engine.New(engine.Config{
		Name: "backfill/" + connection, MaxInFlight: backfillInFlight, Logger: discardLogger,
	}, snap, set.Mapper(connection), dst, st)
	if err != nil {
		return 0, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	finished := make(chan struct{})
	go func() {
		select {
		case <-snap.Done():
			close(finished)
			cancel()
		case <-runCtx.Done():
		}
	}()
	if err := p.Run(runCtx); err != nil {
		return 0, fmt.Errorf("backfill: %w", err)
	}
	select {
	case <-finished:
	default:
		return 0, errors.New("backfill: the pipeline stopped before the snapshot was read")
	}
	if n := p.Stats().DeadLettered; n > 0 {
		return 0, fmt.Errorf("backfill: %d rows dead-lettered", n)
	}
	var rows int64
	for _, t := range snap.Progress() {
		rows += t.Read
	}
	return rows, nil
}
