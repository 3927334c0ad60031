package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// Conditional writes. A record whose Meta holds change.MetaExpectedVersion
// is written with its own request, never in a bulk message (which has no
// per-row If-Match): the value, unless empty, is sent as If-Match, and an
// upsert asks for the written row back so that its new ETag can be
// reported under change.MetaVersion in the record's Meta. A write refused
// because the row changed (412), or because the row an update expected is
// gone, fails with a *change.ConflictError carrying the row as it is now.

// expected returns the version rec's write must find, and whether the
// write is conditional (or must at least report the new version).
func expected(rec *change.Record) (string, bool) {
	v, ok := rec.Meta[change.MetaExpectedVersion]
	return v, ok
}

// splitVersioned returns the indexes of batch's conditional records.
func splitVersioned(batch []change.Record) []int {
	var idx []int
	for i := range batch {
		if _, ok := expected(&batch[i]); ok {
			idx = append(idx, i)
		}
	}
	return idx
}

// writeVersioned writes one conditional record and returns its classified
// error.
func (s *Sink) writeVersioned(ctx context.Context, rec *change.Record, buf *[]byte) error {
	set, err := s.sets.lookup(ctx, rec.Table)
	if err != nil {
		return classifyLookup(ctx, fmt.Errorf("dataverse sink: entity set of %s: %w", rec.Table, err))
	}
	key, err := rowKey(rec.Table, rec.Key)
	if err != nil {
		return change.Permanent(fmt.Errorf("dataverse sink: %s: %w", rec, err))
	}
	ifMatch, _ := expected(rec)
	opts := s.opts
	opts.IfMatch = ifMatch
	switch rec.Op {
	case change.OpDelete:
		err = s.send(ctx, func(ctx context.Context) error {
			return s.client.Delete(ctx, set, key, opts)
		})
		if rowAbsent(err) {
			// Gone already: whoever deleted it, the row is as this write
			// wants it.
			return nil
		}
	case change.OpInsert, change.OpUpdate, change.OpRead:
		body, encErr := appendBody((*buf)[:0], rec.After)
		*buf = body[:0]
		if encErr != nil {
			return change.Permanent(fmt.Errorf("dataverse sink: %s: %w", rec, encErr))
		}
		opts.ReturnRepresentation = true
		var res odataclient.Result
		err = s.send(ctx, func(ctx context.Context) error {
			var err error
			res, err = s.client.Upsert(ctx, set, key, body, opts)
			return err
		})
		if err == nil {
			rec.Meta[change.MetaVersion] = res.ETag
			return nil
		}
	default:
		return change.Permanent(fmt.Errorf("dataverse sink: %s: unknown operation", rec))
	}
	if err == nil {
		return nil
	}
	var oe *odataclient.Error
	if ifMatch != "" && errors.As(err, &oe) &&
		(oe.StatusCode == http.StatusPreconditionFailed || rowAbsent(err)) && ctx.Err() == nil {
		if cerr := s.conflict(ctx, rec, set, key, err); cerr != nil {
			return cerr
		}
	}
	return classify(ctx, fmt.Errorf("dataverse sink: %s %s: %w", opName(rec.Op), rec.Table, err))
}

// conflict reads the row a conditional write was refused for and returns
// the conflict error, or nil when the refusal was not about the row's
// version (a 404 for a row the record binds to, while its own row exists
// at the expected version).
func (s *Sink) conflict(ctx context.Context, rec *change.Record, set string, key odataclient.Key, cause error) error {
	var body json.RawMessage
	var etag string
	err := s.send(ctx, func(ctx context.Context) error {
		var err error
		body, etag, err = s.client.Retrieve(ctx, set, key, odataclient.Query{})
		return err
	})
	ifMatch, _ := expected(rec)
	switch {
	case rowAbsent(err):
		return &change.ConflictError{Err: fmt.Errorf("dataverse sink: %s: the row was deleted: %w", rec, cause), Deleted: true}
	case err != nil:
		return classify(ctx, fmt.Errorf("dataverse sink: %s: read the row after a refused conditional write: %w", rec, err))
	case etag == ifMatch:
		return nil
	}
	row, err := decodeRow(body)
	if err != nil {
		return change.Permanent(fmt.Errorf("dataverse sink: %s: read the row after a refused conditional write: %w", rec, err))
	}
	cerr := &change.ConflictError{Err: fmt.Errorf("dataverse sink: %s: the row changed: %w", rec, cause), Current: row, Version: etag}
	if v, ok := row.Get("modifiedon"); ok && v.Kind() == change.KindTimestamp {
		cerr.Time = v.Time()
	}
	return cerr
}

// dateTime matches the Web API's Edm.DateTimeOffset values.
var dateTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$`)

// decodeRow turns a row's JSON object into a change row, without the
// metadata that would type it: annotations are dropped, numbers become
// integers or decimals, date-times timestamps, other strings text. That is
// enough for comparisons, which go by canonical value (package conflict).
func decodeRow(doc []byte) (change.Row, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, err
	}
	var row change.Row
	for name, v := range obj {
		if bytes.IndexByte([]byte(name), '@') >= 0 {
			continue
		}
		row = append(row, change.Column{Name: name, Value: jsonValue(v)})
	}
	return row, nil
}

func jsonValue(v any) change.Value {
	switch x := v.(type) {
	case nil:
		return change.Null()
	case bool:
		return change.Bool(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return change.Int(i)
		}
		if d, err := change.Decimal(x.String()); err == nil {
			return d
		}
		return change.Text(x.String())
	case string:
		if dateTime.MatchString(x) {
			if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return change.Timestamp(t)
			}
		}
		return change.Text(x)
	}
	b, _ := json.Marshal(v)
	return change.JSON(b)
}
