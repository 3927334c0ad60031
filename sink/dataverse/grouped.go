package dataverse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// prepared is a record ready to send: its row's address and body.
type prepared struct {
	key  odataclient.Key
	body []byte // nil for a delete
}

// group is the records of one table and one kind of write, in batch
// order; a chunk of a group is one request.
type group struct {
	table, set string
	delete     bool
}

// writeGrouped writes batch in requests of up to batchSize records of one
// table and kind, every chunk in parallel within the concurrency limit.
func (s *Sink) writeGrouped(ctx context.Context, batch []change.Record, errs []error) {
	sc, _ := s.scratch.Get().(*writeScratch)
	if sc == nil {
		sc = new(writeScratch)
	}
	defer s.scratch.Put(sc)
	defer sc.reset()
	sc.prep = slices.Grow(sc.prep, len(batch))[:len(batch)]
	prep := sc.prep
	var order []group
	members := make(map[group][]int)
	sets := make(map[string]setLookup) // this Write's lookups, failed ones too
	// The bodies are encoded one after another into one buffer, each a
	// slice of it, rather than each into a buffer of its own grown from
	// nothing. A body outlives a reallocation in the old array, which is
	// never written again.
	arena := slices.Grow(sc.arena, 128*len(batch))
	parts := slices.Grow(sc.parts, len(batch)*len(batch[0].Key))
	defer func() { sc.arena, sc.parts = arena, parts }()
	for i := range batch {
		rec := &batch[i]
		g, p, err := s.prepare(ctx, rec, sets, &arena, &parts)
		if err != nil {
			errs[i] = err
			continue
		}
		prep[i] = p
		if _, ok := members[g]; !ok {
			order = append(order, g)
		}
		members[g] = append(members[g], i)
	}
	var wg sync.WaitGroup
	for _, g := range order {
		idx := members[g]
		for len(idx) > 0 {
			n := min(len(idx), s.batchSize)
			chunk := idx[:n:n]
			idx = idx[n:]
			wg.Go(func() {
				if g.delete {
					s.writeBatch(ctx, g, batch, prep, chunk, errs)
				} else {
					s.writeUpserts(ctx, g, batch, prep, chunk, errs)
				}
			})
		}
	}
	wg.Wait()
}

// writeScratch is the memory one writeGrouped works in, reused by the
// next: nothing refers to it once writeGrouped returned, as requests are
// encoded into buffers of their own.
type writeScratch struct {
	prep  []prepared
	arena []byte                // the records' bodies
	parts []odataclient.KeyPart // the records' alternate keys
}

// reset empties sc, letting go of the values its key parts refer to.
func (sc *writeScratch) reset() {
	clear(sc.prep)
	clear(sc.parts)
	sc.prep, sc.arena, sc.parts = sc.prep[:0], sc.arena[:0], sc.parts[:0]
}

// prepare resolves rec's entity set and key and encodes its body at the
// end of *arena, its key's parts at the end of *parts. sets remembers this
// Write's answers, so that a table whose lookup failed is not asked again
// for each of its records.
func (s *Sink) prepare(ctx context.Context, rec *change.Record, sets map[string]setLookup, arena *[]byte, parts *[]odataclient.KeyPart) (group, prepared, error) {
	l, ok := sets[rec.Table]
	if !ok {
		l.name, l.err = s.sets.lookup(ctx, rec.Table)
		sets[rec.Table] = l
	}
	set, err := l.name, l.err
	if err != nil {
		return group{}, prepared{}, classifyLookup(ctx, fmt.Errorf("dataverse sink: entity set of %s: %w", rec.Table, err))
	}
	key, err := rowKeyIn(rec.Table, rec.Key, parts)
	if err != nil {
		return group{}, prepared{}, change.Permanent(fmt.Errorf("dataverse sink: %s: %w", rec, err))
	}
	g := group{table: rec.Table, set: set}
	switch rec.Op {
	case change.OpDelete:
		g.delete = true
		return g, prepared{key: key}, nil
	case change.OpInsert, change.OpUpdate, change.OpRead:
		start := len(*arena)
		buf, err := appendBody(*arena, rec.After)
		if err != nil {
			*arena = buf[:start]
			return group{}, prepared{}, change.Permanent(fmt.Errorf("dataverse sink: %s: %w", rec, err))
		}
		*arena = buf
		return g, prepared{key: key, body: buf[start:len(buf):len(buf)]}, nil
	}
	return group{}, prepared{}, change.Permanent(fmt.Errorf("dataverse sink: %s: unknown operation", rec))
}

// writeUpserts writes one chunk of upserts: with UpsertMultiple when the
// table takes it, else (or to learn which rows an all-or-nothing call
// failed for) with a $batch.
func (s *Sink) writeUpserts(ctx context.Context, g group, batch []change.Record, prep []prepared, chunk []int, errs []error) {
	if s.mode == ModeAuto && !s.bulkUnsupported(g.table) {
		targets := make([]odataclient.BulkTarget, len(chunk))
		for k, i := range chunk {
			targets[k] = odataclient.BulkTarget{Key: &prep[i].key, Body: prep[i].body}
		}
		err := s.send(ctx, func(ctx context.Context) error {
			return s.client.UpsertMultiple(ctx, g.set, g.table, targets, s.opts)
		})
		switch {
		case err == nil:
			return
		case odataclient.IsBulkUnsupported(err):
			s.noBulk.Store(g.table, struct{}{})
		case temporary(ctx, err) || ctx.Err() != nil || len(chunk) == 1:
			err = classify(ctx, fmt.Errorf("dataverse sink: UpsertMultiple %s: %w", g.table, err))
			for _, i := range chunk {
				errs[i] = err
			}
			return
		}
		// Rejected as a whole for some row: redo the chunk as a $batch,
		// which answers each row separately, so the good rows land and
		// the bad ones are reported with the service's own error.
	}
	s.writeBatch(ctx, g, batch, prep, chunk, errs)
}

func (s *Sink) bulkUnsupported(table string) bool {
	_, ok := s.noBulk.Load(table)
	return ok
}

// writeBatch writes one chunk as a $batch of independent requests
// (continue-on-error, no change sets), then resends only the requests
// that failed temporarily, up to the retry limit.
func (s *Sink) writeBatch(ctx context.Context, g group, batch []change.Record, prep []prepared, chunk []int, errs []error) {
	pending := chunk
	var st retryState
	for {
		parts := make([]odataclient.BatchPart, len(pending))
		for k, i := range pending {
			var err error
			if g.delete {
				parts[k].Request, err = odataclient.DeleteRequest(g.set, prep[i].key, s.opts)
			} else {
				parts[k].Request, err = odataclient.UpsertRequest(g.set, prep[i].key, prep[i].body, s.opts)
			}
			if err != nil {
				// rowKey and the set name were checked already; a
				// failure here is a bug, but must not lose the record.
				errs[i] = change.Permanent(fmt.Errorf("dataverse sink: %s: %w", &batch[i], err))
				return
			}
		}
		var res []odataclient.BatchResponse
		err := s.send(ctx, func(ctx context.Context) error {
			var err error
			res, err = s.client.Batch(ctx, parts, odataclient.BatchOptions{ContinueOnError: true})
			return err
		})
		if err != nil {
			if s.mode == ModeAuto && batchUnsupported(err) {
				s.noBatch.Store(true)
				s.writeSingles(ctx, batch, pending, errs)
				return
			}
			err = classify(ctx, fmt.Errorf("dataverse sink: $batch of %d %ss of %s: %w", len(pending), kind(g), g.table, err))
			for _, i := range pending {
				errs[i] = err
			}
			return
		}
		var retry []int
		var pause time.Duration
		throttledAny := false
		for k, r := range res {
			i := pending[k]
			switch {
			case r.Err == nil, g.delete && rowAbsent(r.Err):
				errs[i] = nil
				continue
			case temporary(ctx, r.Err):
				retry = append(retry, i)
				if w, ok := throttleWait(r.Err); ok {
					throttledAny = true
					pause = max(pause, w)
				}
			}
			errs[i] = classify(ctx, fmt.Errorf("dataverse sink: %s %s: %w", kind(g), &batch[i], r.Err))
		}
		if throttledAny && pause == 0 {
			pause = s.retry.backoff(st.failures)
		}
		if len(retry) == 0 || !s.retry.next(&st, throttledAny, pause) {
			return
		}
		if throttledAny {
			s.limiter.throttle(pause)
		} else if sleep(ctx, s.retry.backoff(st.failures-1)) != nil {
			return
		}
		s.limiter.countRetry()
		pending = retry
	}
}

func kind(g group) string {
	if g.delete {
		return "delete"
	}
	return "upsert"
}

// batchUnsupported reports whether err says the service has no $batch
// endpoint (an older emulator, a restrictive proxy).
func batchUnsupported(err error) bool {
	var oe *odataclient.Error
	if !errors.As(err, &oe) || !strings.HasSuffix(oe.URL, "/$batch") {
		return false
	}
	switch oe.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		return true
	}
	return false
}
