package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/dvsync/dvsync/source/postgres"
	"github.com/dvsync/dvsync/source/sqlserver"
)

// tableProgress is how far a backfill has read one table, whatever the
// source.
type tableProgress struct {
	Table string
	// Read counts the rows read, in this run and the runs it resumes;
	// Earlier those of the runs it resumes.
	Read, Earlier int64
	// Total is the rows the table holds, as counted when this run began
	// to read it; -1 when the source does not count them.
	Total int64
	// Began is when this run began to read the table; zero before, and
	// for a table an earlier run finished.
	Began time.Time
	// Started is set once the table's read has begun, in this run or an
	// earlier one; Done once every row has been read.
	Started, Done bool
}

// pgProgress adapts a PostgreSQL snapshot's progress.
func pgProgress(progress func() []postgres.TableProgress) func() []tableProgress {
	return func() []tableProgress {
		var out []tableProgress
		for _, t := range progress() {
			out = append(out, tableProgress{Table: t.Table, Read: t.Read, Earlier: t.Earlier, Total: t.Total,
				Began: t.Began, Started: t.Total >= 0, Done: t.Done})
		}
		return out
	}
}

// sqlserverProgress adapts a SQL Server snapshot's progress; it does not
// count a table's rows before reading them.
func sqlserverProgress(progress func() []sqlserver.TableProgress) func() []tableProgress {
	return func() []tableProgress {
		var out []tableProgress
		for _, t := range progress() {
			out = append(out, tableProgress{Table: t.Table, Read: t.Read, Earlier: t.Earlier, Total: -1,
				Began: t.Began, Started: t.Done || !t.Began.IsZero(), Done: t.Done})
		}
		return out
	}
}

// Intervals between progress updates: a bar is redrawn often, log lines
// are spaced so that a long backfill's log stays readable.
const (
	barInterval = 200 * time.Millisecond
	logInterval = 5 * time.Second
)

// progressReporter shows a backfill's progress, as a bar on a terminal or
// as structured log lines otherwise. It is driven from one goroutine.
type progressReporter struct {
	out      io.Writer
	tty      bool
	log      *slog.Logger
	progress func() []tableProgress

	bar      *progressbar.ProgressBar
	status   bool            // a status line is drawn, in place of a bar
	reported map[string]bool // tables whose final line has been shown
}

func newProgressReporter(out io.Writer, tty bool, log *slog.Logger, progress func() []tableProgress) *progressReporter {
	return &progressReporter{out: out, tty: tty, log: log, progress: progress, reported: map[string]bool{}}
}

// follow reports progress until the pipeline's Run returns on runErr,
// then returns what Run returned.
func (r *progressReporter) follow(runErr <-chan error) error {
	interval := logInterval
	if r.tty {
		interval = barInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case err := <-runErr:
			r.update(true)
			if r.bar != nil {
				_ = r.bar.Exit()
				fmt.Fprintln(r.out)
			}
			if r.status {
				fmt.Fprintln(r.out)
			}
			return err
		case <-tick.C:
			r.update(false)
		}
	}
}

// update takes one progress snapshot and shows it; final is set for the
// last one.
func (r *progressReporter) update(final bool) {
	now := time.Now()
	var total, read int64
	var active []string
	counted := true // every started table's total is known
	for _, t := range r.progress() {
		if !t.Started {
			continue
		}
		counted = counted && t.Total >= 0
		total += max(t.Total, t.Read)
		read += t.Read
		switch {
		case t.Done && !r.reported[t.Table]:
			r.reported[t.Table] = true
			r.line(t, now)
		case !t.Done:
			active = append(active, backfillStatus(t, now))
			if !r.tty && !final {
				rate, eta := rateETA(t, now)
				if t.Total < 0 {
					r.log.Info("backfill progress", "table", t.Table, "rows", t.Read, "rows_per_s", int64(rate))
				} else {
					r.log.Info("backfill progress", "table", t.Table, "rows", t.Read, "total", t.Total,
						"rows_per_s", int64(rate), "eta", eta.Round(time.Second))
				}
			}
		}
	}
	if !r.tty || total == 0 {
		return
	}
	if !counted {
		// No bar without a total: one status line, redrawn in place.
		fmt.Fprintf(r.out, "\r\033[K%d rows  %s", read, strings.Join(active, "  "))
		r.status = true
		return
	}
	if r.bar == nil {
		r.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(r.out),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("rows"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionThrottle(barInterval/2),
		)
	}
	if r.bar.GetMax64() != total {
		r.bar.ChangeMax64(total)
	}
	r.bar.Describe(strings.Join(active, "  "))
	_ = r.bar.Set64(read)
}

// line reports one table's end: a line above the bar, or a log line.
func (r *progressReporter) line(t tableProgress, now time.Time) {
	if t.Began.IsZero() {
		if r.tty {
			fmt.Fprintf(r.out, "%s: %d rows, backfilled earlier\n", t.Table, t.Read)
		} else {
			r.log.Info("table backfilled earlier", "table", t.Table, "rows", t.Read)
		}
		return
	}
	took := now.Sub(t.Began)
	rate, _ := rateETA(t, now)
	if !r.tty {
		r.log.Info("table read", "table", t.Table, "rows", t.Read, "rows_this_run", t.Read-t.Earlier,
			"took", took.Round(time.Millisecond), "rows_per_s", int64(rate))
		return
	}
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	if r.status {
		fmt.Fprint(r.out, "\r\033[K")
	}
	fmt.Fprintf(r.out, "%s: %d rows read in %s (%d rows/s)\n", t.Table, t.Read, took.Round(100*time.Millisecond), int64(rate))
}

// backfillStatus renders a table in progress for the bar: rows, rate and ETA.
func backfillStatus(t tableProgress, now time.Time) string {
	rate, eta := rateETA(t, now)
	if t.Total < 0 {
		return fmt.Sprintf("%s %d %d rows/s", t.Table, t.Read, int64(rate))
	}
	if eta < 0 {
		return fmt.Sprintf("%s %d/%d", t.Table, t.Read, t.Total)
	}
	return fmt.Sprintf("%s %d/%d %d rows/s ETA %s", t.Table, t.Read, t.Total, int64(rate), eta.Round(time.Second))
}

// rateETA returns a table's rows per second in this run and the time left
// at that rate; the ETA is negative while no rate or total is known.
func rateETA(t tableProgress, now time.Time) (float64, time.Duration) {
	secs := now.Sub(t.Began).Seconds()
	rows := t.Read - t.Earlier
	if t.Began.IsZero() || secs <= 0 || rows <= 0 {
		return 0, -1
	}
	rate := float64(rows) / secs
	if t.Total < 0 {
		return rate, -1
	}
	return rate, time.Duration(float64(t.Total-t.Read) / rate * float64(time.Second))
}
