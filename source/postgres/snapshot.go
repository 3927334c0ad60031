package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/source"
)

// SnapshotOptions tunes a Snapshot. The zero value of every field selects
// its default.
type SnapshotOptions struct {
	// Where filters rows per table (keyed like Config.Tables): a SQL
	// boolean expression over the table's columns, such as
	// "created_at > '2024-01-01'". It is trusted SQL from the operator.
	Where map[string]string
	// PageSize is how many rows one query reads (default 2000).
	PageSize int
	// Parallel is how many connections read at once (default 2): each
	// reads a table, or a key range of a large one.
	Parallel int
	// SplitRows is the size from which a table not started yet is split
	// into key ranges read in parallel: into Parallel ranges, or fewer so
	// that each has at least SplitRows rows (default 250,000).
	SplitRows int64
	// DryRun reads without touching the server's replication state: no
	// publication change, no slot, and a snapshot of its own. Use it to
	// count and validate rows.
	DryRun bool
}

// Defaults of SnapshotOptions.
const (
	DefaultPageSize  = 2000
	DefaultParallel  = 2
	DefaultSplitRows = 250_000
)

// TableProgress is how far a Snapshot has read one table.
type TableProgress struct {
	// Table is the schema-qualified table name, as records carry it.
	Table string
	// Read counts the rows read, in this run and the runs it resumes.
	Read int64
	// Total is Read plus the rows left when this run started to read
	// the table, counted in the snapshot; -1 until then.
	Total int64
	// Earlier counts the rows read by the runs this one resumes.
	Earlier int64
	// Began is when this run started to read the table; zero before, and
	// for a table an earlier run finished.
	Began time.Time
	// Done is set once every row has been read.
	Done bool
}

// Snapshot is a source.Source that reads every row of the configured
// tables once, as change.OpRead records, and then has nothing more to
// give: Done is closed when the last record has been acked.
//
// Consistency with streaming: when the replication slot does not exist
// yet, Open creates it and reads the tables in the snapshot the slot
// exported, so that a Source later streaming from the slot starts exactly
// where the snapshot ends. When the slot exists (a resumed backfill, or a
// table mapped later), Open reads a fresh snapshot: the slot still holds
// every change after its confirmed position, which is before that
// snapshot, and replaying them over newer rows converges because every
// write is an upsert by key. That holds as long as nothing streams from
// the slot while the backfill runs (Open waits until no session holds it).
//
// Rows come in pages, in key order within a table or, for a table large
// enough to be split, within each of its key ranges; tables and ranges
// are read in parallel, so pages of several interleave. Positions record,
// per table (per range of a split table), the key of the last row read and
// whether it is done, so a backfill reopened at an acked position skips
// what it finished and goes on after the last durable key.
//
// The methods follow the source.Source contract. Progress and Done may be
// called from any goroutine at any time.
type Snapshot struct {
	cfg    Config
	opts   SnapshotOptions
	logger *slog.Logger

	// Set by Open, cleared by Close.
	repl    *pgconn.PgConn   // the connection that exported the snapshot, kept idle
	readers []*pgconn.PgConn // one open read-only transaction each
	pages   chan page
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu        sync.Mutex
	tables    []string // in configured order, for Progress
	pos       *snapshotPosition
	runs      map[string]tableRun // tables this run has started to read
	cur       change.Position     // pos encoded; nil when it must be encoded again
	last      change.Position     // position of the last record returned
	lastAcked bool                // whether last has been acked
	finished  bool                // every table read and returned
	readErr   error               // first error of a reader
	done      chan struct{}
	closeDone sync.Once
}

var _ source.Source = (*Snapshot)(nil)

// tableRun is when this run began to read a table, and what it found.
type tableRun struct {
	began   time.Time
	earlier int64 // rows read by earlier runs
	total   int64 // earlier plus the rows left
}

// page is a run of rows of one table, in key order.
type page struct {
	table string
	rng   int // the range of the table it belongs to; -1 when not split
	recs  []change.Record
	after [][]byte // the paging key of the last row; nil if recs is empty
	done  bool     // the table has no rows after this page
}

// NewSnapshot returns an unopened backfill of cfg.Tables. It validates cfg
// and opts and does not connect. A nil logger discards logs.
func NewSnapshot(cfg Config, opts SnapshotOptions, logger *slog.Logger) (*Snapshot, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if opts.PageSize < 0 {
		errs = append(errs, errors.New("page size: must not be negative"))
	}
	if opts.Parallel < 0 {
		errs = append(errs, errors.New("parallel: must not be negative"))
	}
	for name := range opts.Where {
		if !slices.Contains(cfg.Tables, name) {
			errs = append(errs, fmt.Errorf("where: %s is not one of the tables", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("postgres: invalid backfill config: %w", err)
	}
	if opts.PageSize == 0 {
		opts.PageSize = DefaultPageSize
	}
	if opts.Parallel == 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.SplitRows <= 0 {
		opts.SplitRows = DefaultSplitRows
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Snapshot{cfg: cfg.withDefaults(), opts: opts, logger: logger, done: make(chan struct{})}, nil
}

// Open checks the tables, adds them to the publication, takes the
// snapshot (creating the slot if it is missing) and starts reading the
// tables not done at from. A nil from starts every table from its first
// row.
//
// Open fails, naming the table, if a table does not exist or has no
// primary key (or replica identity index) to page by, or if from was
// made with another Where filter for a table not yet done. It waits up to
// ten seconds for a slot that another session holds, then fails.
func (s *Snapshot) Open(ctx context.Context, from change.Position) error {
	if s.pages != nil {
		return errors.New("postgres: backfill already open")
	}
	pos, err := decodeSnapshotPosition(from)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	defer conn.Close(context.Background())

	var walLevel string
	if err := conn.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&walLevel); err != nil {
		return fmt.Errorf("postgres: read wal_level: %w", err)
	}
	if walLevel != "logical" && !s.opts.DryRun {
		return fmt.Errorf("postgres: the server has wal_level=%s; logical replication needs wal_level=logical (set it in postgresql.conf and restart the server)", walLevel)
	}
	var (
		errs    []error
		tables  []table
		todo    []*snapshotTable
		ordered []string
	)
	for _, name := range s.cfg.Tables {
		t, err := describeTable(ctx, conn, name, s.cfg.Keys[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		where := s.opts.Where[name]
		st, err := describeSnapshotTable(ctx, conn, t, where, s.cfg.Keys[name] != nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tables = append(tables, t)
		ordered = append(ordered, t.name)
		tp := pos.Tables[t.name]
		switch {
		case tp == nil:
			pos.Tables[t.name] = &tableProgress{Where: where}
			todo = append(todo, st)
		case tp.Done:
		case tp.Where != where:
			errs = append(errs, fmt.Errorf("postgres: the backfill of %s was started with another filter (where %q); finish it with that filter, or start it over", t.name, tp.Where))
		default:
			todo = append(todo, st)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	var exported string
	if !s.opts.DryRun {
		// The publication must list the tables before the snapshot is
		// taken: a change is streamed only if the publication covered its
		// table when it was committed, and the snapshot holds the rest.
		if err := ensurePublication(ctx, conn, s.cfg.Publication, tables); err != nil {
			return err
		}
		if exported, err = s.claimSlot(ctx, conn); err != nil {
			return err
		}
	}
	if err := s.openReaders(ctx, exported, max(s.opts.Parallel, 1)); err != nil {
		return errors.Join(err, s.closeConns())
	}
	jobs, runs, err := s.plan(ctx, s.readers[0], pos, todo)
	if err != nil {
		return errors.Join(err, s.closeConns())
	}

	s.mu.Lock()
	s.tables, s.pos, s.runs = ordered, pos, runs
	s.cur, s.last, s.lastAcked, s.finished, s.readErr = nil, nil, false, false, nil
	s.mu.Unlock()

	s.logger.Info("postgres: backfill started", "tables", len(ordered), "to_read", len(todo),
		"slot", s.cfg.Slot, "exported_snapshot", exported != "", "dry_run", s.opts.DryRun)

	queue := make(chan job, len(jobs))
	for _, j := range jobs {
		queue <- j
	}
	close(queue)
	// Readers beyond the jobs would have nothing to do.
	for len(s.readers) > max(len(jobs), 1) {
		last := s.readers[len(s.readers)-1]
		s.readers = s.readers[:len(s.readers)-1]
		if err := last.Close(ctx); err != nil {
			return errors.Join(fmt.Errorf("postgres: close backfill connection: %w", err), s.closeConns())
		}
	}
	s.pages = make(chan page, len(s.readers))
	readCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, rc := range s.readers {
		s.wg.Go(func() {
			if err := s.readJobs(readCtx, rc, queue); err != nil {
				s.mu.Lock()
				if s.readErr == nil {
					s.readErr = err
				}
				s.mu.Unlock()
				cancel()
			}
		})
	}
	pages := s.pages
	go func() {
		s.wg.Wait()
		close(pages)
	}()
	return nil
}

// snapshotName is what PostgreSQL names exported snapshots; checked
// because it is spliced into SET TRANSACTION SNAPSHOT.
var snapshotName = regexp.MustCompile(`^[0-9A-Fa-f-]+$`)

// claimSlot creates the slot with an exported snapshot, keeping the
// replication connection open so the snapshot stays importable, and
// returns the snapshot's name. An existing slot is checked and waited for
// instead, and the name is empty: the readers take a fresh snapshot.
func (s *Snapshot) claimSlot(ctx context.Context, conn *pgx.Conn) (string, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1)", s.cfg.Slot).Scan(&exists); err != nil {
		return "", fmt.Errorf("postgres: look up replication slot %s: %w", s.cfg.Slot, err)
	}
	if !exists {
		repl, err := connectReplication(ctx, s.cfg.DSN)
		if err != nil {
			return "", err
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.Slot, "pgoutput", pglogrepl.CreateReplicationSlotOptions{
			Mode:           pglogrepl.LogicalReplication,
			SnapshotAction: "EXPORT_SNAPSHOT",
		})
		switch {
		case err == nil && snapshotName.MatchString(res.SnapshotName):
			s.repl = repl
			s.logger.Info("postgres: created replication slot", "slot", s.cfg.Slot, "consistent_point", res.ConsistentPoint)
			return res.SnapshotName, nil
		case err == nil:
			repl.Close(context.Background())
			return "", fmt.Errorf("postgres: create replication slot %s: unexpected snapshot name %q", s.cfg.Slot, res.SnapshotName)
		case !isCode(err, "42710"):
			repl.Close(context.Background())
			return "", fmt.Errorf("postgres: create replication slot %s: %w", s.cfg.Slot, err)
		}
		// 42710: created meanwhile by someone else; use it as existing.
		repl.Close(context.Background())
	}
	if _, err := ensureSlot(ctx, conn, s.cfg.Slot); err != nil {
		return "", err
	}
	return "", nil
}

// openReaders opens n connections, each in a repeatable-read transaction
// on one snapshot: the exported one if named, else one the first reader
// takes and exports to the others.
func (s *Snapshot) openReaders(ctx context.Context, exported string, n int) error {
	cfg, err := pgconn.ParseConfig(s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	// The same session settings as the stream's, so values have the same
	// text form and decode alike.
	for k, v := range sessionParams {
		cfg.RuntimeParams[k] = v
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "dvsync-backfill"
	}
	for i := range n {
		rc, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			return fmt.Errorf("postgres: open backfill connection: %w", err)
		}
		s.readers = append(s.readers, rc)
		sql := "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
		if exported != "" {
			sql += "; SET TRANSACTION SNAPSHOT '" + exported + "'"
		}
		if _, err := rc.Exec(ctx, sql).ReadAll(); err != nil {
			return fmt.Errorf("postgres: begin backfill snapshot: %w", err)
		}
		if exported == "" && i == 0 && n > 1 {
			res, err := rc.Exec(ctx, "SELECT pg_export_snapshot()").ReadAll()
			if err != nil {
				return fmt.Errorf("postgres: export backfill snapshot: %w", err)
			}
			exported = string(res[0].Rows[0][0])
			if !snapshotName.MatchString(exported) {
				return fmt.Errorf("postgres: unexpected snapshot name %q", exported)
			}
		}
	}
	return nil
}

// Read returns the next page of rows, waiting for one. Once every table
// has been read it blocks until ctx is done. A reader's failure is
// returned after the pages read before it.
func (s *Snapshot) Read(ctx context.Context) ([]change.Record, error) {
	if s.pages == nil {
		return nil, errors.New("postgres: backfill not open")
	}
	for {
		select {
		case pg, ok := <-s.pages:
			if !ok {
				s.mu.Lock()
				err := s.readErr
				s.mu.Unlock()
				if err != nil {
					return nil, err
				}
				s.finish()
				<-ctx.Done()
				return nil, ctx.Err()
			}
			if recs := s.apply(pg); len(recs) > 0 {
				return recs, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// apply gives a page's records their positions and moves the progress
// past it. Every record but the last carries the position before the
// page, the last the position after it: acking any of them is then safe,
// and a resumed backfill re-reads at most the page it was in.
func (s *Snapshot) apply(pg page) []change.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	tp := s.pos.Tables[pg.table]
	n := len(pg.recs)
	if n > 0 {
		if s.cur == nil {
			s.cur = s.pos.encode()
		}
		for i := range pg.recs[:n-1] {
			pg.recs[i].Position = s.cur
		}
		tp.Rows += int64(n)
	}
	if pg.rng < 0 {
		if n > 0 {
			tp.After = pg.after
		}
		tp.Done = pg.done
	} else {
		r := tp.Ranges[pg.rng]
		if n > 0 {
			r.After = pg.after
			r.Rows += int64(n)
		}
		r.Done = pg.done
		tp.Done = true
		for _, r := range tp.Ranges {
			tp.Done = tp.Done && r.Done
		}
	}
	s.cur = nil
	if n > 0 {
		s.cur = s.pos.encode()
		pg.recs[n-1].Position = s.cur
		s.last, s.lastAcked = s.cur, false
	}
	return pg.recs
}

// finish notes that every record has been returned.
func (s *Snapshot) finish() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.finished {
		s.finished = true
		s.logger.Info("postgres: backfill read every table", "tables", len(s.tables))
	}
	if s.last == nil || s.lastAcked {
		s.closeDone.Do(func() { close(s.done) })
	}
}

// Ack notes that the records up to pos are durable. When that covers the
// last record, after every table has been read, Done is closed. The
// backfill releases nothing upstream: the slot is the stream's to
// confirm.
func (s *Snapshot) Ack(_ context.Context, pos change.Position) error {
	if len(pos) == 0 || pos[0] != tagSnapshot {
		return fmt.Errorf("postgres: not a backfill position (tag %d)", firstByte(pos))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil && bytes.Equal(pos, s.last) {
		s.lastAcked = true
		if s.finished {
			s.closeDone.Do(func() { close(s.done) })
		}
	}
	return nil
}

// Done is closed once every table has been read and every record acked.
func (s *Snapshot) Done() <-chan struct{} { return s.done }

// Complete returns the position that marks every table done. Saved as
// the backfill's position after Done, it makes a later Open read
// nothing. Before Done it is the position after the records read so far.
func (s *Snapshot) Complete() change.Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pos == nil {
		return nil
	}
	return s.pos.encode()
}

// Progress returns how far each table has been read, in configured
// order. It is empty before Open.
func (s *Snapshot) Progress() []TableProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TableProgress, 0, len(s.tables))
	for _, name := range s.tables {
		tp := s.pos.Tables[name]
		p := TableProgress{Table: name, Read: tp.Rows, Total: -1, Done: tp.Done}
		if run, ok := s.runs[name]; ok {
			p.Total, p.Earlier, p.Began = run.total, run.earlier, run.began
		} else if tp.Done {
			p.Total, p.Earlier = tp.Rows, tp.Rows
		}
		out = append(out, p)
	}
	return out
}

// Close stops the readers and closes the connections, ending the
// snapshot. Rows read and not acked are read again by the next Open.
func (s *Snapshot) Close(_ context.Context) error {
	if s.pages == nil {
		return nil
	}
	s.cancel()
	// Readers blocked sending a page see the cancellation; drain what is
	// buffered so none waits on a full channel.
	for range s.pages {
	}
	err := s.closeConns()
	s.pages, s.cancel = nil, nil
	return err
}

func (s *Snapshot) closeConns() error {
	var errs []error
	for _, rc := range s.readers {
		if err := rc.Close(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	if s.repl != nil {
		if err := s.repl.Close(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	s.readers, s.repl = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres: close backfill connections: %w", err)
	}
	return nil
}
