package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dvsync/dvsync/change"
)

// job is a table, or one key range of a split table, for a reader.
type job struct {
	st  *snapshotTable
	rng int // index into the table's Ranges; -1 for the whole table
}

// plan counts the rows left in each table to read, splits large tables
// that have not been started into key ranges, and returns the jobs. It
// runs on rc, in the snapshot, before the readers start, and records the
// ranges in pos (a range with no rows read is true progress to save).
func (s *Snapshot) plan(ctx context.Context, rc *pgconn.PgConn, pos *snapshotPosition, todo []*snapshotTable) ([]job, map[string]tableRun, error) {
	var jobs []job
	runs := map[string]tableRun{}
	for _, st := range todo {
		tp := pos.Tables[st.name]
		var left int64
		if tp.Ranges != nil {
			for i, r := range tp.Ranges {
				if r.Done {
					continue
				}
				n, err := count(ctx, rc, st, r.resumeAt(), r.To)
				if err != nil {
					return nil, nil, err
				}
				left += n
				jobs = append(jobs, job{st: st, rng: i})
			}
		} else {
			n, err := count(ctx, rc, st, tp.After, nil)
			if err != nil {
				return nil, nil, err
			}
			left = n
			fresh := tp.After == nil && tp.Rows == 0
			if parts := min(int64(s.opts.Parallel), left/max(s.opts.SplitRows, 1)); fresh && parts > 1 {
				if tp.Ranges, err = split(ctx, rc, st, left, int(parts)); err != nil {
					return nil, nil, err
				}
			}
			if len(tp.Ranges) > 1 {
				for i := range tp.Ranges {
					jobs = append(jobs, job{st: st, rng: i})
				}
			} else {
				tp.Ranges = nil
				jobs = append(jobs, job{st: st, rng: -1})
			}
		}
		runs[st.name] = tableRun{earlier: tp.Rows, total: tp.Rows + left}
		s.logger.Info("postgres: backfill reading table", "table", st.name, "rows_left", left, "rows_done", tp.Rows,
			"resumed", tp.Rows > 0 || tp.After != nil, "ranges", len(tp.Ranges))
	}
	return jobs, runs, nil
}

// resumeAt is the key after which the range's next page starts.
func (r *rangeProgress) resumeAt() [][]byte {
	if r.After != nil {
		return r.After
	}
	return r.From
}

// count counts st's rows after the key lower (nil: from the first) up to
// and including upper (nil: to the last).
func count(ctx context.Context, rc *pgconn.PgConn, st *snapshotTable, lower, upper [][]byte) (int64, error) {
	params, oids := bounds(st, lower, upper)
	res := rc.ExecParams(ctx, st.countSQL(lower != nil, upper != nil), params, oids, nil, nil).Read()
	if res.Err != nil {
		return 0, fmt.Errorf("postgres: backfill: count rows of %s: %w", st.name, res.Err)
	}
	n, err := strconv.ParseInt(string(res.Rows[0][0]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("postgres: backfill: count rows of %s: %w", st.name, err)
	}
	return n, nil
}

// split cuts st's rows into up to parts ranges of about equal size.
func split(ctx context.Context, rc *pgconn.PgConn, st *snapshotTable, rows int64, parts int) ([]*rangeProgress, error) {
	step := (rows + int64(parts) - 1) / int64(parts)
	res := rc.ExecParams(ctx, st.splitSQL(), [][]byte{[]byte(strconv.FormatInt(step, 10))}, []uint32{20}, nil, nil).Read()
	if res.Err != nil {
		return nil, fmt.Errorf("postgres: backfill: split %s into key ranges: %w", st.name, res.Err)
	}
	var ranges []*rangeProgress
	var from [][]byte
	for _, row := range res.Rows {
		if len(ranges) == parts-1 {
			break
		}
		ranges = append(ranges, &rangeProgress{From: from, To: row})
		from = row
	}
	return append(ranges, &rangeProgress{From: from}), nil
}

// bounds returns the parameters and their types for a query bounded by
// lower and upper, either of which may be nil.
func bounds(st *snapshotTable, lower, upper [][]byte) ([][]byte, []uint32) {
	var params [][]byte
	var oids []uint32
	for _, b := range [][][]byte{lower, upper} {
		if b != nil {
			params = append(params, b...)
			oids = append(oids, st.pagingOIDs()...)
		}
	}
	return params, oids
}

// readJobs reads jobs from queue on rc, one after another, until the
// queue is empty, ctx is done or a query fails.
func (s *Snapshot) readJobs(ctx context.Context, rc *pgconn.PgConn, queue <-chan job) error {
	dec := newDecoder()
	for j := range queue {
		if err := s.readJob(ctx, rc, dec, j); err != nil {
			return err
		}
	}
	return nil
}

// readJob sends the rows of a table or range in pages.
func (s *Snapshot) readJob(ctx context.Context, rc *pgconn.PgConn, dec *decoder, j job) error {
	st := j.st
	began := time.Now()
	s.mu.Lock()
	tp := s.pos.Tables[st.name]
	lower, upper := tp.After, [][]byte(nil)
	if j.rng >= 0 {
		r := tp.Ranges[j.rng]
		lower, upper = r.resumeAt(), r.To
	}
	if run := s.runs[st.name]; run.began.IsZero() {
		run.began = began
		s.runs[st.name] = run
	}
	s.mu.Unlock()

	var read int64
	for {
		params, oids := bounds(st, lower, upper)
		pg, err := readPage(ctx, rc, dec, st, st.pageSQL(lower != nil, upper != nil, s.opts.PageSize), params, oids, s.opts.PageSize)
		if err != nil {
			return err
		}
		pg.rng = j.rng
		read += int64(len(pg.recs))
		if len(pg.recs) > 0 {
			lower = pg.after
		}
		select {
		case s.pages <- pg:
		case <-ctx.Done():
			return ctx.Err()
		}
		if pg.done {
			took := time.Since(began)
			s.logger.Info("postgres: backfill read table", "table", st.name, "range", j.rng, "rows", read,
				"took", took.Round(time.Millisecond), "rows_per_s", int64(float64(read)/max(took.Seconds(), 1e-3)))
			return nil
		}
	}
}

// slabColumns is how many columns readPage allocates at once: about
// 32 KiB, the largest the allocator serves from its size classes rather
// than as a large object of its own.
const slabColumns = 448

// readPage runs one page query and decodes its rows exactly as the stream
// decodes the same row's columns. The rows and keys of the page are cut
// from shared arrays of columns, and each row's text values share one
// string: a page's records are handed on, and let go, together. A key
// whose columns are next to each other in the row (a key of one column,
// usually) is that part of the row rather than a copy of it.
func readPage(ctx context.Context, rc *pgconn.PgConn, dec *decoder, st *snapshotTable, sql string, params [][]byte, oids []uint32, size int) (page, error) {
	pg := page{table: st.name, recs: make([]change.Record, 0, size)}
	rr := rc.ExecParams(ctx, sql, params, oids, nil, nil)
	last := make([][]byte, len(st.paging))
	width := len(st.columns)
	lo, hi := 0, 0 // the key is row[lo:hi], when hi > 0
	if n := len(st.key); n > 0 && st.key[n-1]-st.key[0] == n-1 {
		lo, hi = st.key[0], st.key[0]+n
	} else {
		width += len(st.key)
	}
	var cols []change.Column // room for the next rows and keys
	var text []byte          // the current row's values, end to end
	for rr.NextRow() {
		vals := rr.Values()
		if len(vals) != len(st.columns) {
			rr.Close()
			return pg, fmt.Errorf("postgres: backfill: %s: got %d columns, want %d", st.name, len(vals), len(st.columns))
		}
		if len(cols) < width {
			rows := min(max(1, slabColumns/width), size-len(pg.recs))
			cols = make([]change.Column, width*max(1, rows))
		}
		row := change.Row(cols[:len(vals):len(vals)])
		key := change.Key(cols[len(vals):width:width])
		if hi > 0 {
			key = change.Key(row[lo:hi:hi])
		}
		cols = cols[width:]
		text = text[:0]
		for _, data := range vals {
			text = append(text, data...)
		}
		str := string(text)
		off := 0
		for i, data := range vals {
			c := st.columns[i]
			v := change.Null()
			if data != nil {
				var err error
				if v, err = dec.textOf(c.typ, data, str[off:off+len(data)]); err != nil {
					rr.Close()
					// The value itself stays out: it may be personal data.
					return pg, fmt.Errorf("postgres: backfill: table %s column %s (type %d): cannot decode value", st.name, c.name, c.typ)
				}
				off += len(data)
			}
			row[i] = change.Column{Name: c.name, Value: v}
		}
		if hi == 0 {
			for i, ci := range st.key {
				key[i] = row[ci]
			}
		}
		for i, ci := range st.paging {
			// Values are only valid until the next row: keep a copy.
			last[i] = append(last[i][:0], vals[ci]...)
		}
		pg.recs = append(pg.recs, change.Record{
			Op:     change.OpRead,
			Table:  st.name,
			Key:    key,
			After:  row,
			Origin: change.Origin{System: "postgres"},
		})
	}
	if _, err := rr.Close(); err != nil {
		return pg, fmt.Errorf("postgres: backfill: read %s: %w", st.name, err)
	}
	pg.done = len(pg.recs) < size
	if len(pg.recs) > 0 {
		pg.after = last
	}
	return pg, nil
}
