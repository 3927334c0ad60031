package engine

import (
	"context"
	"fmt"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/state"
)

// RetryDeadLetter re-drives the named pipeline's dead letter id: it reads
// it from st, maps its source records with m, writes the result to dst
// and, once dst has made it durable, deletes the letter from st. It returns how many records it
// wrote; zero, with the letter deleted, when m no longer maps any of them
// (the pipeline would skip them now too).
//
// m is the mapping as it is now, so fixing a mapping and retrying
// delivers a record that failed under the old one. The source records are
// those of the letter's Sources, or its Record when it failed at the map
// stage; changes to one key are folded as the pipeline folds them. A
// write-stage letter stored without sources (by an older dvsync) is
// written as it was mapped then.
//
// Any failure (a mapping error, a sink error of either class) leaves the
// letter in place and is returned; RetryDeadLetter does not retry by
// itself. The row is written as it was when the letter was made, which
// may be older than what later changes already delivered.
//
// It must not run while a pipeline writes the same rows: nothing orders
// its write against the pipeline's.
//
// A letter that is not in st (retried or dropped already) is an error
// wrapping state.ErrNotFound, and nothing is written.
func RetryDeadLetter(ctx context.Context, st state.Store, m Mapper, dst sink.Sink, pipeline string, id uint64) (int, error) {
	dl, err := st.DeadLetter(ctx, pipeline, id)
	if err != nil {
		return 0, fmt.Errorf("engine: retry dead letter %d: %w", id, err)
	}
	batch, err := remap(m, &dl)
	if err != nil {
		return 0, fmt.Errorf("engine: retry dead letter %d: %w", dl.ID, err)
	}
	if len(batch) > 0 {
		if err := dst.Write(ctx, batch); err != nil {
			return 0, fmt.Errorf("engine: retry dead letter %d: write: %w", dl.ID, err)
		}
	}
	if err := st.DeleteDeadLetter(ctx, dl.Pipeline, dl.ID); err != nil {
		return len(batch), fmt.Errorf("engine: retry dead letter %d: written, but not deleted: %w", dl.ID, err)
	}
	return len(batch), nil
}

// remap returns the records to write for dl under m, folded to one per
// key in the order of each key's first change.
func remap(m Mapper, dl *state.DeadLetter) ([]change.Record, error) {
	srcs := dl.Sources
	switch {
	case dl.Stage == stageMap:
		srcs = []change.Record{dl.Record}
	case len(srcs) == 0:
		if err := checkMapped(&dl.Record); err != nil {
			return nil, err
		}
		return []change.Record{dl.Record}, nil
	}
	var out []change.Record
	index := map[string]int{}
	var key []byte
	for i := range srcs {
		rec, ok, err := m.Map(&srcs[i])
		if err == nil && ok {
			err = checkMapped(&rec)
		}
		if err != nil {
			return nil, fmt.Errorf("map %s: %w", srcs[i].String(), err)
		}
		if !ok {
			continue
		}
		key = appendRouteKey(key[:0], &rec)
		if j, seen := index[string(key)]; seen {
			out[j] = fold(&out[j], &rec)
			continue
		}
		index[string(key)] = len(out)
		out = append(out, rec)
	}
	return out, nil
}
