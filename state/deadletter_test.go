package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/dvsync/dvsync/change"
)

func TestStoreDeadLetterGetAndDelete(t *testing.T) {
	eachStore(t, func(t *testing.T, open opener) {
		testDeadLetterGetAndDelete(t, open.must(t))
	})
}

func testDeadLetterGetAndDelete(t *testing.T, s Store) {
	ctx := context.Background()
	write := letter("app", 1)
	write.Sources = []change.Record{letter("app", 10).Record, letter("app", 11).Record}
	write.Sources[1].Op = change.OpUpdate
	mapStage := letter("app", 2)
	mapStage.Stage = "map"
	if err := s.PutDeadLetters(ctx, []DeadLetter{write, mapStage, letter("other", 3)}); err != nil {
		t.Fatal(err)
	}
	list, err := s.DeadLetters(ctx, "app", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID == 0 || list[1].ID <= list[0].ID {
		t.Fatalf("IDs of listed letters: %+v", list)
	}

	got, err := s.DeadLetter(ctx, "app", list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	write.ID = list[0].ID
	assertLetter(t, got, write)
	if got, err := s.DeadLetter(ctx, "app", list[1].ID); err != nil || got.Sources != nil || got.Stage != "map" {
		t.Errorf("map-stage letter = %+v, %v; want no sources", got, err)
	}

	// A letter is found only under its own pipeline.
	other, err := s.DeadLetters(ctx, "other", 0)
	if err != nil || len(other) != 1 {
		t.Fatalf("other pipeline: %v, %v", other, err)
	}
	if _, err := s.DeadLetter(ctx, "app", other[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeadLetter of another pipeline's ID: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteDeadLetter(ctx, "app", other[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteDeadLetter of another pipeline's ID: err = %v, want ErrNotFound", err)
	}

	if err := s.DeleteDeadLetter(ctx, "app", write.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeadLetter(ctx, "app", write.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("after delete: err = %v, want ErrNotFound", err)
	}
	if err := s.DeleteDeadLetter(ctx, "app", write.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
	assertReasons(t, s, "app", 0, "reason 2")
	assertReasons(t, s, "other", 0, "reason 3")
}

// Letters written by the first layout, which held one record and no
// sources, stay readable.
func TestBoltReadsVersion1DeadLetters(t *testing.T) {
	s, _ := openTemp(t)
	dl := letter("app", 7)
	v1 := []byte{deadLetterV1}
	v1 = appendString(v1, dl.Pipeline)
	v1 = appendString(v1, dl.Stage)
	v1 = appendString(v1, dl.Reason)
	v1 = appendTime(v1, dl.Time)
	v1 = AppendRecord(v1, &dl.Record)
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketDeadLetters).Put(deadLetterKey("app", 42), v1)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.DeadLetter(context.Background(), "app", 42)
	if err != nil {
		t.Fatal(err)
	}
	dl.ID = 42
	assertLetter(t, got, dl)
}

func TestDecodeDeadLetterRejectsCorruption(t *testing.T) {
	dl := letter("app", 1)
	dl.Sources = []change.Record{dl.Record}
	enc := appendDeadLetter(nil, &dl)
	seq := []byte{0, 0, 0, 0, 0, 0, 0, 1}
	for n := range len(enc) {
		if _, err := decodeDeadLetter(seq, enc[:n]); err == nil {
			t.Fatalf("decoding %d of %d bytes succeeded", n, len(enc))
		}
	}
	if _, err := decodeDeadLetter(seq, append(bytes.Clone(enc), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	bad := bytes.Clone(enc)
	bad[0] = 9
	if _, err := decodeDeadLetter(seq, bad); err == nil {
		t.Error("unknown version accepted")
	}
}

func assertLetter(t *testing.T, got, want DeadLetter) {
	t.Helper()
	enc := func(dl DeadLetter) []byte {
		b := appendDeadLetter(nil, &dl)
		// appendDeadLetter does not encode the ID; compare it on its own.
		return binary.BigEndian.AppendUint64(b, dl.ID)
	}
	if !bytes.Equal(enc(got), enc(want)) {
		t.Errorf("letter = %+v\nwant %+v", got, want)
	}
}
