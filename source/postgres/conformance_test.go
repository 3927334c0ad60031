package postgres

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/source"
	"github.com/dvsync/dvsync/source/sourcetest"
)

func TestConformance(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id bigserial PRIMARY KEY, name text NOT NULL, n int NOT NULL DEFAULT 0)")
	sourcetest.Run(t, &harness{db: d})
}

type harness struct{ *db }

func (h *harness) NewSource(t *testing.T) source.Source {
	s, err := New(Config{DSN: h.DSN, Tables: []string{"public.items"}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) Insert(t *testing.T, n int) []change.Key {
	rows, _ := h.Conn.Query(context.Background(),
		"INSERT INTO public.items (name) SELECT 'item ' || i FROM generate_series(1, $1) i RETURNING id", n)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]change.Key, len(ids))
	for i, id := range ids {
		keys[i] = change.Key{{Name: "id", Value: change.Int(id)}}
	}
	return keys
}

func (h *harness) Update(t *testing.T, key change.Key) {
	h.exec1(t, "UPDATE public.items SET n = n + 1 WHERE id = $1", key)
}

func (h *harness) Delete(t *testing.T, key change.Key) {
	h.exec1(t, "DELETE FROM public.items WHERE id = $1", key)
}

func (h *harness) exec1(t *testing.T, sql string, key change.Key) {
	t.Helper()
	tag, err := h.Conn.Exec(context.Background(), sql, key[0].Value.Int())
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("%s (%s): %v, %d rows", sql, key, err, tag.RowsAffected())
	}
}
