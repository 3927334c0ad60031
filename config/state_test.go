package config

import (
	"strings"
	"testing"
)

func TestStatePostgres(t *testing.T) {
	c, err := Parse([]byte(minimal+"state: {postgres: {dsn: \"${STATE_DSN}\", schema: dvsync}}\n"), "dvsync.yaml",
		envOf("STATE_DSN", "postgres://u:pw@db/state"))
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Path != "" || c.State.Postgres.DSN.Reveal() != "postgres://u:pw@db/state" || c.State.Postgres.Schema != "dvsync" {
		t.Errorf("state = %+v; the default path must give way to postgres", c.State)
	}

	c, err = Parse([]byte(minimal), "dvsync.yaml", envOf())
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Path != "./dvsync-state.db" || c.State.Postgres.DSN != "" {
		t.Errorf("without postgres, state = %+v; want the default file", c.State)
	}
}

func TestStateValidation(t *testing.T) {
	for _, tc := range []struct{ state, want string }{
		{"state: {path: s.db, postgres: {dsn: x}}", "dvsync.yaml:10: state.postgres: give state.path or state.postgres, not both"},
		{"state: {postgres: {schema: s}}", "dvsync.yaml:10: state: required: path (a file) or postgres.dsn (a database) to keep positions and dead letters in"},
		{"state: {postgres: {dsn: \"${STATE_DSN}\"}}", "dvsync.yaml:10: state: required: path (a file) or postgres.dsn (a database) to keep positions and dead letters in"},
		{"state: {path: \"\"}", "dvsync.yaml:10: state: required: path (a file) or postgres.dsn (a database) to keep positions and dead letters in"},
	} {
		_, err := Parse([]byte(minimal+tc.state+"\n"), "dvsync.yaml", envOf("STATE_DSN", ""))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.state, err, tc.want)
		}
	}
}

func TestStateDSNIsSecret(t *testing.T) {
	c, err := Parse([]byte(minimal+"state: {postgres: {dsn: \"postgres://u:hunter2@db/s\"}}\n"), "dvsync.yaml", envOf())
	if err != nil {
		t.Fatal(err)
	}
	if s := c.State.Postgres.DSN.String(); strings.Contains(s, "hunter2") {
		t.Errorf("DSN prints as %q", s)
	}
}
