package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// envOf returns a lookup function over a fixed set of variables.
func envOf(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

const minimal = `version: 1
dataverse:
  url: https://contoso.crm.dynamics.com
  auth:
    token: tok
connections:
  app:
    type: postgres
    dsn: postgres://u:pw@localhost/app
`

func TestParseFull(t *testing.T) {
	data := `version: 1
log: {level: debug, format: json}
http: {listen: "0.0.0.0:9090"}
state: {path: /var/lib/dvsync/state.db}
dataverse:
  url: ${DATAVERSE_URL}
  api_version: v9.1
  auth:
    token: ${DATAVERSE_TOKEN}
  concurrency: 4
connections:
  app:
    type: postgres
    dsn: ${PG_DSN}
    slot: app_slot
    publication: app_pub
    status_interval: 5s
mappings: ["maps/*.yaml", /etc/dvsync/extra.yaml]
engine:
  workers: ${WORKERS:-3}
  batch_size: 100
  batch_wait: 50ms
  max_retries: 0
  stop_after_failures: 0
  shutdown_timeout: 1m
`
	env := envOf("DATAVERSE_URL", "https://x.crm4.dynamics.com", "DATAVERSE_TOKEN", "t0k", "PG_DSN", "host=db password=s3cret")
	c, err := Parse([]byte(data), "conf/dvsync.yaml", env)
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Version: 1,
		Log:     Log{Level: "debug", Format: "json"},
		HTTP:    HTTP{Listen: "0.0.0.0:9090"},
		State:   State{Path: "/var/lib/dvsync/state.db"},
		Dataverse: Dataverse{
			URL:         "https://x.crm4.dynamics.com",
			APIVersion:  "v9.1",
			Auth:        Auth{Token: "t0k"},
			Concurrency: 4,
			WriteMode:   "auto",
			BatchSize:   100,
			Tag:         "dvsync",
			Changes:     Default().Dataverse.Changes,
		},
		Connections: map[string]Connection{"app": defaulted(func(c *Connection) {
			c.Type, c.DSN, c.Slot, c.Publication, c.StatusInterval = "postgres", "host=db password=s3cret", "app_slot", "app_pub", 5*time.Second
		})},
		Mappings: []string{"maps/*.yaml", "/etc/dvsync/extra.yaml"},
		Engine: Engine{
			Workers: 3, BatchSize: 100, BatchWait: 50 * time.Millisecond,
			MaxRetries: 0, StopAfterFailures: 0, ShutdownTimeout: time.Minute,
		},
		Path: "conf/dvsync.yaml",
	}
	c.pos = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %#v\nwant %#v", c, want)
	}
	if got := c.Dataverse.APIURL(); got != "https://x.crm4.dynamics.com/api/data/v9.1/" {
		t.Errorf("APIURL = %q", got)
	}
}

// defaulted returns a Connection with its defaults, then set changes.
func defaulted(set func(*Connection)) Connection {
	var c Connection
	c.SetDefaults()
	set(&c)
	return c
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "dvsync.yaml", envOf())
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Dataverse.URL = "https://contoso.crm.dynamics.com"
	want.Dataverse.Auth.Token = "tok"
	want.Connections = map[string]Connection{"app": defaulted(func(c *Connection) {
		c.Type, c.DSN = "postgres", "postgres://u:pw@localhost/app"
	})}
	want.Path = "dvsync.yaml"
	c.pos = nil
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %#v\nwant %#v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate after Parse: %v", err)
	}
}

// A field written as its zero value keeps it; only absent fields take the
// default. Zero means something for these fields.
func TestParseExplicitZeroKeepsZero(t *testing.T) {
	data := minimal + `http: {listen: ""}
engine: {max_retries: 0, stop_after_failures: 0, batch_wait: 0}
`
	c, err := Parse([]byte(data), "dvsync.yaml", envOf())
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "" || c.Engine.MaxRetries != 0 || c.Engine.StopAfterFailures != 0 || c.Engine.BatchWait != 0 {
		t.Errorf("zero values replaced by defaults: %+v %+v", c.HTTP, c.Engine)
	}
	if c.Engine.Workers != 8 {
		t.Errorf("absent workers = %d, want default 8", c.Engine.Workers)
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	data := `version: 1
log:
  level: verbose
  fromat: json
http: {listen: "localhost"}
dataverse:
  url: https://contoso.crm.dynamics.com/api/data/v9.2
  auth:
    token: ${NO_SUCH_TOKEN}
    password: abc
  concurrency: many
connections:
  app:
    type: postgres
    slot: Bad-Slot
  other:
    type: mysql
    dsn: x
  cache:
    type: kafka
    slot: s
engine:
  workers: 0
  batch_wait: 5
  shutdown_timeout: soon
`
	_, err := Parse([]byte(data), "dvsync.yaml", envOf())
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	want := []string{
		`dvsync.yaml:3: log.level: "verbose" is not one of: debug, info, warn, error`,
		`dvsync.yaml:4: log.fromat: unknown field (did you mean "format"?)`,
		`dvsync.yaml:5: http.listen: "localhost" is not host:port (write "" to disable the server)`,
		`dvsync.yaml:7: dataverse.url: "https://contoso.crm.dynamics.com/api/data/v9.2" must not include /api/data; dvsync adds it with api_version`,
		`dvsync.yaml:9: dataverse.auth.token: environment variable NO_SUCH_TOKEN is not set (write ${NO_SUCH_TOKEN:-default} to give a default)`,
		`dvsync.yaml:10: dataverse.auth.password: unknown field (expected one of: token, tenant_id, client_id, client_secret, certificate_file, authority, token_url, scope)`,
		`dvsync.yaml:11: dataverse.concurrency: expected an integer, got "many"`,
		`dvsync.yaml:13: connections.app.dsn: required: the connection string, usually ${PG_DSN}`,
		`dvsync.yaml:15: connections.app.slot: "Bad-Slot" is not a replication slot name: 1 to 63 lower-case letters, digits and _`,
		`dvsync.yaml:17: connections.other.type: unknown type "mysql" (expected one of: postgres, sqlserver, kafka)`,
		`dvsync.yaml:19: connections.cache.brokers: required: the bootstrap servers, host:port`,
		`dvsync.yaml:21: connections.cache.slot: only for connections of type postgres, not kafka`,
		`dvsync.yaml:23: engine.workers: must be at least 1, got 0`,
		`dvsync.yaml:24: engine.batch_wait: expected a duration such as "10s" or "250ms", got 5 (add a unit)`,
		`dvsync.yaml:25: engine.shutdown_timeout: expected a duration such as "10s" or "250ms", got "soon"`,
	}
	got := strings.Split(err.Error(), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	var p *Problem
	if !errors.As(err, &p) || p.File != "dvsync.yaml" || p.Line != 3 || p.Path != "log.level" {
		t.Errorf("first problem = %+v", p)
	}
}

func TestParseMissingRequired(t *testing.T) {
	_, err := Parse([]byte("# nothing yet\n"), "empty.yaml", envOf())
	want := `empty.yaml:1: version: required; write version: 1
empty.yaml:1: dataverse.url: required: the environment's address, such as https://contoso.crm.dynamics.com
empty.yaml:1: dataverse.auth.token: required: a bearer token, usually ${DATAVERSE_TOKEN}
empty.yaml:1: connections: required: at least one connection for mappings to read from`
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestParseVersion(t *testing.T) {
	data := strings.Replace(minimal, "version: 1", "version: 2", 1)
	_, err := Parse([]byte(data), "v.yaml", envOf())
	if err == nil || err.Error() != "v.yaml:1: version: unsupported version 2; this dvsync reads version 1" {
		t.Errorf("got %v", err)
	}
}

func TestParseSyntaxError(t *testing.T) {
	data := "version: 1\nlog: {level: info\nhttp: {}\n"
	_, err := Parse([]byte(data), "broken.yaml", envOf())
	if err == nil || !strings.HasPrefix(err.Error(), "broken.yaml:3: malformed YAML: ") {
		t.Errorf("got %v", err)
	}
	if strings.Count(err.Error(), "\n") != 0 {
		t.Errorf("a syntax error should be the only problem, got:\n%v", err)
	}
}

func TestParseMultipleDocuments(t *testing.T) {
	_, err := Parse([]byte(minimal+"---\nversion: 1\n"), "two.yaml", envOf())
	if err == nil || err.Error() != "two.yaml:11: the file holds more than one YAML document; write one per file" {
		t.Errorf("got %v", err)
	}
}

func TestParseAnchorsAndAliases(t *testing.T) {
	data := minimal + `  copy:
    type: postgres
    dsn: &dsn postgres://x
  copy2:
    type: postgres
    dsn: *dsn
`
	c, err := Parse([]byte(data), "a.yaml", envOf())
	if err != nil {
		t.Fatal(err)
	}
	if c.Connections["copy2"].DSN != "postgres://x" {
		t.Errorf("alias not resolved: %q", c.Connections["copy2"].DSN.Reveal())
	}
}

// An environment value may stand for a number, a literal string may not.
func TestParseTypedValueFromEnvironment(t *testing.T) {
	data := minimal + "engine:\n  workers: ${W}\n  batch_wait: ${BW}\n"
	c, err := Parse([]byte(data), "e.yaml", envOf("W", "12", "BW", "1s"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Engine.Workers != 12 || c.Engine.BatchWait != time.Second {
		t.Errorf("engine = %+v", c.Engine)
	}
	_, err = Parse([]byte(minimal+"engine: {workers: \"12\"}\n"), "e.yaml", envOf())
	if err == nil || err.Error() != `e.yaml:10: engine.workers: expected an integer, got "12"` {
		t.Errorf("got %v", err)
	}
	_, err = Parse([]byte(data), "e.yaml", envOf("W", "twelve", "BW", "1s"))
	if err == nil || err.Error() != `e.yaml:11: engine.workers: expected an integer, but the value of ${W} does not hold one` {
		t.Errorf("got %v", err)
	}
}

func TestParseNilEnvUsesProcessEnvironment(t *testing.T) {
	t.Setenv("DVSYNC_TEST_TOKEN", "from-process")
	data := strings.Replace(minimal, "token: tok", "token: ${DVSYNC_TEST_TOKEN}", 1)
	c, err := Parse([]byte(data), "p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Dataverse.Auth.Token.Reveal() != "from-process" {
		t.Errorf("token = %q", c.Dataverse.Auth.Token.Reveal())
	}
}

// Secrets must not leak through errors, even when the file around them is
// wrong.
func TestParseErrorsHoldNoSecrets(t *testing.T) {
	data := `version: 1
dataverse:
  url: https://user:${PW}@contoso.crm.dynamics.com
  auth: {token: "${TOKEN}"}
  concurrency: ${TOKEN}
connections:
  app: {type: postgres, dsn: "${PW}", slot: "${PW}"}
engine: {workers: "${PW}"}
`
	_, err := Parse([]byte(data), "s.yaml", envOf("PW", "hunter2", "TOKEN", "eyJsecret"))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, secret := range []string{"hunter2", "eyJsecret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks %q:\n%v", secret, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dvsync.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(minimal, "token: tok", "token: ${DVSYNC_TEST_LOAD}", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DVSYNC_TEST_LOAD", "loaded")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != path || c.Dataverse.Auth.Token.Reveal() != "loaded" {
		t.Errorf("Path=%q token=%q", c.Path, c.Dataverse.Auth.Token.Reveal())
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestMappingFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"maps/b.yaml", "maps/a.yaml", "maps/notes.txt", "extra/c.yaml"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "maps", "dir.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dvsync.yaml")
	abs := filepath.Join(dir, "extra", "*.yaml")
	data := minimal + "mappings:\n  - maps/*.yaml\n  - " + abs + "\n  - maps/a.yaml\n"
	c, err := Parse([]byte(data), path, envOf())
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.MappingFiles()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, "extra", "c.yaml"),
		filepath.Join(dir, "maps", "a.yaml"),
		filepath.Join(dir, "maps", "b.yaml"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MappingFiles = %q, want %q", got, want)
	}

	c, err = Parse([]byte(minimal+"mappings:\n  - maps/*.yaml\n  - nothing/*.yaml\n"), path, envOf())
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.MappingFiles()
	wantErr := path + `:12: mappings[1]: "nothing/*.yaml" matches no file (looked for ` + filepath.Join(dir, "nothing/*.yaml") + ")"
	if err == nil || err.Error() != wantErr {
		t.Errorf("got  %v\nwant %s", err, wantErr)
	}
}

func TestDefaultValidatesOnceRequiredFieldsAreSet(t *testing.T) {
	c := Default()
	if err := c.Validate(); err == nil {
		t.Fatal("Default() without url, token and connections validated")
	}
	c.Dataverse.URL = "http://127.0.0.1:5555"
	c.Dataverse.Auth.Token = "t"
	c.Connections = map[string]Connection{"app": {Type: "postgres", DSN: "x", Slot: "s", Publication: "p", StatusInterval: time.Second}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	// Without a file, problems carry paths but no file name.
	c.Engine.Workers = 0
	if err := c.Validate(); err == nil || err.Error() != "engine.workers: must be at least 1, got 0" {
		t.Errorf("got %v", err)
	}
	if err := c.Engine.Validate(); err == nil || err.Error() != "workers: must be at least 1, got 0" {
		t.Errorf("Engine.Validate = %v", err)
	}
}

func TestSlogLevel(t *testing.T) {
	for _, lvl := range []string{"debug", "info", "warn", "error"} {
		l := Log{Level: lvl}
		if got := strings.ToLower(l.SlogLevel().String()); got != lvl {
			t.Errorf("SlogLevel(%q) = %s", lvl, got)
		}
	}
}

func TestParseUnusualYAML(t *testing.T) {
	tests := []struct{ data, want string }{
		{"version: 1\nversion: 1\n", `u.yaml:2: malformed YAML: mapping key "version" already defined at [1:1]`},
		{"- version: 1\n", "u.yaml:1: expected a mapping of fields, got a list"},
		{minimal + "mappings: *nowhere\n", "u.yaml:10: mappings: alias *nowhere refers to no anchor defined before it"},
		{minimal + "mappings: &m [*m]\n", "u.yaml:10: mappings[0]: alias *m refers to no anchor defined before it"},
		{minimal + "engine:\n  <<: {workers: 2}\n", "u.yaml:11: engine: merge keys (<<) are not supported; write the fields out"},
		{minimal + "mappings: mappings/*.yaml\n", `u.yaml:10: mappings: expected a list, got "mappings/*.yaml"`},
		{minimal + "log: debug\n", `u.yaml:10: log: expected a mapping of fields, got "debug"`},
		{minimal + "engine: {workers: 99999999999999999999}\n", `u.yaml:10: engine.workers: expected an integer, got "99999999999999999999"`},
		{minimal + "sources: {}\n", "u.yaml:10: sources: unknown field (expected one of: version, log, http, state, dataverse, connections, mappings, engine, publish)"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.data), "u.yaml", envOf())
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q:\n got %v\nwant %s", tt.data, err, tt.want)
		}
	}
}

func TestConnectionStreamingSettings(t *testing.T) {
	_, err := Parse([]byte(`version: 1
dataverse: {url: "http://127.0.0.1:1", auth: {token: t}}
connections:
  app: {type: postgres, dsn: x, heartbeat_interval: 1m, skip_origin: dvsync}
  bad: {type: postgres, dsn: x, logical_decoding_work_mem: lots}
`), "f.yaml", nil)
	if err == nil || !strings.Contains(err.Error(), `f.yaml:5: connections.bad.logical_decoding_work_mem: "lots" is not a memory size`) {
		t.Fatalf("err = %v", err)
	}
	c, err := Parse([]byte(`version: 1
dataverse: {url: "http://127.0.0.1:1", auth: {token: t}}
connections:
  app: {type: postgres, dsn: x, heartbeat_interval: 1m, skip_origin: dvsync}
`), "f.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	app := c.Connections["app"]
	if app.HeartbeatInterval != time.Minute || app.SkipOrigin != "dvsync" || app.DecodingWorkMem != "64MB" {
		t.Errorf("app = %+v", app)
	}
}
