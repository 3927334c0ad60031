package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink/dataverse"
	"github.com/dvsync/dvsync/source"
	dvsource "github.com/dvsync/dvsync/source/dataverse"
)

// newDataverseSink builds a sink writing through client to the tables the
// mappings name.
func newDataverseSink(client *odataclient.Client, cfg *config.Config, set entitySetter) *dataverse.Sink {
	return dataverse.New(client, dataverse.Config{
		Concurrency: cfg.Dataverse.Concurrency,
		EntitySets:  set.EntitySets(),
		Mode:        cfg.Dataverse.WriteMode,
		BatchSize:   cfg.Dataverse.BatchSize,
		Write: odataclient.WriteOptions{
			Tag:                         cfg.Dataverse.Tag,
			BypassCustomPluginExecution: cfg.Dataverse.BypassCustomPluginExecution,
		},
	})
}

// entitySetter is the part of a mapping set the Dataverse sink needs.
type entitySetter interface{ EntitySets() map[string]string }

// dataverseSource builds the source of Dataverse changes that the mappings
// of one connection write back to it: the event hub when
// dataverse.changes.event_hub is given; else the webhook receiver when
// dataverse.changes.webhook.listen is given, and the change-tracking poller
// of those tables unless polling is off.
func (a *adapters) dataverseSource(ctx context.Context, pipeline, conn string, log *slog.Logger) (source.Source, error) {
	if a.cfg.Dataverse.Changes.EventHub.Connection != "" {
		if eventHubSource == nil {
			return nil, errors.New("dataverse.changes.event_hub: this dvsync cannot read event hubs")
		}
		return eventHubSource(ctx, a, pipeline, conn, log)
	}
	store, ok := a.store.(dvsource.Store)
	if !ok {
		return nil, errors.New("the state store cannot keep Dataverse changes")
	}
	own, err := a.ownUserID(ctx)
	if err != nil {
		return nil, err
	}
	ch := &a.cfg.Dataverse.Changes
	cfg := dvsource.Config{Name: pipeline, OwnUserIDs: []string{own}, Tag: a.cfg.Dataverse.Tag}
	if w := ch.Webhook; w.Listen != "" {
		cfg.Webhook = &dvsource.WebhookConfig{
			Listen: w.Listen, Path: w.Path, TLSCertFile: w.TLSCertFile, TLSKeyFile: w.TLSKeyFile,
			MaxBodyBytes: w.MaxBodyBytes,
			Auth: dvsource.WebhookAuth{
				WebhookKey: w.Auth.WebhookKey.Reveal(),
				Headers:    revealAll(w.Auth.Headers),
				Query:      revealAll(w.Auth.Query),
			},
		}
	}
	if ch.Poll.Enabled {
		p := &dvsource.PollConfig{MinInterval: ch.Poll.MinInterval, MaxInterval: ch.Poll.MaxInterval, PageSize: ch.Poll.PageSize}
		for _, t := range a.set.Mapper(conn).DataverseTables() {
			p.Tables = append(p.Tables, dvsource.PollTable{Table: t})
		}
		cfg.Poll = p
	}
	src, err := dvsource.New(cfg, a.client, store, log)
	if err != nil {
		return nil, fmt.Errorf("dataverse.changes: %w", err)
	}
	return src, nil
}

func revealAll(m map[string]config.Secret) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range maps.All(m) {
		out[k] = v.Reveal()
	}
	return out
}
