package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/state"
)

// version maps a record to itself plus a "version" column, so that tests
// tell mapped records from source ones and one mapping from the next.
func version(v int64) Mapper {
	return MapperFunc(func(r *change.Record) (change.Record, bool, error) {
		out := *r
		if out.Op != change.OpDelete {
			out.After = append(append(change.Row(nil), r.After...), col("version", change.Int(v)))
		}
		return out, true, nil
	})
}

func TestWriteDeadLettersKeepTheirSourceRecords(t *testing.T) {
	e := newEnv(t)
	e.mapFn = version(1)
	e.dst.hook = func(_ context.Context, batch []change.Record) error {
		be := &change.BatchError{Failed: map[int]error{}}
		for i, r := range batch {
			if r.Key[0].Value.Int() == 5 {
				be.Failed[i] = change.Permanent(errors.New("name: too long"))
			}
		}
		if len(be.Failed) == 0 {
			return nil
		}
		return be
	}
	// One worker that writes only full batches of four, so that the two
	// changes to row 5 are folded into one write.
	ins := row(change.OpInsert, 5, col("name", change.Text("a")), col("n", change.Int(1)))
	upd := row(change.OpUpdate, 5, col("name", change.Text("b")), col("n", change.Unchanged()))
	e.src.add(ins, upd, row(change.OpInsert, 6), row(change.OpInsert, 7))
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize, cfg.BatchWait = 1, 4, time.Hour
	e.start(cfg)
	eventually(t, "every record acked", func() bool { return e.src.lastAck() == 4 })

	letters := e.st.deadLetters()
	if len(letters) != 1 {
		t.Fatalf("dead letters = %+v", letters)
	}
	dl := letters[0]
	if dl.Stage != "write" || dl.Reason != "name: too long" || dl.ID == 0 {
		t.Errorf("letter = %+v", dl)
	}
	// Record is what the sink refused: the folded, mapped insert.
	if got := rowText(dl.Record.After); dl.Record.Op != change.OpInsert || got != "id=5,name=b,n=1,version=1" {
		t.Errorf("mapped record = %s %s, want the folded insert", dl.Record.Op, got)
	}
	// Sources are the two source records, unmapped, in order.
	if len(dl.Sources) != 2 || rowText(dl.Sources[0].After) != rowText(ins.After) ||
		rowText(dl.Sources[1].After) != rowText(upd.After) || dl.Sources[1].Op != change.OpUpdate {
		t.Errorf("sources = %+v", dl.Sources)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

func TestRetryDeadLetterRemapsTheSourceRecords(t *testing.T) {
	ctx := context.Background()
	st, dst := newMemStore(), newMemSink(t)
	ins := row(change.OpInsert, 5, col("name", change.Text("a")), col("n", change.Int(1)))
	upd := row(change.OpUpdate, 5, col("name", change.Text("b")), col("n", change.Unchanged()))
	mapped := fold(&ins, &upd)
	letters := []state.DeadLetter{
		{Pipeline: testPipeline, Stage: stageWrite, Reason: "too long", Record: mapped, Sources: []change.Record{ins, upd}},
		{Pipeline: testPipeline, Stage: stageMap, Reason: "bad", Record: row(change.OpInsert, 6)},
		// Written by a dvsync that kept no sources: delivered as mapped then.
		{Pipeline: testPipeline, Stage: stageWrite, Reason: "too long", Record: row(change.OpInsert, 7)},
		{Pipeline: testPipeline, Stage: stageMap, Reason: "bad", Record: row(change.OpInsert, 8)},
	}
	if err := st.PutDeadLetters(ctx, letters); err != nil {
		t.Fatal(err)
	}
	all, _ := st.DeadLetters(ctx, testPipeline, 0)

	// A mapping that still fails leaves the letter in place.
	failing := MapperFunc(func(*change.Record) (change.Record, bool, error) {
		return change.Record{}, false, errors.New("still unmappable")
	})
	if _, err := RetryDeadLetter(ctx, st, failing, dst, testPipeline, all[1].ID); err == nil || !strings.Contains(err.Error(), "still unmappable") {
		t.Errorf("retry under a failing mapping: err = %v", err)
	}
	// So does a sink that still refuses the record.
	dst.hook = func(context.Context, []change.Record) error { return change.Permanent(errors.New("too long")) }
	if _, err := RetryDeadLetter(ctx, st, version(2), dst, testPipeline, all[0].ID); err == nil || !change.IsPermanent(err) {
		t.Errorf("retry into a refusing sink: err = %v, want the sink's permanent error", err)
	}
	if got := st.deadLetters(); len(got) != 4 {
		t.Fatalf("failed retries removed letters: %d left", len(got))
	}

	dst.hook = nil
	for _, dl := range all[:3] {
		if n, err := RetryDeadLetter(ctx, st, version(2), dst, testPipeline, dl.ID); err != nil || n != 1 {
			t.Fatalf("retry %d: %d written, %v", dl.ID, n, err)
		}
	}
	if w := dst.writesOf(5); len(w) != 1 || w[0].Op != change.OpInsert || rowText(w[0].After) != "id=5,name=b,n=1,version=2" {
		t.Errorf("row 5 writes = %v, want one insert folded from the sources under the new mapping", w)
	}
	if r, _ := dst.row(6); rowText(r) != "id=6,version=2" {
		t.Errorf("row 6 = %s, want it mapped by the new mapping", r)
	}
	if r, _ := dst.row(7); rowText(r) != "id=7" {
		t.Errorf("row 7 = %s, want it as it was mapped", r)
	}

	// A record the mapping now leaves out is done: nothing to write.
	skip := MapperFunc(func(*change.Record) (change.Record, bool, error) { return change.Record{}, false, nil })
	if n, err := RetryDeadLetter(ctx, st, skip, dst, testPipeline, all[3].ID); err != nil || n != 0 {
		t.Errorf("retry of a skipped record: %d written, %v", n, err)
	}
	if got := st.deadLetters(); len(got) != 0 {
		t.Errorf("letters left after retries: %+v", got)
	}
	// A letter retried twice is not written twice.
	writes := dst.batchCount()
	if _, err := RetryDeadLetter(ctx, st, version(2), dst, testPipeline, all[1].ID); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("second retry: err = %v, want ErrNotFound", err)
	}
	if dst.batchCount() != writes {
		t.Error("second retry wrote")
	}
}

func TestLagIsMeasuredFromTheCommitTime(t *testing.T) {
	e := newEnv(t)
	r := row(change.OpInsert, 1)
	r.CommitTime = time.Now().Add(-time.Hour)
	e.src.add(r)
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Metrics = reg
	e.start(cfg)
	eventually(t, "record acked", func() bool { return e.src.lastAck() == 1 })
	if lag := gather(t, reg)["dvsync_engine_lag_seconds"]; lag < 3600 || lag > 3600+600 {
		t.Errorf("lag = %vs, want about an hour", lag)
	}
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
}

// rowText renders a row as name=value pairs.
func rowText(r change.Row) string { return change.Key(r).String() }
