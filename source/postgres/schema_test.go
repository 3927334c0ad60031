package postgres

import (
	"testing"

	"github.com/dvsync/dvsync/change"
)

// Added columns flow; the first record after a column is dropped or
// changes type names it in Meta, once.
func TestSchemaChanges(t *testing.T) {
	d := newDB(t)
	d.Exec(t, "CREATE TABLE public.items (id int PRIMARY KEY, v text, n int)")
	s := d.open(t, nil, "public.items")
	d.Exec(t,
		"INSERT INTO public.items VALUES (1, 'a', 1)",
		"ALTER TABLE public.items ADD COLUMN extra text",
		"INSERT INTO public.items VALUES (2, 'b', 2, 'new')",
		"ALTER TABLE public.items DROP COLUMN v",
		"ALTER TABLE public.items ALTER COLUMN n TYPE text",
		"INSERT INTO public.items VALUES (3, 'three', 'x')",
		"INSERT INTO public.items VALUES (4, 'four', 'y')")
	recs := readN(t, s, 4)
	for i, r := range recs[:2] {
		if r.Meta[MetaDroppedColumns] != "" || r.Meta[MetaRetypedColumns] != "" {
			t.Errorf("record %d: meta %v", i, r.Meta)
		}
	}
	checkRow(t, recs[1].After, map[string]change.Value{"extra": change.Text("new")})
	if got := recs[2].Meta[MetaDroppedColumns]; got != `["v"]` {
		t.Errorf("dropped columns %q", got)
	}
	if got := recs[2].Meta[MetaRetypedColumns]; got != `["n"]` {
		t.Errorf("retyped columns %q", got)
	}
	checkRow(t, recs[2].After, map[string]change.Value{"n": change.Text("three")})
	if _, ok := recs[2].After.Get("v"); ok {
		t.Error("dropped column still in the row")
	}
	if r := recs[3]; r.Meta[MetaDroppedColumns] != "" || r.Meta[MetaRetypedColumns] != "" {
		t.Errorf("notice repeated: %v", r.Meta)
	}
}
