//go:build sqlserver_live

package sqlserver

// Tests against a real SQL Server, built only with -tags sqlserver_live
// and run against the database DVSYNC_TEST_SQLSERVER_DSN names (see
// docs/sqlserver.md). They create and drop their own tables, and enable
// change tracking, snapshot isolation and CDC on the database.

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/sourcetest"
)

func liveDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	dsn := os.Getenv("DVSYNC_TEST_SQLSERVER_DSN")
	if dsn == "" {
		t.Fatal("DVSYNC_TEST_SQLSERVER_DSN is not set; the sqlserver_live tests need a SQL Server (see docs/sqlserver.md)")
	}
	db, err := sql.Open("sqlserver", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, dsn
}

func liveExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// liveTable creates dbo.<name> with every common type, with change
// tracking on, and (cdc) a capture instance dbo_<name>.
func liveTable(t *testing.T, db *sql.DB, name string, cdc bool) {
	t.Helper()
	liveExec(t, db,
		`IF NOT EXISTS (SELECT 1 FROM sys.change_tracking_databases WHERE database_id = DB_ID())
			ALTER DATABASE CURRENT SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 2 DAYS, AUTO_CLEANUP = ON)`,
		`ALTER DATABASE CURRENT SET ALLOW_SNAPSHOT_ISOLATION ON`,
		fmt.Sprintf(`DROP TABLE IF EXISTS dbo.%s`, name),
		fmt.Sprintf(`CREATE TABLE dbo.%s (
			tenant int NOT NULL, code nvarchar(20) NOT NULL,
			amount decimal(19,4), price money, placed datetime2(7), seen datetimeoffset(7),
			ref uniqueidentifier, note nvarchar(max), blob varbinary(max), paid bit, due date, ratio float, qty bigint,
			CONSTRAINT pk_%s PRIMARY KEY (tenant, code))`, name, name),
		fmt.Sprintf(`ALTER TABLE dbo.%s ENABLE CHANGE_TRACKING`, name))
	if cdc {
		liveExec(t, db,
			`IF (SELECT is_cdc_enabled FROM sys.databases WHERE database_id = DB_ID()) = 0 EXEC sys.sp_cdc_enable_db`,
			fmt.Sprintf(`EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'%s', @role_name = NULL`, name))
	}
	t.Cleanup(func() {
		if cdc {
			_, _ = db.Exec(fmt.Sprintf(`EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'%s', @capture_instance = N'dbo_%s'`, name, name))
		}
		_, _ = db.Exec(fmt.Sprintf(`DROP TABLE IF EXISTS dbo.%s`, name))
	})
}

const liveInsert = `INSERT INTO dbo.%s VALUES (@p1, @p2, 12345678901234.5678, -922337203685477.5808,
	'2024-03-01T09:30:15.1234567', '2024-03-01T11:30:15.0000001+02:00', '6F9619FF-8B86-D011-B42D-00C04FC964FF',
	REPLICATE(CAST(N'ünïcødé ' AS nvarchar(max)), 1000), 0x0001FEFF, 1, '2024-02-29', 0.1, @p3)`

func liveSource(t *testing.T, cfg Config) *Source {
	t.Helper()
	cfg.PollInterval, cfg.MaxPollInterval = 50*time.Millisecond, 500*time.Millisecond
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func liveRead(t *testing.T, src source.Source, n int) []change.Record {
	t.Helper()
	// CDC's capture job runs every few seconds.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var got []change.Record
	for len(got) < n {
		recs, err := src.Read(ctx)
		if err != nil {
			t.Fatalf("after %d of %d records: %v", len(got), n, err)
		}
		got = append(got, recs...)
	}
	return got
}

func TestLiveChangeTracking(t *testing.T) {
	db, dsn := liveDB(t)
	liveTable(t, db, "dvsync_live_ct", false)
	src := liveSource(t, Config{DSN: dsn, Tables: []string{"dbo.dvsync_live_ct"}})
	ctx := context.Background()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"a", "b"} {
		if _, err := db.Exec(fmt.Sprintf(liveInsert, "dvsync_live_ct"), 1, code, 1); err != nil {
			t.Fatal(err)
		}
	}
	got := liveRead(t, src, 2)
	if s := ops(got); !strings.Contains(s, "c dbo.dvsync_live_ct tenant=1,code=a") || !strings.Contains(s, "c dbo.dvsync_live_ct tenant=1,code=b") {
		t.Fatalf("got %s", s)
	}
	after := got[1].After
	for name, want := range map[string]string{"amount": "12345678901234.5678", "price": "-922337203685477.5808",
		"placed": "2024-03-01T09:30:15.1234567Z", "seen": "2024-03-01T11:30:15.0000001+02:00",
		"ref": "6f9619ff-8b86-d011-b42d-00c04fc964ff", "blob": "0001feff", "paid": "true", "due": "2024-02-29", "ratio": "0.1"} {
		if v, _ := after.Get(name); v.String() != want {
			t.Errorf("%s: got %s (%s), want %s", name, v, v.Kind(), want)
		}
	}
	// dvsync's own write is skipped; another application's arrives.
	liveExec(t, db,
		`WITH CHANGE_TRACKING_CONTEXT (CAST('dvsync' AS varbinary(128))) UPDATE dbo.dvsync_live_ct SET qty = 5 WHERE code = 'a'`,
		`UPDATE dbo.dvsync_live_ct SET qty = 6 WHERE code = 'b'`,
		`DELETE FROM dbo.dvsync_live_ct WHERE code = 'b'`)
	if s := ops(liveRead(t, src, 1)); s != "d dbo.dvsync_live_ct tenant=1,code=b" {
		t.Fatalf("got %s", s)
	}
}

func TestLiveCDC(t *testing.T) {
	db, dsn := liveDB(t)
	liveTable(t, db, "dvsync_live_cdc", true)
	src := liveSource(t, Config{DSN: dsn, Mode: ModeCDC, Tables: []string{"dbo.dvsync_live_cdc"}})
	ctx := context.Background()
	if err := src.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(fmt.Sprintf(liveInsert, "dvsync_live_cdc"), 1, "a", 1); err != nil {
		t.Fatal(err)
	}
	liveExec(t, db, `UPDATE dbo.dvsync_live_cdc SET qty = 2 WHERE code = 'a'`, `DELETE FROM dbo.dvsync_live_cdc WHERE code = 'a'`)
	got := liveRead(t, src, 3)
	if s := ops(got); s != "c dbo.dvsync_live_cdc tenant=1,code=a; u dbo.dvsync_live_cdc tenant=1,code=a; d dbo.dvsync_live_cdc tenant=1,code=a" {
		t.Fatalf("got %s", s)
	}
	if v, _ := got[1].Before.Get("qty"); v.String() != "1" {
		t.Errorf("update before: qty %s", v)
	}
	if v, _ := got[1].After.Get("qty"); v.String() != "2" {
		t.Errorf("update after: qty %s", v)
	}
}

func TestLiveSnapshotThenStream(t *testing.T) {
	db, dsn := liveDB(t)
	liveTable(t, db, "dvsync_live_snap", false)
	for i := range 5 {
		if _, err := db.Exec(fmt.Sprintf(liveInsert, "dvsync_live_snap"), 1, fmt.Sprintf("k%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{DSN: dsn, Tables: []string{"dbo.dvsync_live_snap"}}
	snap, err := NewSnapshot(cfg, SnapshotOptions{PageSize: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := snap.Open(ctx, nil); err != nil {
		t.Fatal(err)
	}
	got := liveRead(t, snap, 5)
	liveExec(t, db, `UPDATE dbo.dvsync_live_snap SET qty = 9 WHERE code = 'k0'`)
	if err := snap.Ack(ctx, got[4].Position); err != nil {
		t.Fatal(err)
	}
	<-snap.Done()
	complete := snap.Complete()
	_ = snap.Close(ctx)
	src := liveSource(t, cfg)
	if err := src.Open(ctx, complete); err != nil {
		t.Fatal(err)
	}
	if s := ops(liveRead(t, src, 1)); s != "u dbo.dvsync_live_snap tenant=1,code=k0" {
		t.Fatalf("got %s", s)
	}
}

func TestLiveConformance(t *testing.T) {
	db, dsn := liveDB(t)
	liveExec(t, db, `DROP TABLE IF EXISTS dbo.dvsync_live_items`,
		`CREATE TABLE dbo.dvsync_live_items (id bigint IDENTITY PRIMARY KEY, name nvarchar(50) NOT NULL, n int NOT NULL DEFAULT 0)`,
		`IF (SELECT is_cdc_enabled FROM sys.databases WHERE database_id = DB_ID()) = 0 EXEC sys.sp_cdc_enable_db`,
		`EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'dvsync_live_items', @role_name = NULL`)
	t.Cleanup(func() {
		_, _ = db.Exec(`EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'dvsync_live_items', @capture_instance = N'dbo_dvsync_live_items'`)
		_, _ = db.Exec(`DROP TABLE IF EXISTS dbo.dvsync_live_items`)
	})
	sourcetest.Run(t, &liveHarness{db: db, dsn: dsn})
}

type liveHarness struct {
	db  *sql.DB
	dsn string
	mu  sync.Mutex
}

func (h *liveHarness) NewSource(t *testing.T) source.Source {
	s, err := New(Config{DSN: h.dsn, Mode: ModeCDC, Start: StartEarliest, Tables: []string{"dbo.dvsync_live_items"},
		PollInterval: 50 * time.Millisecond, MaxPollInterval: 500 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *liveHarness) Insert(t *testing.T, n int) []change.Key {
	h.mu.Lock()
	defer h.mu.Unlock()
	rows, err := h.db.Query(`INSERT INTO dbo.dvsync_live_items (name) OUTPUT inserted.id SELECT TOP (@p1) N'item' FROM sys.all_objects`, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var keys []change.Key
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, change.Key{{Name: "id", Value: change.Int(id)}})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Identity values are assigned in insert order; OUTPUT need not
	// return them in it.
	slices.SortFunc(keys, func(a, b change.Key) int { return cmp.Compare(a[0].Value.Int(), b[0].Value.Int()) })
	return keys
}

func (h *liveHarness) Update(t *testing.T, key change.Key) {
	liveExec(t, h.db, fmt.Sprintf(`UPDATE dbo.dvsync_live_items SET n = n + 1 WHERE id = %d`, key[0].Value.Int()))
}

func (h *liveHarness) Delete(t *testing.T, key change.Key) {
	liveExec(t, h.db, fmt.Sprintf(`DELETE FROM dbo.dvsync_live_items WHERE id = %d`, key[0].Value.Int()))
}
