package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dvsync/dvsync/change"
)

// The sink's writes are made under its replication origin: logical
// decoding filtering on origin (test_decoding's only-local, pgoutput's
// Origin message for a source with skip_origin) can tell them from
// everyone else's, and the origin's progress moves with each write.
func TestWritesCarryOrigin(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.items (id int PRIMARY KEY, v text)`)
	var origin string
	if err := d.Conn.QueryRow(t.Context(), "SELECT 'dvsync_' || current_database()").Scan(&origin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dropOrigin(t, d, origin) })
	d.Exec(t, "SELECT pg_create_logical_replication_slot('sink_origin_peek', 'test_decoding')")

	s := d.sink(t, Config{Origin: origin})
	write(t, s, upsert("items", intKey("id", 1), col("v", change.Text("from dvsync"))))
	first := d.originLSN(t, origin)
	d.Exec(t, "INSERT INTO items VALUES (2, 'from someone else')")
	write(t, s, upsert("items", intKey("id", 3), col("v", change.Text("from dvsync"))), del("items", intKey("id", 2)))
	if second := d.originLSN(t, origin); second <= first || first == 0 {
		t.Errorf("origin progress went from %X to %X, want it to advance", first, second)
	}

	local := d.peek(t, "'only-local', '1'")
	want := []string{"INSERT: id[integer]:2 v[text]:'from someone else'"}
	if strings.Join(local, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes without an origin:\n%s\nwant only the plain insert", strings.Join(local, "\n"))
	}
	all := d.peek(t, "'only-local', '0'")
	if len(all) != 4 {
		t.Errorf("all changes:\n%s\nwant the sink's three as well", strings.Join(all, "\n"))
	}
}

// peek returns the row changes decoded from the slot with options, the
// table prefix cut, without consuming them.
func (d *db) peek(t *testing.T, options string) []string {
	t.Helper()
	rows, err := d.Conn.Query(t.Context(),
		"SELECT data FROM pg_logical_slot_peek_changes('sink_origin_peek', NULL, NULL, 'skip-empty-xacts', '1', "+options+")")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var data string
		if err := rows.Scan(&data); err != nil {
			t.Fatal(err)
		}
		if rest, ok := strings.CutPrefix(data, "table public.items: "); ok {
			out = append(out, rest)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// originLSN returns the local commit LSN the origin has reached.
func (d *db) originLSN(t *testing.T, origin string) uint64 {
	t.Helper()
	var lsn uint64
	err := d.Conn.QueryRow(t.Context(), `SELECT coalesce(s.local_lsn - '0/0', 0)::bigint
		FROM pg_replication_origin o LEFT JOIN pg_replication_origin_status s ON s.local_id = o.roident
		WHERE o.roname = $1`, origin).Scan(&lsn)
	if err != nil {
		t.Fatalf("origin %s: %v", origin, err)
	}
	return lsn
}

// dropOrigin drops the origin once the closed sink's backend has let go
// of it.
func dropOrigin(t *testing.T, d *db, origin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := d.Conn.Exec(ctx, "SELECT pg_replication_origin_drop($1)", origin)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			if err != nil {
				t.Errorf("drop origin: %v", err)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Errorf("drop origin: %v", err)
			return
		case <-tick.C:
		}
	}
}
