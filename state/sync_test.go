package state

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
)

func TestSyncEntries(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		ss := open.must(t).(SyncStore)
		keys := [][]byte{[]byte("k1"), []byte("k2"), {0, 1}}
		// Reads before any write find nothing, and create nothing.
		_, found, err := ss.SyncEntries(ctx, "m", keys)
		if err != nil || found[0] || found[1] || found[2] {
			t.Fatalf("empty store: found %v, %v", found, err)
		}
		at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		e1 := SyncEntry{
			Values:     change.Row{{Name: "id", Value: change.Int(1)}, {Name: "name", Value: change.Text("a")}},
			SourceSeen: 7, DataverseSeen: 1 << 63, SourceTime: at, DataverseVersion: `W/"42"`,
			DataverseTime: at.Add(time.Second), DataverseOwed: true, Decisions: 3, Updated: at,
		}
		e2 := SyncEntry{Deleted: true, SourceOwed: true, Updated: at,
			SourceBefore: change.Row{{Name: "name", Value: change.Text("b")}}, SourceBeforeDeleted: true}
		if err := ss.PutSyncEntries(ctx, "m", keys[:2], []SyncEntry{e1, e2}); err != nil {
			t.Fatal(err)
		}
		// Another mapping's entries are separate.
		if err := ss.PutSyncEntries(ctx, "m2", keys[:1], []SyncEntry{e2}); err != nil {
			t.Fatal(err)
		}
		// Reopened, as after a restart.
		ss.(Store).Close()
		ss = open.must(t).(SyncStore)
		got, found, err := ss.SyncEntries(ctx, "m", keys)
		if err != nil {
			t.Fatal(err)
		}
		if !found[0] || !found[1] || found[2] {
			t.Fatalf("found %v", found)
		}
		if !reflect.DeepEqual(got[0], e1) || !reflect.DeepEqual(got[1], e2) {
			t.Errorf("got %+v\n want %+v, %+v", got[:2], e1, e2)
		}
		e1.Values = nil
		e1.Deleted = true
		if err := ss.PutSyncEntries(ctx, "m", keys[:1], []SyncEntry{e1}); err != nil {
			t.Fatal(err)
		}
		got, _, err = ss.SyncEntries(ctx, "m", keys[:1])
		if err != nil || !reflect.DeepEqual(got[0], e1) {
			t.Errorf("after replace: %+v, %v", got, err)
		}
		if err := ss.PutSyncEntries(ctx, "m", keys[:1], nil); err == nil {
			t.Error("mismatched keys and entries accepted")
		}
	})
}

func TestParkedConflicts(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		ss := open.must(t).(SyncStore)
		if cs, err := ss.ParkedConflicts(ctx, "m", 0); err != nil || len(cs) != 0 {
			t.Fatalf("empty store: %v, %v", cs, err)
		}
		if _, err := ss.ParkedConflict(ctx, "m", 1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing conflict: %v", err)
		}
		at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		c := ParkedConflict{
			Mapping: "m", Key: change.Key{{Name: "id", Value: change.Int(1)}}, SyncKey: []byte("k1"),
			Base: change.Row{{Name: "name", Value: change.Text("a")}}, BaseKnown: true,
			Source: change.Row{{Name: "name", Value: change.Text("s")}}, DataverseDeleted: true,
			SourceTime: at, DataverseTime: at.Add(time.Minute), DataverseVersion: `W/"9"`, Detected: at,
		}
		id1, err := ss.ParkConflict(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		id2, err := ss.ParkConflict(ctx, ParkedConflict{Mapping: "m", Key: c.Key, Detected: at})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ss.ParkConflict(ctx, ParkedConflict{Mapping: "other", Key: c.Key}); err != nil {
			t.Fatal(err)
		}
		if id2 <= id1 {
			t.Errorf("ids %d, %d do not increase", id1, id2)
		}
		got, err := ss.ParkedConflict(ctx, "m", id1)
		c.ID = id1
		if err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("got %+v, %v\nwant %+v", got, err, c)
		}
		list, err := ss.ParkedConflicts(ctx, "m", 0)
		if err != nil || len(list) != 2 || list[0].ID != id1 || list[1].ID != id2 {
			t.Fatalf("list %+v, %v", list, err)
		}
		if list, _ := ss.ParkedConflicts(ctx, "m", 1); len(list) != 1 {
			t.Errorf("limit 1 returned %d", len(list))
		}
		if err := ss.DeleteParkedConflict(ctx, "m", id1); err != nil {
			t.Fatal(err)
		}
		if err := ss.DeleteParkedConflict(ctx, "m", id1); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
		if list, _ := ss.ParkedConflicts(ctx, "m", 0); len(list) != 1 || list[0].ID != id2 {
			t.Errorf("after delete: %+v", list)
		}
	})
}

// An entry stored before Decisions was kept reads as one with none.
func TestSyncEntryWithoutDecisions(t *testing.T) {
	e := SyncEntry{Values: change.Row{{Name: "id", Value: change.Int(1)}}, DataverseVersion: `W/"4"`, Decisions: 9}
	b := appendSyncEntry(nil, &e)
	got, err := decodeSyncEntry(b[:len(b)-8])
	if err != nil {
		t.Fatal(err)
	}
	e.Decisions = 0
	if !reflect.DeepEqual(got, e) {
		t.Errorf("got %+v, want %+v", got, e)
	}
	if _, err := decodeSyncEntry(append(b, 0)); err == nil {
		t.Error("a trailing byte was accepted")
	}
}
