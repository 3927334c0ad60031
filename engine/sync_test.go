package engine

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
	"github.com/dvsync/dvsync/state"
)

func TestNewSyncChecksConfig(t *testing.T) {
	_, err := NewSync(SyncConfig{CacheSize: -1, Rules: conflict.Rules{Policy: "lww"}})
	if err == nil {
		t.Fatal("empty config accepted")
	}
	for _, want := range []string{"Mapping", "Store", "Columns", "Reverse", "CacheSize", "lww"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	st, err := state.OpenBolt(t.TempDir() + "/s.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	reg := prometheus.NewRegistry()
	ok := SyncConfig{Mapping: "m", Columns: []string{"id"}, Store: st, Metrics: reg,
		Reverse: func(r *change.Record) (change.Record, bool, error) { return *r, true, nil }}
	a, err := NewSync(ok)
	if err != nil {
		t.Fatal(err)
	}
	ok.Mapping = "n"
	b, err := NewSync(ok) // a second mapping on the same registry shares the counter
	if err != nil {
		t.Fatal(err)
	}
	if a.conflicts != b.conflicts {
		t.Error("two Syncs on one registry count in different collectors")
	}
}

func TestVersionNumber(t *testing.T) {
	for etag, want := range map[string]int64{`W/"1234"`: 1234, `"7"`: 7, "": -1, "W/\"x\"": -1} {
		if got := versionNumber(etag); got != want {
			t.Errorf("versionNumber(%q) = %d, want %d", etag, got, want)
		}
	}
	if !newerVersion(`W/"5"`, `W/"4"`) || newerVersion(`W/"3"`, `W/"4"`) || newerVersion("", `W/"4"`) || !newerVersion(`W/"1"`, "") {
		t.Error("newerVersion orders wrongly")
	}
}
