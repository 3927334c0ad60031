package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/mapping"
)

// loadAll reads the config file and every mapping it names, and checks
// that they agree with each other. It connects to nothing.
func loadAll(path string) (*config.Config, *mapping.Set, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, err
	}
	files, err := cfg.MappingFiles()
	if err != nil {
		return nil, nil, err
	}
	ms, err := mapping.LoadFiles(files)
	if err != nil {
		return nil, nil, err
	}
	set, err := mapping.Compile(ms)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, m := range set.Mappings() {
		conn, ok := cfg.Connections[m.Source.Connection]
		switch {
		case !ok:
		case conn.Type == "kafka" && m.Source.Topic == "":
			errs = append(errs, fmt.Errorf("%s:%d: source.table: connection %s is Kafka; name a topic with source.topic", m.File, m.LineOf("source.table"), m.Source.Connection))
		case conn.Type != "kafka" && m.Source.Topic != "":
			errs = append(errs, fmt.Errorf("%s:%d: source.topic: connection %s is %s, not Kafka; name a table with source.table", m.File, m.LineOf("source.topic"), m.Source.Connection, conn.Type))
		}
	}
	for _, name := range set.Connections() {
		conn, ok := cfg.Connections[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: a mapping uses connection %q, which connections: does not define", cfg.Path, name))
			continue
		}
		if _, ok := sourceFactories[conn.Type]; !ok {
			errs = append(errs, fmt.Errorf("%s: connections.%s.type: %q sources are not supported yet", cfg.Path, name, conn.Type))
		}
	}
	for i, p := range cfg.Publish {
		if slices.Contains(set.Connections(), p.From) || slices.Contains(set.WriteBackConnections(), p.From) {
			errs = append(errs, fmt.Errorf("%s: publish[%d].from: connection %s is published, and mappings use it too; a replication slot has one reader: give the mappings another connection (with its own slot) or another dvsync", cfg.Path, i, p.From))
		}
	}
	back := set.WriteBackConnections()
	for _, name := range back {
		conn, ok := cfg.Connections[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: a mapping uses connection %q, which connections: does not define", cfg.Path, name))
			continue
		}
		if _, ok := sinkFactories[conn.Type]; !ok {
			errs = append(errs, fmt.Errorf("%s: connections.%s.type: writing Dataverse changes to %q connections is not supported yet", cfg.Path, name, conn.Type))
		}
	}
	if len(back) > 1 && cfg.Dataverse.Changes.Webhook.Listen != "" {
		errs = append(errs, fmt.Errorf("%s: dataverse.changes.webhook: mappings write Dataverse changes to %d connections (%s); with webhooks, only one may receive them (use polling alone, or one dvsync per connection)",
			cfg.Path, len(back), strings.Join(back, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return cfg, set, nil
}
