package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/state"
)

// offlineConfig writes a config whose state file holds two map-stage dead
// letters of pipeline app, and returns the config's and the state file's
// paths.
func offlineConfig(t *testing.T) (cfg, statePath string) {
	t.Helper()
	dir := t.TempDir()
	statePath = filepath.Join(dir, "state.db")
	cfg = filepath.Join(dir, "dvsync.yaml")
	writeFile(t, cfg, fmt.Sprintf(`version: 1
state: {path: %s}
dataverse: {url: "http://127.0.0.1:1", auth: {token: t}}
connections: {app: {type: postgres, dsn: "postgres://u:secret@127.0.0.1:1/db"}}
`, statePath))
	st, err := state.OpenBolt(statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var letters []state.DeadLetter
	for i := range 2 {
		letters = append(letters, state.DeadLetter{
			Pipeline: "app", Stage: "map", Reason: fmt.Sprintf("column n: %q is not a number\nsecond line", "x"),
			Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Record: change.Record{
				Op: change.OpInsert, Table: "public.t", Key: change.Key{{Name: "id", Value: change.Int(int64(i + 1))}},
				After: change.Row{{Name: "id", Value: change.Int(int64(i + 1))}, {Name: "n", Value: change.Text("x")}},
			},
		})
	}
	if err := st.PutDeadLetters(context.Background(), letters); err != nil {
		t.Fatal(err)
	}
	return cfg, statePath
}

func TestDeadLettersCommands(t *testing.T) {
	cfg, _ := offlineConfig(t)
	out, _, err := runCLI(t, "deadletters", "list", "-c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := "ID  PIPELINE  TIME                  STAGE  RECORD           REASON\n" +
		"1   app       2026-01-02T03:04:05Z  map    public.t c id=1  column n: \"x\" is not a number\n" +
		"2   app       2026-01-02T03:04:05Z  map    public.t c id=2  column n: \"x\" is not a number\n"
	if out != want {
		t.Errorf("list:\n%s\nwant:\n%s", out, want)
	}
	if out, _, _ := runCLI(t, "deadletters", "list", "-c", cfg, "--limit", "1"); strings.Count(out, "\n") != 2 {
		t.Errorf("list --limit 1:\n%s", out)
	}
	if out, _, _ := runCLI(t, "deadletters", "list", "-c", cfg, "--pipeline", "other"); strings.Count(out, "\n") != 1 {
		t.Errorf("list of another pipeline:\n%s", out)
	}

	out, _, err = runCLI(t, "deadletters", "show", "-c", cfg, "2")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Dead letter 2", "Stage:    map", "second line", "Source record: c public.t key id=2", "n = x"} {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "9"}, "no dead letter 9 (in pipelines app)"},
		{[]string{"show", "x"}, `"x" is not a dead letter ID`},
		{[]string{"drop", "1", "--all"}, "not both"},
		{[]string{"retry"}, "or --all"},
		{[]string{"drop", "1", "9"}, "no dead letter 9"},
	} {
		_, _, err := runCLI(t, append(append([]string{"deadletters"}, c.args...), "-c", cfg)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want %q", c.args, err, c.want)
		}
	}
	// A failed drop drops nothing, even the IDs that exist.
	if out, _, _ := runCLI(t, "deadletters", "list", "-c", cfg); strings.Count(out, "\n") != 3 {
		t.Errorf("list after a failed drop:\n%s", out)
	}
	if out, _, err := runCLI(t, "deadletters", "drop", "-c", cfg, "1"); err != nil || out != "1 dropped\n" {
		t.Errorf("drop 1: %q, %v", out, err)
	}
	if out, _, _ := runCLI(t, "deadletters", "list", "-c", cfg); strings.Contains(out, "id=1") || !strings.Contains(out, "id=2") {
		t.Errorf("list after drop:\n%s", out)
	}
}

// The daemon holds the state file: the commands say so instead of
// waiting or corrupting it.
func TestDeadLettersNeedTheDaemonStopped(t *testing.T) {
	cfg, statePath := offlineConfig(t)
	st, err := state.OpenBolt(statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, _, err = runCLI(t, "deadletters", "list", "-c", cfg)
	if err == nil || !strings.Contains(err.Error(), "in use by another dvsync process") {
		t.Errorf("list while the file is held: %v", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the DSN's password: %v", err)
	}
}
