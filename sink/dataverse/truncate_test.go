package dataverse

import (
	"testing"

	"github.com/dvsync/dvsync/change"
)

// TestEmulatorTruncateDeletesEveryRow writes more rows than one round of a
// truncate reads, truncates, and finds the table empty; a truncate of an
// empty table is a no-op.
func TestEmulatorTruncateDeletesEveryRow(t *testing.T) {
	_, c, s := emulatorSink(t, Config{})
	var batch []change.Record
	for i := range truncatePage + 250 {
		batch = append(batch, accountRecord(i, "doomed"))
	}
	for len(batch) > 0 {
		n := min(len(batch), 500)
		if err := s.Write(t.Context(), batch[:n]); err != nil {
			t.Fatal(err)
		}
		batch = batch[n:]
	}
	if n := len(accounts(t, c)); n != truncatePage+250 {
		t.Fatalf("%d accounts before the truncate", n)
	}
	trunc := []change.Record{{Op: change.OpTruncate, Table: "account"}}
	for range 2 {
		if err := s.Write(t.Context(), trunc); err != nil {
			t.Fatal(err)
		}
		if n := len(accounts(t, c)); n != 0 {
			t.Fatalf("%d accounts after the truncate", n)
		}
	}
	if err := s.Write(t.Context(), append(trunc, accountRecord(1, "x"))); !change.IsPermanent(err) {
		t.Errorf("a truncate with company: %v, want a permanent error", err)
	}
}
