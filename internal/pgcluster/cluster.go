// Package pgcluster runs a throwaway PostgreSQL server: initdb into a
// temporary directory, start the postmaster on a loopback port with
// logical replication enabled, and remove everything again on Stop.
//
// It serves the integration tests (through internal/testenv) and the
// `dvsync demo` command, so it does not import package testing. The server
// is real — same binaries, same protocol, same replication — but tuned for
// speed over durability (fsync off, no full-page writes), which is only
// acceptable because its data is thrown away.
package pgcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultBinDir is where Debian's postgresql-15 package installs the server.
const DefaultBinDir = "/usr/lib/postgresql/15/bin"

// superuser is the database role Start creates. It is not the OS user the
// server runs as (that is "postgres" when Start runs as root).
const superuser = "dvsync"

// Options configure Start. The zero value is ready to use.
type Options struct {
	// BinDir holds initdb and postgres. Empty means $DVSYNC_PG_BIN, else
	// DefaultBinDir if it has initdb, else `pg_config --bindir`.
	BinDir string
	// Dir is the parent of the cluster's own directory, which Start
	// creates inside it and Stop removes. Empty means os.TempDir().
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one (and picks
	// again if another process takes it before the server binds).
	Port int
	// Settings are extra postgresql.conf settings; they override the
	// defaults Start writes.
	Settings map[string]string
	// Logger receives progress at debug level. Nil discards it.
	Logger *slog.Logger
}

// Cluster is a running server. Its exported fields describe how to reach
// it and must not be modified. Its methods are safe for concurrent use.
type Cluster struct {
	Host     string // always 127.0.0.1
	Port     int
	User     string // a superuser, with replication rights
	Password string
	Dir      string // the cluster's own directory: data, socket, log

	logger   *slog.Logger
	bin      string
	owner    *osUser
	proc     *process
	stopOnce sync.Once
	stopErr  error
}

// Start creates and starts a cluster and returns once it accepts
// connections, or fails. If ctx has no deadline, Start gives up after two
// minutes. A failed start leaves nothing behind, and its error ends with
// the tail of the server log.
//
// When the calling process runs as root, initdb and the server run as the
// "postgres" OS user, which must be able to reach Options.Dir.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	bin, err := binDir(ctx, o.BinDir)
	if err != nil {
		return nil, err
	}
	owner, err := serverOwner()
	if err != nil {
		return nil, err
	}
	parent := o.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "dvsync-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: create directory: %w", err)
	}
	c := &Cluster{Host: "127.0.0.1", User: superuser, Dir: dir, logger: logger, bin: bin, owner: owner}
	if err := c.start(ctx, bin, owner, o); err != nil {
		if c.proc != nil {
			c.proc.stop(context.Background())
		}
		os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, bin string, owner *osUser, o Options) error {
	if err := owner.own(c.Dir); err != nil {
		return err
	}
	secret := make([]byte, 18)
	rand.Read(secret)
	c.Password = hex.EncodeToString(secret)

	began := time.Now()
	if err := c.initdb(ctx, bin, owner); err != nil {
		return err
	}
	if err := c.writeConfig(o.Settings); err != nil {
		return err
	}
	c.logger.Debug("pgcluster: initdb done", "dir", c.Dir, "took", time.Since(began))

	// A free port found by listening and closing can be taken by someone
	// else before the postmaster binds it; pick another and try again.
	const attempts = 5
	for attempt := 1; ; attempt++ {
		port := o.Port
		if port == 0 {
			p, err := freePort()
			if err != nil {
				return err
			}
			port = p
		}
		c.Port = port
		err := c.run(ctx, bin, owner)
		if err == nil {
			c.logger.Debug("pgcluster: started", "port", c.Port, "took", time.Since(began))
			return nil
		}
		if o.Port != 0 || attempt == attempts || !errors.Is(err, errPortInUse) {
			return err
		}
		c.logger.Debug("pgcluster: port taken, trying another", "port", port)
	}
}

func (c *Cluster) initdb(ctx context.Context, bin string, owner *osUser) error {
	pwfile := filepath.Join(c.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.Password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgcluster: write password file: %w", err)
	}
	defer os.Remove(pwfile)
	if err := owner.own(pwfile); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"),
		"--pgdata="+c.dataDir(),
		"--username="+superuser,
		"--pwfile="+pwfile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync",
		"--no-instructions",
	)
	cmd.Dir = c.Dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = owner.sysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, tail(out, 20))
	}
	return nil
}

// writeConfig appends our settings to postgresql.conf (the last value of a
// setting wins) and replaces pg_hba.conf.
func (c *Cluster) writeConfig(extra map[string]string) error {
	settings := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": c.Dir,
		"wal_level":               "logical",
		"max_replication_slots":   "20",
		"max_wal_senders":         "20",
		"max_connections":         "100",
		"shared_buffers":          "32MB",
		"password_encryption":     "scram-sha-256",
		// Durability is pointless for a throwaway cluster. Commits stay
		// synchronous, though: a walsender only sends flushed WAL, and with
		// fsync off a flush costs nothing, so changes reach logical
		// replication at once instead of after wal_writer_delay.
		"fsync":             "off",
		"full_page_writes":  "off",
		"logging_collector": "off",
	}
	for k, v := range extra {
		settings[k] = v
	}
	var conf strings.Builder
	conf.WriteString("\n# written by dvsync pgcluster\n")
	for k, v := range settings {
		fmt.Fprintf(&conf, "%s = '%s'\n", k, strings.ReplaceAll(v, "'", "''"))
	}
	f, err := os.OpenFile(filepath.Join(c.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgcluster: open postgresql.conf: %w", err)
	}
	_, err = f.WriteString(conf.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgcluster: write postgresql.conf: %w", err)
	}
	const hba = `# written by dvsync pgcluster: password (SCRAM) auth everywhere
local all         all                scram-sha-256
local replication all                scram-sha-256
host  all         all  127.0.0.1/32  scram-sha-256
host  replication all  127.0.0.1/32  scram-sha-256
`
	if err := os.WriteFile(filepath.Join(c.dataDir(), "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgcluster: write pg_hba.conf: %w", err)
	}
	return nil
}

// run starts the postmaster and polls until it accepts connections.
func (c *Cluster) run(ctx context.Context, bin string, owner *osUser) error {
	p, err := startProcess(filepath.Join(bin, "postgres"),
		[]string{"-D", c.dataDir(), "-p", strconv.Itoa(c.Port)},
		c.Dir, c.logPath(), owner)
	if err != nil {
		return err
	}
	c.proc = p
	cfg, err := pgconn.ParseConfig(c.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	cfg.ConnectTimeout = time.Second
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-p.exited:
			c.proc = nil
			log := c.logTail()
			if strings.Contains(log, "Address already in use") {
				return fmt.Errorf("pgcluster: port %d: %w\n%s", c.Port, errPortInUse, log)
			}
			exit := p.err
			if exit == nil {
				exit = errors.New("exit status 0")
			}
			return fmt.Errorf("pgcluster: server exited during startup (%w); log:\n%s", exit, log)
		case <-ctx.Done():
			return fmt.Errorf("pgcluster: server not ready: %w (last attempt: %w); log:\n%s", ctx.Err(), err, c.logTail())
		case <-tick.C:
		}
	}
}

var errPortInUse = errors.New("port already in use")

// DSN returns a URL connection string for database db over TCP, with the
// password in it. Keep it out of logs.
func (c *Cluster) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.User, c.Password),
		Host:     net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// String describes the cluster without its password.
func (c *Cluster) String() string {
	return fmt.Sprintf("postgres at %s:%d (%s)", c.Host, c.Port, c.Dir)
}

// Stop shuts the server down the way `pg_ctl stop -m fast` does (SIGINT:
// roll back open transactions, disconnect clients, checkpoint), escalates
// to an immediate shutdown if that has not finished within 30 seconds or
// when ctx ends, then removes Dir. It is idempotent: later calls return
// the first call's result.
func (c *Cluster) Stop(ctx context.Context) error {
	c.stopOnce.Do(func() {
		if c.proc != nil {
			c.proc.stop(ctx)
		}
		if err := os.RemoveAll(c.Dir); err != nil {
			c.stopErr = fmt.Errorf("pgcluster: remove %s: %w", c.Dir, err)
		}
	})
	return c.stopErr
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "data") }
func (c *Cluster) logPath() string { return filepath.Join(c.Dir, "postgres.log") }

// logTail returns the last lines of the server log, for error messages.
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.logPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail(b, 30)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func binDir(ctx context.Context, dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("DVSYNC_PG_BIN")
	}
	if dir == "" {
		if _, err := os.Stat(filepath.Join(DefaultBinDir, "initdb")); err == nil {
			dir = DefaultBinDir
		}
	}
	if dir == "" {
		out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output()
		if err != nil {
			return "", fmt.Errorf("pgcluster: no PostgreSQL server found in %s, $DVSYNC_PG_BIN unset, and pg_config failed: %w", DefaultBinDir, err)
		}
		dir = strings.TrimSpace(string(out))
	}
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return "", fmt.Errorf("pgcluster: %s not found in %s (install postgresql-15 or set $DVSYNC_PG_BIN)", name, dir)
		}
	}
	return dir, nil
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgcluster: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverEnv is our environment without PG* variables, which initdb and
// postgres would otherwise pick up (PGDATA, PGPORT, ...).
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}
