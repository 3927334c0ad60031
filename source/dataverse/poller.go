package dataverse

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// polledTable is a PollTable with its metadata resolved.
type polledTable struct {
	logical, entitySet, primaryID string
	attrs                         map[string]odataclient.Attribute
	query                         odataclient.DeltaQuery
	// failure is the last round's error, nil after a good round.
	failure atomic.Pointer[error]
}

func (pt *polledTable) setFailure(err error) { pt.failure.Store(&err) }

// cursorName is the inbox cursor that holds a table's delta link.
func cursorName(table string) string { return "delta:" + table }

// resolveTable reads the table's metadata: its entity set, primary id and
// column types.
func (s *Source) resolveTable(ctx context.Context, t PollTable) (*polledTable, error) {
	md, err := s.meta.Table(ctx, t.Table)
	if err != nil {
		return nil, fmt.Errorf("dataverse source: poll table %s: %w", t.Table, err)
	}
	pt := &polledTable{
		logical: t.Table, entitySet: md.EntitySetName, primaryID: md.PrimaryIdAttribute,
		attrs: md.Attributes,
		query: odataclient.DeltaQuery{MaxPageSize: s.cfg.Poll.PageSize},
	}
	if len(t.Select) > 0 {
		sel := slices.Clone(t.Select)
		for _, always := range []string{pt.primaryID, "versionnumber", "modifiedon", "_modifiedby_value"} {
			if !slices.Contains(sel, always) {
				sel = append(sel, always)
			}
		}
		pt.query.Select = sel
	}
	return pt, nil
}

// poll runs one table's rounds until ctx ends. Failures are logged and
// reported through Healthy, and the round is tried again after the
// current interval; an expired delta token starts a baseline.
func (s *Source) poll(ctx context.Context, pt *polledTable) {
	p := s.cfg.Poll
	interval := p.MinInterval
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		n, err := s.round(ctx, pt)
		s.rounds.Add(1)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			pt.setFailure(fmt.Errorf("polling %s: %w", pt.logical, err))
			s.log.Warn("change poll failed; retrying", "table", pt.logical, "in", interval, "err", err)
			if wait, ok := change.RetryWait(err); ok && wait > interval {
				interval = min(wait, p.MaxInterval)
			}
		case n > 0:
			pt.setFailure(nil)
			interval = p.MinInterval
		default:
			pt.setFailure(nil)
			interval = min(interval*2, p.MaxInterval)
		}
		timer.Reset(interval)
	}
}

// round reads the changes since the stored delta link, or the whole table
// when there is none or it has expired, and returns how many entries it
// stored.
func (s *Source) round(ctx context.Context, pt *polledTable) (int, error) {
	link, err := s.store.InboxCursor(ctx, s.cfg.Name, cursorName(pt.logical))
	if err != nil {
		return 0, err
	}
	if link == nil {
		return s.baseline(ctx, pt, "first read")
	}
	page, err := s.client.NextDelta(ctx, string(link), pt.query.MaxPageSize)
	if errors.Is(err, odataclient.ErrDeltaTokenExpired) {
		return s.baseline(ctx, pt, "delta token expired")
	}
	if err != nil {
		return 0, err
	}
	stored := 0
	var deletes []candidate
	for {
		cands, err := s.deltaCandidates(pt, page, false)
		if err != nil {
			return stored, err
		}
		// Deletes wait for the round's delta link, which dates them.
		rows := cands[:0]
		for _, c := range cands {
			if c.rec.Op == change.OpDelete {
				deletes = append(deletes, c)
			} else {
				rows = append(rows, c)
			}
		}
		var cursors map[string][]byte
		if page.NextLink == "" {
			// The link moves only with the last page: a round cut short
			// is read again from its start, and the marks drop what was
			// already stored.
			cursors = map[string][]byte{cursorName(pt.logical): []byte(page.DeltaLink)}
			rows = append(rows, datedDeletes(deletes, page.DeltaLink)...)
		}
		n, err := s.admit(ctx, rows, cursors)
		stored += n
		if err != nil || page.NextLink == "" {
			return stored, err
		}
		if page, err = s.client.NextDelta(ctx, page.NextLink, pt.query.MaxPageSize); err != nil {
			return stored, err
		}
	}
}

// datedDeletes gives deletes read with a delta link the version in the
// link's token: Dataverse's (and the emulator's) token starts with the
// version the round reaches ("919042!08/22/2017 08:10:44"), so every
// change before the delete has a versionnumber at or below it, and a late
// webhook delivery of such a change cannot bring the row back. Without a
// readable token the deletes keep no version, and only a repeated delete
// is recognized.
func datedDeletes(deletes []candidate, deltaLink string) []candidate {
	v, ok := tokenVersion(deltaLink)
	if !ok {
		return deletes
	}
	for i := range deletes {
		deletes[i].version, deletes[i].hasVersion = v, true
	}
	return deletes
}

// tokenVersion reads the version from a delta link's $deltatoken.
func tokenVersion(link string) (int64, bool) {
	u, err := url.Parse(link)
	if err != nil {
		return 0, false
	}
	tok := u.Query().Get("$deltatoken")
	vs, _, ok := strings.Cut(tok, "!")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	return v, err == nil && v >= 0
}

// baseline reads every row of the table with a fresh change-tracking
// query and repairs the inbox against it: rows whose version differs from
// the accepted one are stored as reads, and rows the inbox knows as live
// but the table no longer has are stored as deletes. The new delta link is
// stored with the last of them.
func (s *Source) baseline(ctx context.Context, pt *polledTable, why string) (int, error) {
	s.log.Info("reading the whole table", "table", pt.logical, "reason", why)
	// Rows known before the read started: a row created while it runs is
	// not missing, it is new.
	before := s.known(pt.logical)
	seen := map[string]bool{}
	page, err := s.client.TrackChanges(ctx, pt.entitySet, pt.query)
	if err != nil {
		return 0, err
	}
	stored := 0
	for {
		cands, err := s.deltaCandidates(pt, page, true)
		if err != nil {
			return stored, err
		}
		for _, c := range cands {
			seen[c.id] = true
		}
		if page.NextLink == "" {
			break
		}
		n, err := s.admit(ctx, cands, nil)
		stored += n
		if err != nil {
			return stored, err
		}
		if page, err = s.client.NextDelta(ctx, page.NextLink, pt.query.MaxPageSize); err != nil {
			return stored, err
		}
	}
	last, err := s.deltaCandidates(pt, page, true)
	if err != nil {
		return stored, err
	}
	var deletes []candidate
	missing := 0
	for id, was := range before {
		if seen[id] {
			continue
		}
		// Only a row whose mark nothing changed meanwhile: a webhook may
		// have deleted it already, or brought a newer version.
		if now, ok := s.mark(pt.logical, id); !ok || now != was {
			continue
		}
		c, err := deleteCandidate(pt, id, "missing from a full read")
		if err != nil {
			return stored, err
		}
		deletes = append(deletes, c)
		missing++
	}
	last = append(last, datedDeletes(deletes, page.DeltaLink)...)
	n, err := s.admit(ctx, last, map[string][]byte{cursorName(pt.logical): []byte(page.DeltaLink)})
	stored += n
	if err != nil {
		return stored, err
	}
	s.log.Info("table read", "table", pt.logical, "rows", len(seen), "deleted", missing, "stored", stored)
	return stored, nil
}

// deltaCandidates turns a page's entries into candidates.
func (s *Source) deltaCandidates(pt *polledTable, page odataclient.DeltaPage, baseline bool) ([]candidate, error) {
	out := make([]candidate, 0, len(page.Changes))
	for _, ch := range page.Changes {
		if ch.Deleted {
			c, err := deleteCandidate(pt, ch.ID, ch.Reason)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
			continue
		}
		c, err := s.rowCandidate(pt, ch.Row)
		if err != nil {
			return nil, err
		}
		c.baseline = baseline
		out = append(out, c)
	}
	return out, nil
}

func deleteCandidate(pt *polledTable, id, reason string) (candidate, error) {
	v, err := change.ParseUUID(id)
	if err != nil {
		return candidate{}, fmt.Errorf("deleted %s row: id %q is not a GUID", pt.logical, id)
	}
	return candidate{
		id: v.String(),
		rec: change.Record{
			Op: change.OpDelete, Table: pt.logical,
			Key:    change.Key{{Name: pt.primaryID, Value: v}},
			Origin: change.Origin{System: "dataverse"},
			Meta:   map[string]string{"source": "delta", "reason": reason},
		},
	}, nil
}

func (s *Source) rowCandidate(pt *polledTable, raw []byte) (candidate, error) {
	row, err := decodeDeltaRow(raw, pt.attrs)
	if err != nil {
		return candidate{}, fmt.Errorf("%s row: %w", pt.logical, err)
	}
	idv, ok := row.Get(pt.primaryID)
	if !ok || idv.Kind() != change.KindUUID {
		return candidate{}, fmt.Errorf("%s row without its primary id %s", pt.logical, pt.primaryID)
	}
	c := candidate{
		id:     idv.String(),
		upsert: true,
		rec: change.Record{
			Op: change.OpUpdate, Table: pt.logical,
			Key:    change.Key{{Name: pt.primaryID, Value: idv}},
			After:  row,
			Origin: change.Origin{System: "dataverse"},
			Meta:   map[string]string{"source": "delta"},
		},
	}
	if v, ok := row.Get("versionnumber"); ok && v.Kind() == change.KindInt {
		c.version, c.hasVersion = v.Int(), true
		c.rec.Meta["versionnumber"] = formatVersion(c.version)
	}
	if v, ok := row.Get("modifiedon"); ok && v.Kind() == change.KindTimestamp {
		c.rec.CommitTime = v.Time()
	}
	if v, ok := row.Get("modifiedby"); ok && v.Kind() == change.KindUUID {
		c.rec.Origin.Name = v.String()
		c.echo = s.isOwn(v.String())
	}
	return c, nil
}
