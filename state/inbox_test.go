package state

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// inboxStore is what the inbox tests need of a store.
type inboxStore interface {
	Store
	InboxAppend(ctx context.Context, inbox string, w InboxWrite) (uint64, error)
	InboxEntries(ctx context.Context, inbox string, after uint64, limit int) ([]InboxEntry, error)
	InboxAck(ctx context.Context, inbox string, through uint64) error
	InboxMarks(ctx context.Context, inbox string) ([]InboxMark, error)
	InboxPruneMarks(ctx context.Context, inbox, table string, below int64) error
	InboxCursor(ctx context.Context, inbox, name string) ([]byte, error)
	InboxKeep(ctx context.Context, inbox string, k KeptBody) error
	InboxKept(ctx context.Context, inbox string, limit int) ([]KeptBody, error)
}

var (
	_ inboxStore = (*Bolt)(nil)
	_ inboxStore = (*Postgres)(nil)
)

func TestInbox(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		s := open.must(t).(inboxStore)

		// An inbox nobody wrote to reads as empty.
		if es, err := s.InboxEntries(ctx, "in", 0, 0); err != nil || len(es) != 0 {
			t.Fatalf("fresh inbox: %v, %v", es, err)
		}
		if c, err := s.InboxCursor(ctx, "in", "delta"); err != nil || c != nil {
			t.Fatalf("fresh cursor: %q, %v", c, err)
		}
		first, err := s.InboxAppend(ctx, "in", InboxWrite{
			Entries: [][]byte{[]byte("a"), []byte("b")},
			Marks:   []InboxMark{{Table: "account", ID: "1", Version: 5}, {Table: "account", ID: "2", Version: 6}},
			Cursors: map[string][]byte{"delta": []byte("link-1")},
		})
		if err != nil || first != 1 {
			t.Fatalf("append: first %d, %v", first, err)
		}
		if _, err := s.InboxAppend(ctx, "other", InboxWrite{Entries: [][]byte{[]byte("x")}}); err != nil {
			t.Fatal(err)
		}
		first, err = s.InboxAppend(ctx, "in", InboxWrite{
			Entries: [][]byte{[]byte("c")},
			Marks:   []InboxMark{{Table: "account", ID: "1", Version: 7, Deleted: true}, {Table: "$op", ID: "o", Version: 100}},
			Cursors: map[string][]byte{"delta": []byte("link-2"), "gone": nil},
		})
		if err != nil || first != 3 {
			t.Fatalf("second append: first %d, %v", first, err)
		}
		if err := s.InboxAck(ctx, "in", 1); err != nil {
			t.Fatal(err)
		}
		if err := s.InboxPruneMarks(ctx, "in", "$op", 101); err != nil {
			t.Fatal(err)
		}
		if err := s.InboxKeep(ctx, "in", KeptBody{Reason: "malformed", Body: []byte("{")}); err != nil {
			t.Fatal(err)
		}

		// A restarted process sees what was durable.
		s.Close()
		s = open.must(t).(inboxStore)
		es, err := s.InboxEntries(ctx, "in", 0, 0)
		if err != nil || len(es) != 2 || es[0].Seq != 2 || string(es[0].Data) != "b" || es[1].Seq != 3 || string(es[1].Data) != "c" {
			t.Fatalf("entries after ack and reopen: %+v, %v", es, err)
		}
		if es, _ := s.InboxEntries(ctx, "in", 2, 1); len(es) != 1 || es[0].Seq != 3 {
			t.Errorf("entries after 2, limit 1: %+v", es)
		}
		marks, err := s.InboxMarks(ctx, "in")
		want := []InboxMark{{Table: "account", ID: "1", Version: 7, Deleted: true}, {Table: "account", ID: "2", Version: 6}}
		if err != nil || len(marks) != len(want) || marks[0] != want[0] || marks[1] != want[1] {
			t.Errorf("marks = %+v, %v; want %+v", marks, err, want)
		}
		if c, _ := s.InboxCursor(ctx, "in", "delta"); string(c) != "link-2" {
			t.Errorf("cursor = %q", c)
		}
		kept, err := s.InboxKept(ctx, "in", 0)
		if err != nil || len(kept) != 1 || kept[0].Reason != "malformed" || !bytes.Equal(kept[0].Body, []byte("{")) ||
			time.Since(kept[0].Time) > time.Minute || kept[0].ID == 0 {
			t.Errorf("kept = %+v, %v", kept, err)
		}
		// Sequence numbers are never reused, even once every entry is acked.
		if err := s.InboxAck(ctx, "in", 3); err != nil {
			t.Fatal(err)
		}
		if first, err := s.InboxAppend(ctx, "in", InboxWrite{Entries: [][]byte{[]byte("d")}}); err != nil || first != 4 {
			t.Errorf("append after acking all: first %d, %v", first, err)
		}
		if es, _ := s.InboxEntries(ctx, "other", 0, 0); len(es) != 1 || string(es[0].Data) != "x" {
			t.Errorf("other inbox = %+v", es)
		}
	})
}

// A mark's foreign version survives a restart, whether it equals the
// version (the encoding marks had before they had one) or not; a mark
// stored without one reads it as its version.
func TestInboxMarkForeignVersion(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		ctx := context.Background()
		s := open.must(t).(inboxStore)
		marks := []InboxMark{
			{Table: "account", ID: "1", Version: 7, Foreign: 3},
			{Table: "account", ID: "2", Version: 6, Foreign: 6},
			{Table: "account", ID: "3", Version: 5, Deleted: true},
		}
		if _, err := s.InboxAppend(ctx, "in", InboxWrite{Marks: marks}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		s = open.must(t).(inboxStore)
		got, err := s.InboxMarks(ctx, "in")
		if err != nil || len(got) != len(marks) || got[0] != marks[0] || got[1] != marks[1] || got[2] != marks[2] {
			t.Fatalf("marks = %+v, %v; want %+v", got, err, marks)
		}
		if pg, ok := s.(*Postgres); ok {
			if _, err := pg.pool.Exec(ctx, `UPDATE "dvsync state".dvsync_inbox_marks SET foreign_version = NULL WHERE id = '1'`); err != nil {
				t.Fatal(err)
			}
			got, err := s.InboxMarks(ctx, "in")
			if want := (InboxMark{Table: "account", ID: "1", Version: 7, Foreign: 7}); err != nil || got[0] != want {
				t.Errorf("a mark without a foreign version reads %+v, %v; want %+v", got[0], err, want)
			}
		}
	})
}
