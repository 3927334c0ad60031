package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/state"
)

func newRunCmd() *cobra.Command {
	var path, logLevel string
	cmd := &cobra.Command{
		Use:   "run -c FILE",
		Short: "Run the sync daemon until SIGTERM or SIGINT",
		Long: `run starts one pipeline per connection the mappings read, streaming its
changes into Dataverse, and one per connection they write Dataverse's
changes back to (mappings from-dataverse or both), and serves /healthz, /readyz and /metrics on the
config's http.listen address.

On SIGTERM or SIGINT it stops reading, finishes the writes in flight, saves
the last acknowledged position and exits 0. A restarted daemon resumes from
that position; nothing committed at the source is lost.

On SIGHUP it reads the mapping files again and, if they are valid, applies
them to the changes read from then on, without a restart; if they are not,
it logs why and keeps the running mappings. See docs/operations.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, set, err := loadAll(path)
			if err != nil {
				return err
			}
			level := cfg.Log.Level
			if logLevel != "" {
				if _, err := newLogger(io.Discard, logLevel, ""); err != nil {
					return fmt.Errorf("--log-level: %w", err)
				}
				level = logLevel
			}
			logger, err := newLogger(os.Stderr, level, cfg.Log.Format)
			if err != nil {
				return fmt.Errorf("%s: log: %w", cfg.Path, err)
			}
			return runDaemon(cmd.Context(), cfg, set, logger)
		},
	}
	cmd.Flags().StringVarP(&path, "config", "c", "dvsync.yaml", "daemon config file")
	cmd.Flags().StringVar(&logLevel, "log-level", "", "log level, overriding the config's log.level: debug, info, warn or error")
	return cmd
}

// runDaemon runs every pipeline until ctx is cancelled or one of them
// fails; a failure stops the others too, so the process exits non-zero and
// its supervisor restarts it.
//
// SIGHUP reloads the mapping files (see reloader).
func runDaemon(ctx context.Context, cfg *config.Config, set *mapping.Set, logger *slog.Logger) error {
	// Before anything else: SIGHUP's default action would end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	st, err := openState(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()

	client, err := newDataverseClient(cfg)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	a := &adapters{cfg: cfg, set: set, client: client, store: st, log: logger}
	a.live.Store(set)
	bidi, err := newBidirectional(set, a.live.Load, st, logger, reg)
	if err != nil {
		return err
	}
	var (
		names     []string
		pipelines []*engine.Pipeline
		byName    = map[string]*engine.Pipeline{}
	)
	add := func(name string, src source.Source, dst sink.Sink, st state.Store) error {
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
			Resolver:          bidi.resolver(name),
		}, src, a.mapper(set, name), dst, st)
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", name, err)
		}
		if err := registerAdapterMetrics(reg, name, src, dst); err != nil {
			return fmt.Errorf("pipeline %s: metrics: %w", name, err)
		}
		names = append(names, name)
		pipelines = append(pipelines, p)
		byName[name] = p
		return nil
	}
	for _, name := range set.Connections() {
		conn := cfg.Connections[name]
		src, err := sourceFactories[conn.Type](ctx, a, name, conn, logger.With("pipeline", name))
		if err != nil {
			return fmt.Errorf("connection %s: %w", name, err)
		}
		pst, err := a.pipelineStore(ctx, name, conn)
		if err != nil {
			return fmt.Errorf("connection %s: %w", name, err)
		}
		// Each pipeline owns its sink (Run closes it); they share the client
		// and so its connection pool.
		if err := add(name, src, newDataverseSink(client, cfg, set), pst); err != nil {
			return err
		}
	}
	for _, pub := range cfg.Publish {
		name := publishPrefix + pub.From
		conn := cfg.Connections[pub.From]
		src, err := sourceFactories[conn.Type](ctx, a, pub.From, conn, logger.With("pipeline", name))
		if err != nil {
			return fmt.Errorf("connection %s: %w", pub.From, err)
		}
		dst, err := publishSink(ctx, a, pub)
		if err != nil {
			return fmt.Errorf("publish %s: %w", pub.From, err)
		}
		if err := add(name, src, dst, st); err != nil {
			return err
		}
	}
	for _, conn := range set.WriteBackConnections() {
		name := reversePrefix + conn
		src, err := a.dataverseSource(ctx, name, conn, logger.With("pipeline", name))
		if err != nil {
			return fmt.Errorf("pipeline %s: %w", name, err)
		}
		dst, err := sinkFactories[cfg.Connections[conn].Type](ctx, a, conn, cfg.Connections[conn])
		if err != nil {
			return fmt.Errorf("connection %s: %w", conn, err)
		}
		if err := add(name, src, a.reverseSink(name, dst), st); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-ctx.Done()
		_ = notifyStopping() // systemd: stopping, whatever the reason
	}()
	reloaderDone := make(chan struct{})
	go func() {
		defer close(reloaderDone)
		rl := newReloader(cfg, set, byName, a.mapper, logger, reg)
		rl.applied = a.live.Store
		rl.run(ctx, hup)
	}()
	defer func() {
		cancel()
		<-reloaderDone
	}()

	if cfg.HTTP.Listen != "" {
		mux := http.NewServeMux()
		if token := os.Getenv(adminTokenEnv); token != "" {
			adminRoutes(mux, token, byName, set)
		}
		srv, err := startHTTP(mux, cfg.HTTP.Listen, reg, pipelines, logger)
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
	go func() {
		// systemd (Type=notify) learns the daemon is up when /readyz would
		// say so.
		if err := notifyWhenReady(ctx, func() error { return pipelinesReady(pipelines) }, 100*time.Millisecond); err != nil && ctx.Err() == nil {
			logger.Warn("could not tell systemd dvsync is ready", "err", err)
		}
	}()
	errs := make([]error, len(pipelines))
	var wg sync.WaitGroup
	for i, p := range pipelines {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				errs[i] = fmt.Errorf("pipeline %s: %w", names[i], err)
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

// newDataverseClient builds the Web API client from the config's
// dataverse section. Every command that talks to Dataverse goes through
// it, so they all authenticate alike.
func newDataverseClient(cfg *config.Config) (*odataclient.Client, error) {
	tokens, err := newTokenSource(&cfg.Dataverse)
	if err != nil {
		return nil, fmt.Errorf("dataverse.auth: %w", err)
	}
	client, err := odataclient.New(odataclient.Options{
		BaseURL:    cfg.Dataverse.URL,
		APIVersion: cfg.Dataverse.APIVersion,
		Tokens:     tokens,
		UserAgent:  "dvsync/" + version,
	})
	if err != nil {
		return nil, fmt.Errorf("dataverse: %w", err)
	}
	return client, nil
}

// newTokenSource returns the static token, or a client credentials
// source that fetches and renews tokens, as the config asks.
func newTokenSource(d *config.Dataverse) (odataclient.TokenSource, error) {
	a := &d.Auth
	if a.ClientID == "" {
		return odataclient.StaticToken(a.Token.Reveal()), nil
	}
	cc := odataclient.ClientCredentials{
		TokenURL: a.TokenURL, Authority: a.Authority, TenantID: a.TenantID,
		ClientID: a.ClientID, ClientSecret: a.ClientSecret.Reveal(), Scope: a.Scope,
	}
	if cc.Scope == "" {
		cc.Scope = strings.TrimSuffix(d.URL, "/") + "/.default"
	}
	if a.CertificateFile != "" {
		pem, err := os.ReadFile(a.CertificateFile)
		if err != nil {
			return nil, err
		}
		if cc.Certificate, err = odataclient.ParseCertificatePEM(pem); err != nil {
			return nil, fmt.Errorf("%s: %w", a.CertificateFile, err)
		}
	}
	return odataclient.NewClientCredentials(cc)
}

// startHTTP serves health and metrics. /healthz answers while the process
// lives; /readyz only while every pipeline is running with its source
// connected, so an orchestrator alerts on a daemon whose pipeline has
// stopped or lost its source, and says why in the body.
//
// mux may hold other routes already (the admin endpoints).
func startHTTP(mux *http.ServeMux, addr string, reg *prometheus.Registry, pipelines []*engine.Pipeline, logger *slog.Logger) (*http.Server, error) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := pipelinesReady(pipelines); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
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

// pipelinesReady is nil when every pipeline runs with its source
// connected, else says why not, for each that does not.
func pipelinesReady(pipelines []*engine.Pipeline) error {
	var reasons []string
	for _, p := range pipelines {
		if err := p.Ready(); err != nil {
			reasons = append(reasons, err.Error())
		}
	}
	if len(reasons) > 0 {
		return errors.New(strings.Join(reasons, "; "))
	}
	return nil
}
