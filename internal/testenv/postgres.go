package testenv

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dvsync/dvsync/internal/pgcluster"
)

// Main runs a package's tests and then stops what they shared — the
// PostgreSQL cluster of StartPostgres — before exiting with the tests'
// status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Main(m *testing.M) {
	inMain.Store(true)
	code := m.Run()
	shutdown.mu.Lock()
	fns := shutdown.fns
	shutdown.fns = nil
	shutdown.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
	os.Exit(code)
}

// inMain is set by Main: resources may then outlive a test, because Main
// stops them when the tests are done.
var inMain atomic.Bool

// shutdown holds what Main runs after the tests, last registered first.
var shutdown struct {
	mu  sync.Mutex
	fns []func()
}

func atShutdown(f func()) {
	shutdown.mu.Lock()
	defer shutdown.mu.Unlock()
	shutdown.fns = append(shutdown.fns, f)
}

// sharedPostgres is the one cluster of a test binary that uses Main.
var sharedPostgres struct {
	once    sync.Once
	cluster *pgcluster.Cluster
	err     error
}

// StartPostgres returns a running PostgreSQL 15 cluster with
// wal_level=logical, reachable over TCP on 127.0.0.1 as a superuser with a
// password (see pgcluster.Start). Give each test its own database with
// NewDatabase rather than sharing one.
//
// In a package whose TestMain calls Main, the first call starts one
// cluster that every test of the binary shares (a cluster costs a couple of
// seconds to create; a database, a few milliseconds) and Main stops it.
// Without Main, each call starts a cluster of its own, stopped when the
// test ends. Either way the server also stops if the test binary dies.
//
// Set DVSYNC_PG_BIN to use server binaries other than PostgreSQL 15's.
func StartPostgres(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	if !inMain.Load() {
		c, err := startPostgres()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stopPostgres(t, c) })
		return c
	}
	sharedPostgres.once.Do(func() {
		c, err := startPostgres()
		if err != nil {
			sharedPostgres.err = err
			return
		}
		sharedPostgres.cluster = c
		atShutdown(func() { stopPostgres(nil, c) })
	})
	if sharedPostgres.err != nil {
		t.Fatal(sharedPostgres.err)
	}
	return sharedPostgres.cluster
}

func startPostgres() (*pgcluster.Cluster, error) {
	// Generous: the test machine may be busy, and initdb is most of it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return pgcluster.Start(ctx, pgcluster.Options{})
}

// stopPostgres stops c and reports a failure to t, or to stderr when
// there is no test left to report to.
func stopPostgres(t testing.TB, c *pgcluster.Cluster) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		if t != nil {
			t.Error(err)
			return
		}
		fmt.Fprintln(os.Stderr, "testenv:", err)
	}
}

// dbSeq makes database names unique within a test binary; the clusters
// are never shared between binaries.
var dbSeq atomic.Int64

// NewDatabase creates an empty database in c for the calling test and
// returns its DSN (which holds the password: do not log it). The database
// is dropped when the test ends, together with its replication slots and
// any sessions still connected, so cleanups that close connections should
// be registered after NewDatabase (they then run before the drop).
func NewDatabase(t testing.TB, c *pgcluster.Cluster) string {
	t.Helper()
	name := databaseName(t.Name(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Error(err)
		}
	})
	return c.DSN(name)
}

// databaseName derives a readable, valid, unique database name from a
// test name: lower case letters, digits and underscores, under the
// 63-byte identifier limit.
func databaseName(test string, seq int64) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(test) {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	fmt.Fprintf(&b, "_%d", seq)
	return b.String()
}
