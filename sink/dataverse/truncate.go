package dataverse

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// truncatePage is how many rows one round of a truncate reads and deletes.
const truncatePage = 1000

// truncate deletes every row of rec.Table. Dataverse has no TRUNCATE: the
// rows are read a page of ids at a time and deleted through the usual
// write path (bulk or $batch), and the first page is read again until it
// comes back empty, since paging on through a shrinking table would skip
// rows. Rows created in Dataverse by others are deleted too: that is what
// a mapping asking for truncate: delete wants.
func (s *Sink) truncate(ctx context.Context, rec *change.Record) error {
	def, err := s.client.EntityDefinition(ctx, rec.Table)
	if err != nil {
		return classifyLookup(ctx, fmt.Errorf("dataverse sink: truncate %s: %w", rec.Table, err))
	}
	set, err := s.sets.lookup(ctx, rec.Table)
	if err != nil {
		return classifyLookup(ctx, fmt.Errorf("dataverse sink: entity set of %s: %w", rec.Table, err))
	}
	id := def.PrimaryIdAttribute
	for {
		var page odataclient.Page
		err := s.send(ctx, func(ctx context.Context) error {
			var err error
			page, err = s.client.List(ctx, set, odataclient.Query{Select: []string{id}, Top: truncatePage})
			return err
		})
		if err != nil {
			return classify(ctx, fmt.Errorf("dataverse sink: truncate %s: list rows: %w", rec.Table, err))
		}
		if len(page.Rows) == 0 {
			return nil
		}
		dels := make([]change.Record, 0, len(page.Rows))
		for _, raw := range page.Rows {
			var row map[string]any
			if err := json.Unmarshal(raw, &row); err != nil {
				return change.Permanent(fmt.Errorf("dataverse sink: truncate %s: %w", rec.Table, err))
			}
			text, _ := row[id].(string)
			v, err := change.ParseUUID(text)
			if err != nil {
				return change.Permanent(fmt.Errorf("dataverse sink: truncate %s: row id %q: %w", rec.Table, text, err))
			}
			dels = append(dels, change.Record{Op: change.OpDelete, Table: rec.Table, Key: change.Key{{Name: id, Value: v}}})
		}
		errs := make([]error, len(dels))
		s.writeAny(ctx, dels, errs)
		if err := result(ctx, errs); err != nil {
			return fmt.Errorf("dataverse sink: truncate %s: %w", rec.Table, err)
		}
	}
}
