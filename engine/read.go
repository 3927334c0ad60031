package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/state"
)

// reader is the read loop's state, reused from one Read to the next.
type reader struct {
	p      *Pipeline
	routed [][]item // per worker, the records of the current Read
	// keys holds the route keys of the records routed since the last
	// dispatch, end to end, and keyAt where each item's key lies in it:
	// dispatch converts them to one string that the items' keys share.
	keys     []byte
	keyAt    []keySpan
	dead     []state.DeadLetter
	deadSeqs []uint64
	skipSeqs []uint64
	mapped   uint64 // records mapOne routed since the last dispatch
	readCtr  *counterCache
}

// readLoop reads from the source until ctx ends or something fails, then
// closes the workers' inboxes so they drain and return.
func (p *Pipeline) readLoop(ctx context.Context) {
	r := &reader{p: p, routed: make([][]item, len(p.workers)), readCtr: newCounterCache(p.metrics.read)}
	p.pause.mu.Lock()
	p.pause.reader, p.pause.readCtx = r, ctx
	p.pause.mu.Unlock()
	defer func() {
		// Resume must not route to workers that may have returned.
		p.pause.mu.Lock()
		p.pause.reader, p.pause.readCtx = nil, nil
		p.pause.mu.Unlock()
		for _, w := range p.workers {
			w.inbox.close()
		}
	}()
	for {
		recs, err := p.src.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				p.fail(fmt.Errorf("engine: read source: %w", err))
			}
			return
		}
		p.nRead.Add(uint64(len(recs)))
		for i := range recs {
			r.readCtr.add(recs[i].Table, recs[i].Op, 1)
		}
		for len(recs) > 0 {
			var first uint64
			var err error
			n := firstTruncate(recs)
			if n == 0 {
				n, err = 1, r.truncate(ctx, recs[:1])
			} else {
				// Backpressure: add blocks while MaxInFlight records are
				// waiting for the watermark.
				first, n, err = p.tracker.add(ctx, recs[:n])
				if err == nil {
					err = r.route(ctx, first, recs[:n])
				}
			}
			if err != nil {
				if ctx.Err() == nil {
					p.fail(err)
				}
				return
			}
			recs = recs[n:]
		}
	}
}

// route maps records registered from sequence number first on, hands the
// mapped ones to their workers and settles the others: skipped records
// are done at once, failed ones once they are stored as dead letters.
// Records of a paused table are held instead, unmapped, until it resumes;
// a table is paused here when a schema change touches the columns its
// mapping reads.
func (r *reader) route(ctx context.Context, first uint64, recs []change.Record) error {
	p := r.p
	p.pause.mu.Lock()
	defer p.pause.mu.Unlock()
	at := p.now()
	mapper := p.mapper.Load().m
	for i := range recs {
		if reason := schemaChange(mapper, &recs[i]); reason != "" {
			p.pauseForSchema(recs[i].Table, reason)
		}
		if held, ok := p.pause.tables[recs[i].Table]; ok {
			p.pause.tables[recs[i].Table] = append(held, heldRecord{seq: first + uint64(i), rec: recs[i]})
			p.pause.held.Add(1)
			continue
		}
		r.mapOne(mapper, first+uint64(i), at, &recs[i])
	}
	return r.dispatch(ctx)
}

// mapOne maps rec, number seq, and queues the outcome for dispatch.
func (r *reader) mapOne(mapper Mapper, seq uint64, at int64, rec *change.Record) {
	out, ok, err := mapper.Map(rec)
	if err == nil && ok {
		err = checkMapped(&out)
	}
	switch {
	case err != nil:
		r.dead = append(r.dead, state.DeadLetter{
			Pipeline: r.p.cfg.Name, Stage: stageMap, Reason: err.Error(), Time: time.Now(), Record: *rec,
		})
		r.deadSeqs = append(r.deadSeqs, seq)
	case !ok:
		if rec.Op == change.OpTruncate {
			// Dataverse has no truncate, and deleting every row of a
			// table because a source table was emptied is too dangerous
			// to do by default: say so, and leave the rows.
			r.p.log.Warn("TRUNCATE not applied: the destination rows are left as they are", "table", rec.Table)
		}
		r.skipSeqs = append(r.skipSeqs, seq)
	default:
		start := len(r.keys)
		r.keys = appendRouteKey(r.keys, &out)
		w := r.p.workerOf(r.keys[start:])
		r.keyAt = append(r.keyAt, keySpan{worker: w, item: len(r.routed[w]), start: start, end: len(r.keys)})
		r.routed[w] = append(r.routed[w], item{seq: seq, at: at, rec: out, src: rec, table: rec.Table})
		r.mapped++
	}
}

// keySpan places one routed item's key in reader.keys.
type keySpan struct {
	worker, item, start, end int
}

// setKeys gives the routed items their keys, all slices of one string.
func (r *reader) setKeys() {
	if len(r.keyAt) == 0 {
		return
	}
	keys := string(r.keys)
	for _, k := range r.keyAt {
		r.routed[k.worker][k.item].key = keys[k.start:k.end]
	}
	r.keys = r.keys[:0]
	r.keyAt = r.keyAt[:0]
}

// dispatch hands what mapOne queued to the workers, marks skipped records
// done, and stores failed ones as dead letters before marking them done.
func (r *reader) dispatch(ctx context.Context) error {
	p := r.p
	r.setKeys()
	for w, items := range r.routed {
		if len(items) > 0 {
			r.routed[w] = p.workers[w].inbox.push(items)
		}
	}
	p.nMapped.Add(r.mapped)
	p.metrics.mapped.Add(float64(r.mapped))
	r.mapped = 0

	if len(r.skipSeqs) > 0 {
		p.nSkipped.Add(uint64(len(r.skipSeqs)))
		p.metrics.skipped.Add(float64(len(r.skipSeqs)))
		p.tracker.done(r.skipSeqs...)
		r.skipSeqs = r.skipSeqs[:0]
	}
	if len(r.dead) > 0 {
		if err := p.putDeadLetters(ctx, r.dead); err != nil {
			return err
		}
		p.tracker.done(r.deadSeqs...)
		p.deadLettered(stageMap, r.dead)
		clear(r.dead)
		r.dead = r.dead[:0]
		r.deadSeqs = r.deadSeqs[:0]
	}
	return nil
}

// workerOf returns the index of the worker that writes the row with the
// given route key.
func (p *Pipeline) workerOf(routeKey []byte) int {
	return int(maphash.Bytes(p.seed, routeKey) % uint64(len(p.workers)))
}

// appendRouteKey appends the identity of out's row: its table and key,
// encoded so that distinct rows never encode alike. Records with equal
// route keys go to one worker and are folded together.
func appendRouteKey(dst []byte, out *change.Record) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(out.Table)))
	dst = append(dst, out.Table...)
	return out.Key.AppendBinary(dst)
}
