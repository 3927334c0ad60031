package dvevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/dvsync/dvsync/change"
)

// ErrUnsupportedMessage is wrapped by Record's error for a message that
// does not create, change or delete the primary row.
var ErrUnsupportedMessage = errors.New("dvevent: message does not change a row")

// Op returns the operation the event's message performs on its primary
// row: Create inserts; Update, Assign, SetState and Merge (which updates
// the surviving row) update; Delete deletes. ok is false for any other
// message.
func (ev *Event) Op() (op change.Op, ok bool) {
	switch ev.MessageName {
	case "Create":
		return change.OpInsert, true
	case "Update", "Assign", "SetState", "SetStateDynamicEntity", "Merge":
		return change.OpUpdate, true
	case "Delete":
		return change.OpDelete, true
	}
	return 0, false
}

// PrimaryIDAttribute returns the name of the primary id column: the
// attribute of the target or an image named <table>id when present,
// otherwise the first one ending in "id" whose value is the primary row's
// id, otherwise <table>id (the convention of every table but activities).
func (ev *Event) PrimaryIDAttribute() string {
	conventional := ev.PrimaryEntityName + "id"
	var candidate string
	scan := func(r change.Row) bool {
		for _, c := range r {
			if c.Name == conventional {
				candidate = conventional
				return true
			}
			if candidate == "" && len(c.Name) > 2 && c.Name[len(c.Name)-2:] == "id" &&
				c.Value.Kind() == change.KindUUID && c.Value.String() == ev.PrimaryEntityID {
				candidate = c.Name
			}
		}
		return false
	}
	rows := []change.Row{}
	if ev.Target != nil {
		rows = append(rows, ev.Target.Attributes)
	}
	for _, im := range ev.PostEntityImages {
		rows = append(rows, im.Entity.Attributes)
	}
	for _, im := range ev.PreEntityImages {
		rows = append(rows, im.Entity.Attributes)
	}
	for _, r := range rows {
		if scan(r) {
			return conventional
		}
	}
	if candidate != "" {
		return candidate
	}
	return conventional
}

// Record returns the change the event describes:
//
//   - Op from the message (see Op); Table the primary table's logical
//     name; Key the primary id column (PrimaryIDAttribute) with the row's
//     id as a UUID;
//   - Before the pre-images laid over each other, nil without one;
//   - After, except for deletes, the post-images laid over each other with
//     the target's attributes on top (what the request set wins over an
//     image of a differently filtered step), plus for Assign the new
//     ownerid and for SetState the new statecode and statuscode; the
//     primary id column is always present. Columns neither carries are
//     absent: a consumer treats them as unchanged;
//   - CommitTime from OperationCreatedOn; Origin {dataverse, UserId};
//   - Meta: message, correlation_id, operation_id, and when known
//     request_id, initiating_user_id, versionnumber, tag and
//     size_exceeded.
//
// Position is left to the caller. Record fails, wrapping
// ErrUnsupportedMessage, for a message that changes no row.
func (ev *Event) Record() (change.Record, error) {
	op, ok := ev.Op()
	if !ok {
		return change.Record{}, fmt.Errorf("%w: %s on %s", ErrUnsupportedMessage, ev.MessageName, ev.PrimaryEntityName)
	}
	idAttr := ev.PrimaryIDAttribute()
	id, err := change.ParseUUID(ev.PrimaryEntityID)
	if err != nil {
		return change.Record{}, fmt.Errorf("dvevent: PrimaryEntityId: %w", err)
	}
	rec := change.Record{
		Op:         op,
		Table:      ev.PrimaryEntityName,
		Key:        change.Key{{Name: idAttr, Value: id}},
		CommitTime: ev.OperationCreatedOn,
		Origin:     change.Origin{System: "dataverse", Name: ev.UserID},
		Meta: map[string]string{
			"message":        ev.MessageName,
			"correlation_id": ev.CorrelationID,
			"operation_id":   ev.OperationID,
		},
	}
	for _, im := range ev.PreEntityImages {
		rec.Before = change.Merge(rec.Before, im.Entity.Attributes)
	}
	if op != change.OpDelete {
		for _, im := range ev.PostEntityImages {
			rec.After = change.Merge(rec.After, im.Entity.Attributes)
		}
		if ev.Target != nil && !ev.Target.Reference {
			rec.After = change.Merge(rec.After, ev.Target.Attributes)
		}
		if err := ev.applyMessage(&rec); err != nil {
			return change.Record{}, err
		}
		rec.After = rec.After.Set(idAttr, id)
	}
	if ev.RequestID != "" {
		rec.Meta["request_id"] = ev.RequestID
	}
	if ev.InitiatingUserID != "" && ev.InitiatingUserID != ev.UserID {
		rec.Meta["initiating_user_id"] = ev.InitiatingUserID
	}
	if v, ok := ev.Version(); ok {
		rec.Meta["versionnumber"] = strconv.FormatInt(v, 10)
	}
	if tag := ev.Tag(); tag != "" {
		rec.Meta["tag"] = tag
	}
	if ev.SizeExceeded {
		rec.Meta["size_exceeded"] = "true"
	}
	return rec, nil
}

// applyMessage adds what Assign, SetState and Merge change but carry in
// parameters rather than in a target entity.
func (ev *Event) applyMessage(rec *change.Record) error {
	param := func(name string) (change.Value, string, bool, error) {
		raw, ok := ev.InputParameters.Get(name)
		if !ok || isNull(raw) {
			return change.Value{}, "", false, nil
		}
		v, table, err := decodeValue(raw)
		if err != nil {
			return change.Value{}, "", false, fmt.Errorf("dvevent: InputParameters %s: %w", name, err)
		}
		return v, table, true, nil
	}
	switch ev.MessageName {
	case "Assign":
		v, table, ok, err := param("Assignee")
		if err != nil {
			return err
		}
		if ok {
			rec.After = rec.After.Set("ownerid", v)
			if table != "" {
				rec.After = rec.After.Set("ownerid"+LookupNameSuffix, change.Text(table))
			}
		}
	case "SetState", "SetStateDynamicEntity":
		for _, pc := range [][2]string{{"State", "statecode"}, {"Status", "statuscode"}} {
			v, _, ok, err := param(pc[0])
			if err != nil {
				return err
			}
			if ok {
				rec.After = rec.After.Set(pc[1], v)
			}
		}
	case "Merge":
		// UpdateContent holds the columns copied from the subordinate to
		// the surviving row.
		raw, ok := ev.InputParameters.Get("UpdateContent")
		if ok && !isNull(raw) {
			e, err := decodeEntity(json.RawMessage(raw))
			if err != nil {
				return fmt.Errorf("dvevent: InputParameters UpdateContent: %w", err)
			}
			rec.After = change.Merge(rec.After, e.Attributes)
		}
	}
	return nil
}
