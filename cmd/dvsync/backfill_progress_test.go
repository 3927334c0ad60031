package main

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/source/postgres"
	"github.com/dvsync/dvsync/source/sqlserver"
)

// fakeProgress is a backfill's progress that tests move by hand.
type fakeProgress struct{ tables []postgres.TableProgress }

func (f *fakeProgress) get() []postgres.TableProgress {
	return append([]postgres.TableProgress(nil), f.tables...)
}

func TestProgressReporterLogsWithoutTerminal(t *testing.T) {
	began := time.Now().Add(-2 * time.Second)
	f := &fakeProgress{tables: []postgres.TableProgress{
		{Table: "public.done", Read: 70, Total: 70, Earlier: 70, Done: true},
		{Table: "public.a", Read: 400, Total: 1000, Earlier: 200, Began: began},
		{Table: "public.b", Total: -1},
	}}
	var logs bytes.Buffer
	r := newProgressReporter(&logs, false, slog.New(slog.NewTextHandler(&logs, nil)), pgProgress(f.get))
	r.update(false)
	f.tables[1].Read, f.tables[1].Done = 1000, true
	r.update(true)

	out := logs.String()
	for _, want := range []string{
		`msg="table backfilled earlier" table=public.done rows=70`,
		`msg="backfill progress" table=public.a rows=400 total=1000 rows_per_s=`,
		`msg="table read" table=public.a rows=1000 rows_this_run=800`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "public.b") {
		t.Errorf("a table not started yet was reported:\n%s", out)
	}
	if strings.Count(out, "public.done") != 1 {
		t.Errorf("a finished table was reported more than once:\n%s", out)
	}
}

func TestProgressReporterDrawsBarOnTerminal(t *testing.T) {
	f := &fakeProgress{tables: []postgres.TableProgress{
		{Table: "public.a", Read: 250, Total: 1000, Began: time.Now().Add(-time.Second)},
	}}
	var screen bytes.Buffer
	r := newProgressReporter(&screen, true, slog.New(slog.DiscardHandler), pgProgress(f.get))
	r.update(false)
	f.tables[0].Read, f.tables[0].Done = 1000, true
	r.update(true)
	out := screen.String()
	for _, want := range []string{"250/1000", "public.a 250/1000", "rows/s", "ETA", "public.a: 1000 rows read in"} {
		if !strings.Contains(out, want) {
			t.Errorf("screen lacks %q:\n%q", want, out)
		}
	}
}

func TestProgressReporterWithoutTotals(t *testing.T) {
	tables := []sqlserver.TableProgress{{Table: "dbo.a", Read: 250, Began: time.Now().Add(-time.Second)}, {Table: "dbo.b"}}
	get := func() []sqlserver.TableProgress { return slices.Clone(tables) }
	var screen, logs bytes.Buffer
	bar := newProgressReporter(&screen, true, slog.New(slog.DiscardHandler), sqlserverProgress(get))
	lines := newProgressReporter(&logs, false, slog.New(slog.NewTextHandler(&logs, nil)), sqlserverProgress(get))
	bar.update(false)
	lines.update(false)
	tables[0].Read, tables[0].Done = 1000, true
	bar.update(true)
	lines.update(true)
	for _, want := range []string{"dbo.a 250 ", "rows/s", "dbo.a: 1000 rows read in"} {
		if !strings.Contains(screen.String(), want) {
			t.Errorf("screen lacks %q:\n%q", want, screen.String())
		}
	}
	for _, want := range []string{"table=dbo.a rows=250 rows_per_s=", "msg=\"table read\" table=dbo.a rows=1000 rows_this_run=1000"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if strings.Contains(screen.String()+logs.String(), "dbo.b") || strings.Contains(logs.String(), "total=") {
		t.Errorf("a table not started, or a total nobody counted, was reported:\n%s\n%s", screen.String(), logs.String())
	}
}
