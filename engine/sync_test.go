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

// A key spelled as text by one side and as a number by the other
// addresses one row's sync state; other text stays text.
func TestSyncKeyReadsIntegerText(t *testing.T) {
	key := func(v change.Value) change.Key { return change.Key{{Name: "id", Value: v}} }
	if a, b := syncKey(key(change.Int(7))), syncKey(key(change.Text("7"))); string(a) != string(b) {
		t.Error(`7 and "7" address different rows`)
	}
	for _, s := range []string{"07", "7.0", "+7", "-0", "x7"} {
		if a, b := syncKey(key(change.Int(7))), syncKey(key(change.Text(s))); string(a) == string(b) {
			t.Errorf("%q addresses the row of 7", s)
		}
	}
	k := change.Key{{Name: "a", Value: change.Text("1")}, {Name: "b", Value: change.Text("q")}}
	_ = syncKey(k)
	if k[0].Value.Kind() != change.KindText {
		t.Error("syncKey modified its argument")
	}
}
