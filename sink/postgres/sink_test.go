package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dvsync/dvsync/change"
)

// A delete under SoftDelete sets the flag, of a missing row changes
// nothing, and an upsert brings the row back.
func TestSoftDelete(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, "is deleted" boolean NOT NULL DEFAULT false)`)
	s := d.sink(t, Config{SoftDelete: "is deleted"})
	write(t, s, upsert("items", intKey("id", 1), col("name", change.Text("one"))),
		upsert("items", intKey("id", 2), col("name", change.Text("two"))))
	write(t, s, del("items", intKey("id", 1)), del("items", intKey("id", 99)))
	write(t, s, del("items", intKey("id", 1))) // replay
	if n := d.count(t, "items", `id = 1 AND "is deleted"`); n != 1 {
		t.Fatalf("row 1 not marked deleted")
	}
	if n := d.count(t, "items", `id = 2 AND NOT "is deleted"`); n != 1 {
		t.Fatalf("row 2 marked deleted")
	}
	if n := d.count(t, "items", "true"); n != 2 {
		t.Fatalf("%d rows, want 2: a soft delete of a missing row must not create it", n)
	}
	write(t, s, upsert("items", intKey("id", 1), col("name", change.Text("one again"))))
	if n := d.count(t, "items", `id = 1 AND NOT "is deleted" AND name = 'one again'`); n != 1 {
		t.Fatalf("row 1 not revived by an upsert")
	}
	// A record that carries the flag itself decides it.
	write(t, s, upsert("items", intKey("id", 2), col("name", change.Text("two")), col("is deleted", change.Bool(true))))
	if n := d.count(t, "items", `id = 2 AND "is deleted"`); n != 1 {
		t.Fatalf("row 2's own flag was overridden")
	}
}

// Records rejected for their data fail alone, as permanent errors in a
// BatchError; the rest of the batch is committed.
func TestPermanentErrorsIsolated(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.accounts (id int PRIMARY KEY, name text NOT NULL, balance numeric CHECK (balance >= 0), code varchar(3) UNIQUE)`)
	d.Exec(t, `INSERT INTO accounts VALUES (50, 'existing', 0, 'XYZ')`)
	s := d.sink(t, Config{})
	batch := []change.Record{
		upsert("accounts", intKey("id", 1), col("name", change.Text("ok")), col("balance", change.Int(5))),
		upsert("accounts", intKey("id", 2), col("name", change.Text("neg")), col("balance", change.Int(-5))),     // check
		upsert("accounts", intKey("id", 3), col("name", change.Text("ok")), col("balance", change.Text("lots"))), // type
		upsert("accounts", intKey("id", 4), col("name", change.Null())),                                          // not null
		upsert("accounts", intKey("id", 5), col("name", change.Text("ok")), col("code", change.Text("XYZ"))),     // unique
		upsert("accounts", intKey("id", 6), col("name", change.Text("ok")), col("code", change.Text("long"))),    // length
		upsert("accounts", intKey("id", 7), col("name", change.Text("ok")), col("nosuch", change.Int(1))),        // column
		{Op: change.OpTruncate, Table: "public.accounts"},
		del("accounts", intKey("id", 50)),
		upsert("nosuch", intKey("id", 8), col("name", change.Text("x"))), // table
		upsert("accounts", intKey("id", 9), col("name", change.Text("ok"))),
	}
	be := batchError(t, s.Write(t.Context(), batch))
	for i := range batch {
		err, failed := be.Failed[i]
		wantFail := i != 0 && i != 8 && i != 10
		if failed != wantFail {
			t.Errorf("record %d (%s): failed = %v (%v), want %v", i, batch[i].String(), failed, err, wantFail)
			continue
		}
		if failed && !change.IsPermanent(err) {
			t.Errorf("record %d: %v is not permanent", i, err)
		}
	}
	if n := d.count(t, "accounts", "true"); n != 2 {
		t.Errorf("%d rows, want 2 (ids 1 and 9)", n)
	}
	if n := d.count(t, "accounts", "id IN (1, 9)"); n != 2 {
		t.Error("the good records were not committed")
	}
	// A batch of nothing but bad records fails whole, each named.
	be = batchError(t, s.Write(t.Context(), batch[1:3]))
	if len(be.Failed) != 2 {
		t.Errorf("Failed = %v, want both records", be.Failed)
	}
}

// An update whose other columns are Unchanged updates an existing row
// in place, even under NOT NULL columns it does not carry, and inserts
// a missing row when the table lets it.
func TestUnchangedColumns(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.docs (id int PRIMARY KEY, body text NOT NULL, title text, n int)`,
		`INSERT INTO docs VALUES (1, 'big body', 'old', 1)`)
	s := d.sink(t, Config{})
	partial := func(id int, cols ...change.Column) change.Record {
		r := upsert("docs", intKey("id", id), cols...)
		r.Op = change.OpUpdate
		return r
	}
	write(t, s, partial(1, col("body", change.Unchanged()), col("title", change.Text("new")), col("n", change.Unchanged())))
	if n := d.count(t, "docs", "id = 1 AND body = 'big body' AND title = 'new' AND n = 1"); n != 1 {
		t.Fatal("unchanged columns were touched")
	}
	// Nothing but unchanged columns: nothing to do.
	write(t, s, partial(1, col("body", change.Unchanged())))
	// A missing row cannot be made without its NOT NULL body ...
	be := batchError(t, s.Write(t.Context(), []change.Record{partial(2, col("body", change.Unchanged()), col("title", change.Text("t")))}))
	if !change.IsPermanent(be.Failed[0]) {
		t.Fatalf("missing row without its body: %v", be.Failed[0])
	}
	// ... but one whose unchanged columns are nullable is inserted.
	write(t, s, partial(3, col("body", change.Text("b")), col("n", change.Unchanged())))
	if n := d.count(t, "docs", "id = 3 AND body = 'b' AND n IS NULL"); n != 1 {
		t.Fatal("missing row not inserted")
	}
}

// Names are quoted, never interpreted: a column name that reads as SQL
// is just a column name.
func TestIdentifiersQuoted(t *testing.T) {
	d := newDB(t)
	evil := `x"; DROP TABLE victim; --`
	d.Exec(t, `CREATE TABLE victim (id int)`, `CREATE SCHEMA "we ird"`,
		`CREATE TABLE "we ird"."ta""ble" ("i""d" int PRIMARY KEY, "x""; DROP TABLE victim; --" text)`)
	s := d.sink(t, Config{SoftDelete: evil})
	key := intKey(`i"d`, 1)
	write(t, s, upsert(`we ird.ta"ble`, key, col(evil, change.Text("v"))))
	if n := d.count(t, `we ird.ta"ble`, `"x""; DROP TABLE victim; --" = 'v'`); n != 1 {
		t.Fatal("row not written")
	}
	if n := d.count(t, "victim", "true"); n != 0 {
		t.Fatal("victim changed")
	}
}

// A lost connection fails the batch as retryable, and the next Write
// reconnects, sets the origin up again and succeeds.
func TestConnectionLossIsRetryable(t *testing.T) {
	d := newDB(t)
	d.Exec(t, `CREATE TABLE public.t (id int PRIMARY KEY, v text)`)
	s := d.sink(t, Config{})
	write(t, s, upsert("t", intKey("id", 1), col("v", change.Text("a"))))
	d.Exec(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	err := s.Write(t.Context(), []change.Record{upsert("t", intKey("id", 2), col("v", change.Text("b")))})
	t.Logf("Write on a terminated connection: %v", err)
	// Nil when the pool noticed the dead connection before using it.
	if _, ok := change.RetryWait(err); err != nil && !ok {
		t.Fatalf("Write on a terminated connection = %v, want a retryable error", err)
	}
	write(t, s, upsert("t", intKey("id", 2), col("v", change.Text("b"))))
	if n := d.count(t, "t", "true"); n != 2 {
		t.Fatalf("%d rows, want 2", n)
	}
}

// Errors are classified by SQLSTATE class.
func TestClassify(t *testing.T) {
	for code, want := range map[string]string{
		"23505": "permanent", "22P02": "permanent", "42703": "permanent", "42P01": "permanent", "44000": "permanent",
		"40001": "retryable", "40P01": "retryable", "08006": "retryable", "53300": "retryable", "57P01": "retryable",
		"55P03": "retryable", "55006": "retryable", "XX000": "unclassified",
	} {
		err := classify(fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code}))
		got := "unclassified"
		if change.IsPermanent(err) {
			got = "permanent"
		} else if _, ok := change.RetryWait(err); ok {
			got = "retryable"
		}
		if got != want {
			t.Errorf("SQLSTATE %s: %s, want %s", code, got, want)
		}
	}
	if _, ok := change.RetryWait(classify(io.ErrUnexpectedEOF)); !ok {
		t.Error("a network error is not retryable")
	}
	if err := classify(context.Canceled); !errors.Is(err, context.Canceled) || change.IsPermanent(err) {
		t.Errorf("classify(context.Canceled) = %v", err)
	}
}

// The SQL for each record shape.
func TestStatements(t *testing.T) {
	st := &statements{}
	key := change.Key{{Name: "tenant", Value: change.Int(7)}, {Name: "code", Value: change.Text("A")}}
	for _, tc := range []struct {
		name string
		st   *statements
		rec  change.Record
		sql  string
		args []any
	}{{
		name: "upsert",
		st:   st,
		rec:  upsert("s.t", key, col("a", change.MustDecimal("1.50")), col("b", change.Null())),
		sql:  `INSERT INTO "s"."t" ("tenant", "code", "a", "b") VALUES ($1, $2, $3, $4) ON CONFLICT ("tenant", "code") DO UPDATE SET "a" = EXCLUDED."a", "b" = EXCLUDED."b"`,
		args: []any{"7", "A", "1.50", nil},
	}, {
		name: "key only",
		st:   st,
		rec:  upsert("t", key),
		sql:  `INSERT INTO "t" ("tenant", "code") VALUES ($1, $2) ON CONFLICT ("tenant", "code") DO NOTHING`,
		args: []any{"7", "A"},
	}, {
		name: "unchanged column",
		st:   st,
		rec:  upsert("t", key, col("a", change.Unchanged()), col("b", change.Bool(true))),
		sql:  `WITH u AS (UPDATE "t" SET "b" = $3 WHERE "tenant" = $1 AND "code" = $2 RETURNING 1) INSERT INTO "t" ("tenant", "code", "b") SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT FROM u) ON CONFLICT ("tenant", "code") DO UPDATE SET "b" = EXCLUDED."b"`,
		args: []any{"7", "A", "true"},
	}, {
		name: "delete",
		st:   st,
		rec:  del("t", key),
		sql:  `DELETE FROM "t" WHERE "tenant" = $1 AND "code" = $2`,
		args: []any{"7", "A"},
	}, {
		name: "soft delete",
		st:   &statements{softDelete: "gone"},
		rec:  del("t", key),
		sql:  `UPDATE "t" SET "gone" = true WHERE "tenant" = $1 AND "code" = $2 AND "gone" IS DISTINCT FROM true`,
		args: []any{"7", "A"},
	}, {
		name: "upsert under soft delete",
		st:   &statements{softDelete: "gone"},
		rec:  upsert("t", key, col("a", change.Int(1))),
		sql:  `INSERT INTO "t" ("tenant", "code", "a", "gone") VALUES ($1, $2, $3, $4) ON CONFLICT ("tenant", "code") DO UPDATE SET "a" = EXCLUDED."a", "gone" = EXCLUDED."gone"`,
		args: []any{"7", "A", "1", "false"},
	}} {
		for range 2 { // the second time from the cache
			got, err := tc.st.plan(&tc.rec)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got.sql != tc.sql || fmt.Sprint(got.args) != fmt.Sprint(tc.args) {
				t.Errorf("%s:\n got  %s %v\n want %s %v", tc.name, got.sql, got.args, tc.sql, tc.args)
			}
		}
	}
	for _, bad := range []change.Record{
		{Op: change.OpInsert, Table: "t"},
		{Op: change.OpDelete, Table: "t"},
		{Op: change.OpUpdate, Table: "t", Key: change.Key{{Name: "id", Value: change.Null()}}},
		{Op: change.OpTruncate, Table: "t"},
	} {
		if _, err := st.plan(&bad); err == nil {
			t.Errorf("%s planned", bad.String())
		}
	}
}

// Bad configurations are refused with every problem named, and the
// DSN's password never shows.
func TestConfigValidate(t *testing.T) {
	err := Config{Origin: "pg_mine"}.Validate()
	for _, want := range []string{"dsn: required", "origin: \"pg_mine\" is reserved"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	if err := (Config{DSN: "postgres://u:pw@localhost/db"}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	for _, dsn := range []string{"postgres://u:s3cr3t@host:notaport/db", "host=h password=s3cr3t port=x", "postgres://u:s3cr3t@[::1/db"} {
		_, err := New(Config{DSN: dsn})
		if err == nil {
			t.Errorf("New accepted a malformed DSN")
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// A wrong password fails the Write without showing it; the engine
// retries such an unclassified error with its backoff.
func TestConnectErrorHidesPassword(t *testing.T) {
	d := newDB(t)
	cfg, err := pgconn.ParseConfig(d.DSN)
	if err != nil {
		t.Fatal(err)
	}
	dsn := fmt.Sprintf("postgres://%s:wr0ngpw@%s:%d/%s?sslmode=disable&connect_timeout=10", cfg.User, cfg.Host, cfg.Port, cfg.Database)
	s, err := New(Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = s.Write(ctx, []change.Record{upsert("t", intKey("id", 1))})
	if err == nil || strings.Contains(err.Error(), "wr0ngpw") {
		t.Fatalf("Write with a wrong password = %v", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("Write with a wrong password = %v, want invalid_password", err)
	}
}
