package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
)

// reloader applies new mapping files to running pipelines. It is used
// from the one goroutine that receives SIGHUP.
type reloader struct {
	path      string // the config file, re-read for its mappings globs
	current   *mapping.Set
	pipelines map[string]*engine.Pipeline // by name
	mapper    func(set *mapping.Set, pipeline string) engine.Mapper
	log       *slog.Logger
	reloads   *prometheus.CounterVec // by result: applied or refused
	// applied, when set, is told each mapping set once applied.
	applied func(*mapping.Set)
}

func newReloader(cfg *config.Config, set *mapping.Set, pipelines map[string]*engine.Pipeline,
	mapper func(*mapping.Set, string) engine.Mapper, log *slog.Logger, reg prometheus.Registerer) *reloader {
	r := &reloader{
		path: cfg.Path, current: set, pipelines: pipelines, mapper: mapper, log: log,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "dvsync", Name: "mapping_reloads_total",
			Help: "Reloads of the mapping files (SIGHUP), by result: applied, or refused with the old mappings kept.",
		}, []string{"result"}),
	}
	reg.MustRegister(r.reloads)
	return r
}

// run reloads on every signal until ctx ends.
func (r *reloader) run(ctx context.Context, signals <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-signals:
		}
		_ = notifyReloading() // systemd: reloading until the next READY=1
		err := r.reload()
		_ = notifyReloaded()
		if err != nil {
			r.reloads.WithLabelValues("refused").Inc()
			// Each problem names its file and line; one log line says it all.
			r.log.Error("mapping reload refused; the running mappings stay", "err", strings.Join(problemLines(err), "; "))
			continue
		}
		r.reloads.WithLabelValues("applied").Inc()
	}
}

// reload reads the config's mapping files again and, if they are valid
// and a running daemon can apply them, gives every pipeline its new
// mapper. It changes nothing when it returns an error.
func (r *reloader) reload() error {
	_, set, err := loadAll(r.path)
	if err != nil {
		return err
	}
	if err := r.applicable(set); err != nil {
		return err
	}
	for name, p := range r.pipelines {
		// A connection no mapping uses any more keeps streaming, and acks
		// without writing.
		if err := p.SetMapper(r.mapper(set, name)); err != nil {
			return fmt.Errorf("pipeline %s: %w", name, err)
		}
	}
	r.current = set
	if r.applied != nil {
		r.applied(set)
	}
	tables := 0
	for _, c := range set.Connections() {
		tables += len(set.Tables(c))
	}
	r.log.Info("mappings reloaded", "connections", len(set.Connections()), "tables", tables)
	return nil
}

// applicable refuses a mapping set that needs what only a restart gives:
// a pipeline for a new connection, a source reading a new table or keying
// a table by other columns, a sink that knows a table by another entity
// set name, or a bidirectional mapping added, removed, renamed, or given
// other conflict rules or columns synced both ways.
func (r *reloader) applicable(set *mapping.Set) error {
	var errs []error
	oldSets := r.current.EntitySets()
	for _, c := range set.Connections() {
		if _, ok := r.pipelines[c]; !ok {
			errs = append(errs, fmt.Errorf("connection %s has no running pipeline; restart dvsync to start one", c))
			continue
		}
		old := r.current.Tables(c)
		for _, t := range set.Tables(c) {
			if !slices.Contains(old, t) {
				errs = append(errs, fmt.Errorf("connection %s: table %s is new, and the source reads only the tables it started with; restart dvsync to add it", c, t))
			}
		}
		oldKeys, newKeys := r.current.Keys(c), set.Keys(c)
		for _, t := range set.Tables(c) {
			if !slices.Equal(oldKeys[t], newKeys[t]) {
				errs = append(errs, fmt.Errorf("connection %s: table %s: source.key changed, and the source keeps the key it started with; restart dvsync to apply it", c, t))
			}
		}
	}
	for _, c := range set.WriteBackConnections() {
		if _, ok := r.pipelines[reversePrefix+c]; !ok {
			errs = append(errs, fmt.Errorf("connection %s receives Dataverse changes now, and has no running pipeline for them; restart dvsync to start one", c))
			continue
		}
		old := r.current.Mapper(c).DataverseTables()
		for _, t := range set.Mapper(c).DataverseTables() {
			if !slices.Contains(old, t) {
				errs = append(errs, fmt.Errorf("connection %s: Dataverse table %s is new, and its changes are captured only for the tables dvsync started with; restart dvsync to add it", c, t))
			}
		}
	}
	if err := bidirectionalChanges(r.current, set); err != nil {
		errs = append(errs, err)
	}
	for table, es := range set.EntitySets() {
		if old, ok := oldSets[table]; !ok || old != es {
			errs = append(errs, fmt.Errorf("dataverse table %s: entity set %q is new or changed; restart dvsync to apply it", table, es))
		}
	}
	return errors.Join(errs...)
}
