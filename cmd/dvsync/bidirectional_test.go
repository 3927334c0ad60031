package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/mapping"
	"github.com/dvsync/dvsync/state"
)

// compileBoth compiles a mapping of public.t with the columns a and b,
// more columns, and the rest of the file.
func compileBoth(t *testing.T, moreColumns, rest string) *mapping.Set {
	t.Helper()
	m, err := mapping.Parse([]byte(`version: 1
name: accounts
source: {connection: app, table: public.t}
dataverse: {table: account}
key: {alternate_key: [accountnumber]}
`+rest+`columns:
  - {source: a, target: accountnumber, type: string}
  - {source: b, target: name}
`+moreColumns), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := mapping.Compile([]*mapping.Mapping{m})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A running bidirectional mapping keeps its conflict rules, name and
// columns synced both ways until a restart; other changes to it reload.
func TestReloadRefusesBidirectionalChanges(t *testing.T) {
	const both = "direction: both\nconflict: {policy: merge}\n"
	r := &reloader{current: compileBoth(t, "", both), pipelines: map[string]*engine.Pipeline{"app": nil, reversePrefix + "app": nil}}
	if err := r.applicable(compileBoth(t, "", both+"filter: b != 'x'\n")); err != nil {
		t.Fatalf("a filter change refused: %v", err)
	}
	if err := r.applicable(compileBoth(t, "  - {source: c, target: fax, direction: to-dataverse}\n", both)); err != nil {
		t.Fatalf("a new to-dataverse column refused: %v", err)
	}
	for _, tc := range []struct{ name, columns, rest, want string }{
		{"policy", "", "direction: both\nconflict: {policy: manual}\n", "conflict rules of a running mapping are fixed"},
		{"tie-break", "", "direction: both\nconflict: {policy: merge, tie_break: manual}\n", "conflict rules of a running mapping are fixed"},
		{"one-way", "", "", "direction both was added or removed"},
		{"columns", "  - {source: c, target: fax}\n", both, "columns synced both ways changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.applicable(compileBoth(t, tc.columns, tc.rest))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("applicable = %v, want %q", err, tc.want)
			}
		})
	}
}

// Each pipeline of a connection with a bidirectional mapping gets the
// resolver of its side; publish pipelines and connections without one get
// none.
func TestBidirectionalResolvers(t *testing.T) {
	set := compileBoth(t, "", "direction: both\nconflict: {policy: dataverse-wins}\n")
	st, err := state.OpenBolt(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b, err := newBidirectional(set, func() *mapping.Set { return set }, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.resolver("app") == nil || b.resolver(reversePrefix+"app") == nil {
		t.Error("a pipeline of the bidirectional mapping has no resolver")
	}
	if r := b.resolver("other"); r != nil {
		t.Errorf("connection without bidirectional mappings: resolver %T", r)
	}
	if r := b.resolver(publishPrefix + "app"); r != nil {
		t.Errorf("publish pipeline: resolver %T", r)
	}
	if cr := conflictRules(set.Mappings()[0].Conflict); cr.Policy != "dataverse-wins" || cr.TieBreak != "source-wins" {
		t.Errorf("rules %+v, want dataverse-wins with the default tie-break source-wins", cr)
	}
}
