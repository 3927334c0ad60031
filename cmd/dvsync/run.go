package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink/dataverse"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/postgres"
	"github.com/dvsync/dvsync/state"
)

// sourceFactory builds the source for one connection, reading the given
// source tables.
type sourceFactory func(name string, c config.Connection, tables []string, log *slog.Logger) (source.Source, error)

// sourceFactories is the plain map of source adapters by connection type.
var sourceFactories = map[string]sourceFactory{
	"postgres": func(_ string, c config.Connection, tables []string, log *slog.Logger) (source.Source, error) {
		return postgres.New(postgres.Config{
			DSN:            c.DSN.Reveal(),
			Slot:           c.Slot,
			Publication:    c.Publication,
			Tables:         tables,
			StatusInterval: c.StatusInterval,
		}, log)
	},
}

func newRunCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the sync daemon until SIGTERM or SIGINT",
		Long: `run starts one pipeline per source connection used by the mappings, streams
changes into Dataverse, and serves /healthz, /readyz and /metrics on the
config's http.listen address.

On SIGTERM or SIGINT it stops reading, finishes the writes in flight, saves
the last acknowledged position and exits 0. A restarted daemon resumes from
that position; nothing committed at the source is lost.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, set, err := loadAll(path)
			if err != nil {
				return err
			}
			logger, err := newLogger(os.Stderr, cfg.Log.Level, cfg.Log.Format)
			if err != nil {
				return fmt.Errorf("%s: log: %w", cfg.Path, err)
			}
			return runDaemon(cmd.Context(), cfg, set, logger)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "dvsync.yaml", "daemon config file")
	return cmd
}

// runDaemon runs every pipeline until ctx is cancelled or one of them
// fails; a failure stops the others too, so the process exits non-zero and
// its supervisor restarts it.
func runDaemon(ctx context.Context, cfg *config.Config, set *mapping.Set, logger *slog.Logger) error {
	st, err := state.OpenBolt(cfg.State.Path)
	if err != nil {
		return err
	}
	defer st.Close()

	client, err := odataclient.New(odataclient.Options{
		BaseURL:    cfg.Dataverse.URL,
		APIVersion: cfg.Dataverse.APIVersion,
		Tokens:     odataclient.StaticToken(cfg.Dataverse.Auth.Token.Reveal()),
		UserAgent:  "dvsync/" + version,
	})
	if err != nil {
		return fmt.Errorf("dataverse: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var pipelines []*engine.Pipeline
	for _, name := range set.Connections() {
		conn := cfg.Connections[name]
		log := logger.With("pipeline", name)
		src, err := sourceFactories[conn.Type](name, conn, set.Tables(name), log)
		if err != nil {
			return fmt.Errorf("connection %s: %w", name, err)
		}
		// Each pipeline owns its sink (Run closes it); they share the client
		// and so its connection pool.
		dst := dataverse.New(client, dataverse.Config{
			Concurrency: cfg.Dataverse.Concurrency,
			EntitySets:  set.EntitySets(),
		})
		p, err := engine.New(engine.Config{
			Name:              name,
			Workers:           cfg.Engine.Workers,
			BatchSize:         cfg.Engine.BatchSize,
			BatchWait:         cfg.Engine.BatchWait,
			MaxRetries:        cfg.Engine.MaxRetries,
			StopAfterFailures: cfg.Engine.StopAfterFailures,
			ShutdownTimeout:   cfg.Engine.ShutdownTimeout,
			Logger:            logger, // the engine adds the pipeline name itself
			Metrics:           reg,
		}, src, set.Mapper(name), dst, st)
		if err != nil {
			return fmt.Errorf("connection %s: %w", name, err)
		}
		pipelines = append(pipelines, p)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if cfg.HTTP.Listen != "" {
		srv, err := startHTTP(cfg.HTTP.Listen, reg, pipelines, logger)
		if err != nil {
			return err
		}
		defer func() {
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			_ = srv.Shutdown(sctx)
		}()
	}

	logger.Info("dvsync running", "version", version, "pipelines", len(pipelines), "http", cfg.HTTP.Listen)
	errs := make([]error, len(pipelines))
	var wg sync.WaitGroup
	for i, p := range pipelines {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				errs[i] = fmt.Errorf("pipeline %s: %w", set.Connections()[i], err)
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger.Info("dvsync stopped cleanly")
	return nil
}

// startHTTP serves health and metrics. /healthz answers while the process
// lives; /readyz only while every pipeline is running, so an orchestrator
// routes nothing to (and alerts on) a daemon whose pipeline has stopped.
func startHTTP(addr string, reg *prometheus.Registry, pipelines []*engine.Pipeline, logger *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		for _, p := range pipelines {
			if !p.Stats().Running {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("http server stopped", "err", err)
		}
	}()
	return srv, nil
}
