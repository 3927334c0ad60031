package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/config"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/postgres"
	"github.com/dvsync/dvsync/source/sqlserver"
	"github.com/dvsync/dvsync/state"
)

// backfillFlags are the options of 'dvsync backfill'.
type backfillFlags struct {
	config    string
	mappings  []string
	dryRun    bool
	where     string
	parallel  int
	pageSize  int
	splitRows int64
	restart   bool
	// progress forces the progress bar on (true) or off (false); nil
	// shows it when stderr is a terminal.
	progress *bool
}

func newBackfillCmd() *cobra.Command {
	var f backfillFlags
	var progress string
	cmd := &cobra.Command{
		Use:   "backfill -c FILE [--mapping NAME ...] [--dry-run] [--where SQL]",
		Short: "Load the existing rows of the mapped tables into Dataverse",
		Long: `backfill reads every row of the mapped PostgreSQL and SQL Server tables and
upserts it into Dataverse, then exits 0. Run it once when a table is first
mapped, with 'dvsync run' stopped; start 'dvsync run' afterwards and it
streams every change committed since the backfill began, with nothing
missing.

PostgreSQL: the first backfill of a connection creates its replication slot
and reads the tables in the snapshot the slot exported. SQL Server: before
reading a table, the backfill records the current change tracking version
(or the maximum CDC LSN), and once done it makes those the connection's
streaming position. --where, --parallel and --split-rows apply to
PostgreSQL only.

Progress is saved per table in the state file: a backfill that was
interrupted or killed resumes where it stopped when run again, skipping the
tables it finished. A finished backfill does nothing when run again, unless
--restart is given.

On a terminal it shows a progress bar (rows, rows/s, ETA); otherwise it logs
its progress every few seconds. See docs/backfill.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch progress {
			case "auto":
			case "on", "off":
				on := progress == "on"
				f.progress = &on
			default:
				return fmt.Errorf("--progress: %q is not auto, on or off", progress)
			}
			return runBackfill(cmd.Context(), f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "dvsync.yaml", "daemon config file")
	fl.StringArrayVar(&f.mappings, "mapping", nil, "backfill only this mapping (by name; repeat for more); default: every mapping")
	fl.BoolVar(&f.dryRun, "dry-run", false, "read, count and map every row without writing anything or creating the slot")
	fl.StringVar(&f.where, "where", "", "SQL condition selecting the rows to backfill, applied to every selected table")
	fl.IntVar(&f.parallel, "parallel", postgres.DefaultParallel, "connections reading at once, each a table or a key range of a large one")
	fl.Int64Var(&f.splitRows, "split-rows", postgres.DefaultSplitRows, "split tables with more rows than this into key ranges read in parallel")
	fl.IntVar(&f.pageSize, "page-size", postgres.DefaultPageSize, "rows read per query")
	fl.BoolVar(&f.restart, "restart", false, "forget saved progress and read every table again")
	fl.StringVar(&progress, "progress", "auto", "progress bar: auto (on a terminal), on or off (log lines)")
	return cmd
}

// runBackfill loads the config and the selected mappings, then backfills
// each connection they use, one after another.
func runBackfill(ctx context.Context, f backfillFlags, out io.Writer) error {
	cfg, set, err := loadBackfill(f.config, f.mappings)
	if err != nil {
		return err
	}
	tty := f.progress != nil && *f.progress
	if f.progress == nil {
		file, ok := out.(*os.File)
		tty = ok && term.IsTerminal(int(file.Fd()))
	}
	level := cfg.Log.Level
	if tty && !strings.EqualFold(level, "debug") {
		// Info logs would tear the progress bar; it tells the same story.
		level = "warn"
	}
	logger, err := newLogger(out, level, cfg.Log.Format)
	if err != nil {
		return fmt.Errorf("%s: log: %w", cfg.Path, err)
	}

	st, cleanup, err := openBackfillState(ctx, cfg, f.dryRun)
	if err != nil {
		return err
	}
	defer cleanup()

	var dst func() sink.Sink
	if f.dryRun {
		dst = func() sink.Sink { return discardSink{} }
	} else {
		client, err := newDataverseClient(cfg)
		if err != nil {
			return err
		}
		dst = func() sink.Sink { return newDataverseSink(client, cfg, set) }
	}

	for _, name := range set.Connections() {
		log := logger.With("pipeline", backfillPipeline(name))
		bf := &backfill{
			name: name, cfg: cfg, mapper: set.Mapper(name), dst: dst(), st: st,
			logger: logger, out: out, tty: tty, dryRun: f.dryRun, restart: f.restart,
		}
		var err error
		switch conn := cfg.Connections[name]; conn.Type {
		case "sqlserver":
			err = bf.sqlserver(set, conn, f, log)
		default:
			err = bf.postgres(set, conn, f, log)
		}
		if err != nil {
			return fmt.Errorf("connection %s: %w", name, err)
		}
		if err := bf.run(ctx); err != nil {
			return fmt.Errorf("backfill of connection %s: %w", name, err)
		}
	}
	return nil
}

// postgres sets b up to read a PostgreSQL connection's tables in the
// snapshot of its replication slot, which streaming then continues from.
func (b *backfill) postgres(set *mapping.Set, conn config.Connection, f backfillFlags, log *slog.Logger) error {
	tables := set.Tables(b.name)
	opts := postgres.SnapshotOptions{Parallel: f.parallel, PageSize: f.pageSize, SplitRows: f.splitRows, DryRun: f.dryRun}
	if f.where != "" {
		opts.Where = map[string]string{}
		for _, t := range tables {
			opts.Where[t] = f.where
		}
	}
	snap, err := postgres.NewSnapshot(postgres.Config{
		DSN:         conn.DSN.Reveal(),
		Slot:        conn.Slot,
		Publication: conn.Publication,
		Tables:      tables,
		Keys:        set.Keys(b.name),
	}, opts, log)
	if err != nil {
		return err
	}
	b.snap, b.done, b.complete = snap, snap.Done(), snap.Complete
	b.progress = pgProgress(snap.Progress)
	return nil
}

// sqlserver sets b up to read a SQL Server connection's tables keyset-
// paged, and to hand the change tracking versions (or LSNs) recorded
// before each table's read over to the connection's streaming position,
// so that 'dvsync run' goes on from them.
func (b *backfill) sqlserver(set *mapping.Set, conn config.Connection, f backfillFlags, log *slog.Logger) error {
	if f.where != "" {
		return errors.New("--where: SQL Server backfills read whole tables")
	}
	snap, err := sqlserver.NewSnapshot(sqlserverConfig(set, b.name, conn), sqlserver.SnapshotOptions{PageSize: f.pageSize}, log)
	if err != nil {
		return err
	}
	b.snap, b.done, b.complete = snap, snap.Done(), snap.Complete
	b.progress = sqlserverProgress(snap.Progress)
	b.handover = func(ctx context.Context) error {
		// The streaming pipeline is named after the connection.
		stream, err := b.st.Position(ctx, b.name)
		if err != nil {
			return err
		}
		pos, err := snap.StreamPosition(stream)
		if err != nil {
			return err
		}
		return b.st.SavePosition(ctx, b.name, pos)
	}
	return nil
}

// backfillPipeline names the pipeline, and so the saved position, of a
// connection's backfill; it is apart from the connection's streaming one.
func backfillPipeline(connection string) string { return "backfill/" + connection }

// loadBackfill reads the config and the mappings named (all when none
// are), and checks that every connection they use is a database.
func loadBackfill(path string, names []string) (*config.Config, *mapping.Set, error) {
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
	if len(names) > 0 {
		var known []string
		for _, m := range ms {
			known = append(known, m.Name)
		}
		var errs []error
		for _, n := range names {
			if !slices.Contains(known, n) {
				errs = append(errs, fmt.Errorf("--mapping %s: no such mapping (mappings: %s)", n, strings.Join(known, ", ")))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, nil, err
		}
		ms = slices.DeleteFunc(ms, func(m *mapping.Mapping) bool { return !slices.Contains(names, m.Name) })
	}
	set, err := mapping.Compile(ms)
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, name := range set.Connections() {
		conn, ok := cfg.Connections[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: a mapping uses connection %q, which connections: does not define", cfg.Path, name))
		case conn.Type != "postgres" && conn.Type != "sqlserver":
			errs = append(errs, fmt.Errorf("%s: connections.%s.type: backfill reads only postgres and sqlserver connections, not %q", cfg.Path, name, conn.Type))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return cfg, set, nil
}

// openBackfillState opens the config's state store. A dry run saves
// nothing there: it gets a throwaway store, removed by cleanup.
func openBackfillState(ctx context.Context, cfg *config.Config, dryRun bool) (state.Store, func(), error) {
	if !dryRun {
		st, err := openState(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	dir, err := os.MkdirTemp("", "dvsync-dry-run-")
	if err != nil {
		return nil, nil, err
	}
	st, err := state.OpenBolt(filepath.Join(dir, "state.db"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return st, func() { st.Close(); os.RemoveAll(dir) }, nil
}

// discardSink accepts every batch and keeps nothing: a dry run maps rows
// but writes none.
type discardSink struct{}

func (discardSink) Write(context.Context, []change.Record) error { return nil }
func (discardSink) Close(context.Context) error                  { return nil }

// backfill runs one connection's snapshot through a pipeline of its own.
type backfill struct {
	name string
	cfg  *config.Config
	// snap reads the tables; done is closed once every row is acked, and
	// complete is then the position after the last one.
	snap     source.Source
	done     <-chan struct{}
	complete func() change.Position
	progress func() []tableProgress
	// handover, when set, makes a finished backfill's position the
	// starting point of the connection's streaming pipeline.
	handover func(ctx context.Context) error
	mapper   engine.Mapper
	dst      sink.Sink
	st       state.Store
	logger   *slog.Logger
	out      io.Writer
	tty      bool
	dryRun   bool
	restart  bool
}

// backfillInFlight is the backfill pipeline's engine.Config.MaxInFlight.
const backfillInFlight = 20_000

// errInterrupted is returned when the backfill was stopped before it
// finished; its progress is saved.
var errInterrupted = errors.New("interrupted; its progress is saved: run the same command again to resume")

func (b *backfill) run(ctx context.Context) error {
	pipeline := backfillPipeline(b.name)
	if b.restart && !b.dryRun {
		if err := b.st.SavePosition(ctx, pipeline, change.Position{}); err != nil {
			return err
		}
	}
	e := b.cfg.Engine
	p, err := engine.New(engine.Config{
		Name: pipeline,
		// Fewer records in flight than streaming allows: a backfill
		// always has a full queue, and this bounds its memory without
		// starving the writers (pages are 2,000 rows).
		MaxInFlight:       backfillInFlight,
		Workers:           e.Workers,
		BatchSize:         e.BatchSize,
		BatchWait:         e.BatchWait,
		MaxRetries:        e.MaxRetries,
		StopAfterFailures: e.StopAfterFailures,
		ShutdownTimeout:   e.ShutdownTimeout,
		Logger:            b.logger,
	}, b.snap, b.mapper, b.dst, b.st)
	if err != nil {
		return err
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	finished := make(chan struct{})
	go func() {
		select {
		case <-b.done:
			close(finished)
			cancel()
		case <-runCtx.Done():
		}
	}()
	prog := newProgressReporter(b.out, b.tty, b.logger.With("pipeline", pipeline), b.progress)
	began := time.Now()
	runErr := make(chan error, 1)
	go func() { runErr <- p.Run(runCtx) }()
	err = prog.follow(runErr)

	stats := p.Stats()
	select {
	case <-finished:
	default:
		if err == nil {
			err = errInterrupted
		}
		return err
	}
	if err != nil {
		return err
	}
	if !b.dryRun {
		// Streaming first: a backfill whose position says it is done has
		// handed over, and one stopped in between reads its empty tables
		// again and hands over once more.
		if b.handover != nil {
			if err := b.handover(context.WithoutCancel(ctx)); err != nil {
				return fmt.Errorf("hand over to streaming: %w", err)
			}
		}
		// The last position the pipeline saved may not say that tables
		// which ended without a row are done; this one does.
		if err := b.st.SavePosition(context.WithoutCancel(ctx), pipeline, b.complete()); err != nil {
			return err
		}
	}
	var rows int64
	for _, t := range b.progress() {
		rows += t.Read
	}
	took := time.Since(began)
	verb := "backfilled"
	if b.dryRun {
		verb = "dry run: read and mapped"
	}
	fmt.Fprintf(b.out, "%s %d rows of connection %s in %s (%d rows/s); %d skipped by the mappings, %d failed\n",
		verb, rows, b.name, took.Round(time.Millisecond), int64(float64(rows)/max(took.Seconds(), 1e-3)), stats.Skipped, stats.DeadLettered)
	if stats.DeadLettered > 0 {
		if b.dryRun {
			return fmt.Errorf("%d rows could not be mapped (the log names each with its reason)", stats.DeadLettered)
		}
		return fmt.Errorf("%d rows could not be mapped or written; they are kept as dead letters of pipeline %s", stats.DeadLettered, pipeline)
	}
	return nil
}
