package benchenv

import (
	"context"
	"fmt"
	"time"

	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/internal/freeport"
	"github.com/dvsync/dvsync/sink"
	sinkpg "github.com/dvsync/dvsync/sink/postgres"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/dataverse"
	"github.com/dvsync/dvsync/state"
)

// InboundTable receives the accounts changed in Dataverse.
const InboundTable = "public.customers_in"

const createInbound = `CREATE TABLE IF NOT EXISTS public.customers_in (
	id text PRIMARY KEY, name text NOT NULL, employees int, credit numeric(12,2))`

// ReverseMapping maps the emulator's accounts back to InboundTable.
const ReverseMapping = `
version: 1
direction: from-dataverse
source: {connection: app, table: public.customers_in}
dataverse: {table: account, entity_set: accounts}
key: {alternate_key: [accountnumber]}
columns:
  - {source: id,        target: accountnumber}
  - {source: name,      target: name}
  - {source: employees, target: numberofemployees, type: integer}
  - {source: credit,    target: creditlimit, type: money}
`

// InboundFeed is how changes leave Dataverse.
type InboundFeed int

// The feeds of source/dataverse.
const (
	// Webhooks: the emulator posts each create's context to the source's
	// receiver.
	Webhooks InboundFeed = iota
	// Delta: the source polls the accounts' change tracking.
	Delta
)

// PollInterval is the delta poller's interval after a round that found
// changes, and its longest wait after empty rounds, in the benchmark.
const PollInterval = 200 * time.Millisecond

// Inbound is a running Dataverse → PostgreSQL pipeline and its emulator.
type Inbound struct {
	*Streaming
	// Emulator is the Dataverse the changes come from.
	Emulator *Emulator
}

// StartInbound empties InboundTable, starts an emulator with change
// tracking (and, for Webhooks, a webhook to the source's receiver), and a
// pipeline source/dataverse → mapping (MapToSource) → sink/postgres
// writing to InboundTable, as 'dvsync run' wires a from-dataverse
// mapping. Stop both when done.
func StartInbound(ctx context.Context, pg *Postgres, feed InboundFeed) (*Inbound, error) {
	if err := pg.Exec(ctx, createInbound); err != nil {
		return nil, err
	}
	if err := pg.Exec(ctx, "TRUNCATE "+InboundTable); err != nil {
		return nil, err
	}
	dst, err := sinkpg.New(sinkpg.Config{DSN: pg.DSN()})
	if err != nil {
		return nil, err
	}
	return startReverse(ctx, feed, ReverseMapping, dst)
}

// startReverse starts an emulator fed as feed says and a pipeline
// source/dataverse → the from-dataverse mapping in yaml → dst.
func startReverse(ctx context.Context, feed InboundFeed, yaml string, dst sink.Sink) (*Inbound, error) {
	set, err := compile(yaml)
	if err != nil {
		return nil, err
	}
	cfg := dataverse.Config{Name: "dataverse"}
	var em *Emulator
	switch feed {
	case Webhooks:
		addr, err := freeport.Loopback()
		if err != nil {
			return nil, err
		}
		key := randomToken()
		cfg.Webhook = &dataverse.WebhookConfig{Listen: addr, Auth: dataverse.WebhookAuth{WebhookKey: key}}
		em, err = StartEmulatorWebhook("http://"+addr+dataverse.DefaultPath, key)
		if err != nil {
			return nil, err
		}
	case Delta:
		cfg.Poll = &dataverse.PollConfig{
			Tables:      []dataverse.PollTable{{Table: "account", Select: []string{"accountnumber", "name", "numberofemployees", "creditlimit"}}},
			MinInterval: PollInterval, MaxInterval: PollInterval,
		}
		if em, err = StartEmulatorWebhook("", ""); err != nil {
			return nil, err
		}
	}
	client, err := em.Client()
	if err != nil {
		em.Stop()
		return nil, err
	}
	mapper := set.Mapper(connection)
	s, err := startPipelineWith(ctx, "dataverse", func(st *state.Bolt) (source.Source, error) {
		return dataverse.New(cfg, client, st, discardLogger)
	}, engine.MapperFunc(mapper.MapToSource), dst)
	if err != nil {
		em.Stop()
		return nil, err
	}
	return &Inbound{Streaming: s, Emulator: em}, nil
}

// Stop stops the pipeline and the emulator.
func (in *Inbound) Stop() error {
	err := in.Streaming.Stop()
	in.Emulator.Stop()
	return err
}

// CompareInbound checks that InboundTable holds exactly the rows 1 … n
// with the values Postgres.Insert gives them.
func CompareInbound(ctx context.Context, pg *Postgres, n int) error {
	var count, wrong int64
	err := pg.Conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE NOT (
			id ~ '^[0-9]+$' AND id::bigint BETWEEN 1 AND $1
			AND name = 'Customer ' || id AND employees = id::bigint % 5000 AND credit = id::bigint % 100000 + 0.25))
		  FROM `+InboundTable, n).Scan(&count, &wrong)
	if err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if count != int64(n) || wrong > 0 {
		return fmt.Errorf("target differs from source: %d rows in %s, want %d; %d with wrong values", count, InboundTable, n, wrong)
	}
	return nil
}
