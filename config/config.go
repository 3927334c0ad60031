// Package config reads dvsync's daemon configuration file: where the state
// lives, how to reach Dataverse, the source connections, which mapping files
// to load and how the engine runs.
//
// The file is YAML with a version field. Load expands ${NAME} and
// ${NAME:-default} in string values, decodes strictly (an unknown field is
// an error, with a suggestion when it looks misspelt), applies defaults and
// validates. Every problem names FILE:LINE and the field path, and all of
// them are reported at once:
//
//	dvsync.yaml:4: log.fromat: unknown field (did you mean "format"?)
//	dvsync.yaml:9: dataverse.auth.token: environment variable DATAVERSE_TOKEN is not set (write ${DATAVERSE_TOKEN:-default} to give a default)
//	dvsync.yaml:14: connections.app.slot: only for connections of type postgres, not kafka
//
// Secrets (the Dataverse token, connection DSNs) are of type Secret, which
// prints as "[redacted]"; neither they nor expanded values appear in errors.
//
// The package imports nothing else of dvsync but internal/yamlfile, the
// strict decoder it shares with package mapping; the reference in
// docs/config.md is tested against these types.
package config

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dvsync/dvsync/internal/yamlfile"
)

// Config is the daemon configuration. Load or Parse return a Config that
// has its defaults applied and has been validated; a Config built in code
// should start from Default and be checked with Validate.
//
// A Config is not modified by any method and may be read concurrently.
type Config struct {
	// Version of the file format; required, and only 1 is known.
	Version int   `yaml:"version"`
	Log     Log   `yaml:"log"`
	HTTP    HTTP  `yaml:"http"`
	State   State `yaml:"state"`
	// Dataverse is the environment every mapping writes to.
	Dataverse Dataverse `yaml:"dataverse"`
	// Connections are the source systems, by the name mappings use to
	// refer to them.
	Connections map[string]Connection `yaml:"connections"`
	// Mappings are glob patterns of mapping files, relative to the folder
	// of the config file. Default: ["mappings/*.yaml"].
	Mappings []string `yaml:"mappings"`
	Engine   Engine   `yaml:"engine"`
	// Publish streams databases' changes to Kafka topics without
	// mappings, for the scale-out topology.
	Publish []Publish `yaml:"publish"`

	// Path is the file the configuration was read from; relative mapping
	// globs are resolved against its folder. Empty for a Config built in
	// code, which resolves them against the working directory.
	Path string `yaml:"-"`

	// pos records where each field was written, for MappingFiles' errors.
	pos yamlfile.Positions
}

// Log configures dvsync's own log output (log/slog).
type Log struct {
	// Level is the least severe level written: debug, info, warn or
	// error. Default: info.
	Level string `yaml:"level"`
	// Format is text (logfmt-like key=value) or json. Default: text.
	Format string `yaml:"format"`
}

// HTTP configures the health and metrics endpoint.
type HTTP struct {
	// Listen is the host:port to serve the health and metrics endpoints
	// on; "" disables the server. Default: 127.0.0.1:8080.
	Listen string `yaml:"listen"`
}

// State configures where dvsync keeps positions and dead letters: an
// embedded file (Path) or tables in PostgreSQL (Postgres), exactly one.
type State struct {
	// Path is the bbolt file holding positions and dead letters. A
	// relative path is relative to the working directory, not to the
	// config file, because config folders are often read-only (a mounted
	// ConfigMap). Default: ./dvsync-state.db, unless postgres is given.
	Path string `yaml:"path"`
	// Postgres keeps the state in a PostgreSQL database instead, for
	// hosts whose local disk does not survive a restart.
	Postgres StatePostgres `yaml:"postgres"`
}

// StatePostgres says which PostgreSQL database and schema hold the state.
type StatePostgres struct {
	// DSN is the connection string of the database (postgres://... URL
	// or key=value). Required when postgres is given.
	DSN Secret `yaml:"dsn"`
	// Schema holds the tables dvsync_positions and dvsync_dead_letters,
	// created with them if missing. One dvsync process at a time may use
	// a schema. Default (also when empty): public.
	Schema string `yaml:"schema"`
}

// Dataverse says where and how to reach the Dataverse Web API.
type Dataverse struct {
	// URL is the environment's address, such as
	// https://contoso.crm.dynamics.com, without /api/data. Required.
	URL string `yaml:"url"`
	// APIVersion is the Web API version, such as v9.2. Default: v9.2.
	APIVersion string `yaml:"api_version"`
	Auth       Auth   `yaml:"auth"`
	// Concurrency is the most requests dvsync has in flight to Dataverse
	// at once, at most 52 (Dataverse throttles above that per user). dvsync
	// lowers it on throttling and to the service's x-ms-dop-hint. Default:
	// 52.
	Concurrency int `yaml:"concurrency"`
	// WriteMode is how records are written: auto (bulk UpsertMultiple
	// where the table supports it, else $batch), batch or single.
	// Default: auto.
	WriteMode string `yaml:"write_mode"`
	// BatchSize is the number of rows per bulk message or $batch, 1 to
	// 1000. Default: 100.
	BatchSize int `yaml:"batch_size"`
	// Tag is sent with every write as the tag parameter, which plug-ins
	// and change events see as the shared variable "tag", so that dvsync's
	// own writes can be recognised. Default: dvsync.
	Tag string `yaml:"tag"`
	// BypassCustomPluginExecution skips custom synchronous plug-ins on
	// dvsync's writes (needs the prvBypassCustomPlugins privilege).
	BypassCustomPluginExecution bool `yaml:"bypass_custom_plugin_execution"`
	// Changes says how dvsync captures changes made in Dataverse, for
	// mappings with direction from-dataverse or both.
	Changes Changes `yaml:"changes"`
}

// Auth holds the credentials for Dataverse: either a static bearer token,
// or an application's client credentials (a client secret or a
// certificate) from which dvsync obtains and renews tokens itself.
type Auth struct {
	// Token is an OAuth bearer token for the Dataverse environment.
	Token Secret `yaml:"token"`
	// TenantID is the Microsoft Entra tenant (directory) id or domain.
	TenantID string `yaml:"tenant_id"`
	// ClientID is the application (client) id of the app registration.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the application's client secret.
	ClientSecret Secret `yaml:"client_secret"`
	// CertificateFile is a PEM file with the application's certificate
	// and its RSA private key, used instead of a client secret.
	CertificateFile string `yaml:"certificate_file"`
	// Authority is the login endpoint. Default:
	// https://login.microsoftonline.com.
	Authority string `yaml:"authority"`
	// TokenURL is the full token endpoint, replacing authority and
	// tenant_id (for the emulator or a proxy).
	TokenURL string `yaml:"token_url"`
	// Scope is the requested scope. Default: the environment URL followed
	// by /.default.
	Scope string `yaml:"scope"`
}

// Connection is one system that mappings read from or write to: a
// PostgreSQL or SQL Server database, or a Kafka cluster. Fields are shared
// where the systems share a notion (dsn), and the others apply to one type
// only; giving one to another type is an error.
type Connection struct {
	// Type is the kind of system: postgres, sqlserver or kafka.
	Type string `yaml:"type"`
	// DSN is the connection string, in any form the driver accepts
	// (postgres://... URL or key=value; sqlserver://...). Required for
	// databases.
	DSN Secret `yaml:"dsn"`
	// Slot is the PostgreSQL logical replication slot. Default: dvsync.
	Slot string `yaml:"slot"`
	// Publication is the PostgreSQL publication naming the captured
	// tables. Default: dvsync.
	Publication string `yaml:"publication"`
	// StatusInterval is how often the source reports its position to
	// PostgreSQL even when idle, which keeps the connection alive and lets
	// PostgreSQL recycle WAL. Default: 10s.
	StatusInterval time.Duration `yaml:"status_interval"`
	// HeartbeatInterval is how often the source writes a heartbeat
	// (pg_logical_emit_message) so a quiet database still advances the
	// slot, and measures the slot's lag. Default: 30s; negative turns it off.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// DecodingWorkMem is logical_decoding_work_mem for the replication
	// session ("64MB"): past it, PostgreSQL streams a running transaction's
	// changes, which dvsync spools to a temporary file until it commits.
	// Default: 64MB.
	DecodingWorkMem string `yaml:"logical_decoding_work_mem"`
	// SkipOrigin names a replication origin whose transactions are not
	// captured, so writes dvsync made itself inside that origin do not
	// come back. Empty captures every transaction, unless mappings also
	// write Dataverse changes to this database: then dvsync writes them
	// under the origin "dvsync" and skips it.
	SkipOrigin string `yaml:"skip_origin"`

	// Brokers are the Kafka bootstrap servers, host:port. Required for
	// kafka.
	Brokers []string `yaml:"brokers"`
	// GroupID is the Kafka consumer group of dvsync processes applying
	// the same topics; processes in one group share the partitions.
	// Default: dvsync.
	GroupID string `yaml:"group_id"`
	// ClientID is the client id dvsync gives the Kafka brokers, for their
	// logs and quotas. Default: dvsync.
	ClientID string `yaml:"client_id"`
	// StartOffset is where a consumer group that has never committed
	// starts reading a partition: earliest or latest. Default: earliest.
	StartOffset string `yaml:"start_offset"`
	// Compression is the codec of messages dvsync writes to Kafka: none,
	// gzip, snappy, lz4 or zstd. Default: snappy.
	Compression string `yaml:"compression"`
	// DeadLetterTopic, when given, receives a copy of every dead letter
	// of pipelines reading this Kafka connection, besides the state store.
	DeadLetterTopic string `yaml:"dead_letter_topic"`
	// TLS encrypts Kafka connections.
	TLS TLS `yaml:"tls"`
	// SASL authenticates to Kafka.
	SASL SASL `yaml:"sasl"`

	// Mode is how SQL Server changes are captured: change_tracking or cdc.
	// Default: change_tracking.
	Mode string `yaml:"mode"`
	// PollInterval is the shortest wait between SQL Server change polls;
	// a quiet database is polled less often, up to MaxPollInterval.
	// Default: 200ms.
	PollInterval time.Duration `yaml:"poll_interval"`
	// MaxPollInterval is the longest wait between SQL Server change polls.
	// Default: 5s.
	MaxPollInterval time.Duration `yaml:"max_poll_interval"`
	// Context is the change tracking context dvsync writes under (WITH
	// CHANGE_TRACKING_CONTEXT) and skips when reading, so its own writes
	// do not come back. Default: dvsync.
	Context string `yaml:"context"`
}

// TLS configures TLS for a Kafka connection.
type TLS struct {
	// Enabled turns TLS on; it is on when any other field is given.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the certificate authorities to trust.
	// Default: the system's.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// brokers that authenticate clients by certificate.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the client certificate's private key (PEM).
	KeyFile string `yaml:"key_file"`
	// ServerName overrides the host name checked against the broker's
	// certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate. For tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// On reports whether TLS is used.
func (t *TLS) On() bool { return t.Enabled || *t != (TLS{}) }

// SASL configures SASL authentication for a Kafka connection.
type SASL struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512. Empty: no SASL.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user ("$ConnectionString" for Azure Event Hubs).
	Username string `yaml:"username"`
	// Password is the SASL password (the connection string for Azure
	// Event Hubs).
	Password Secret `yaml:"password"`
}

// Engine tunes the pipeline between sources and Dataverse.
type Engine struct {
	// Workers is how many keys are written in parallel; changes to one
	// key always go through the same worker, in order. Default: 8.
	Workers int `yaml:"workers"`
	// BatchSize is the most records written in one request. Default: 500;
	// at most 1000, the Dataverse $batch limit.
	BatchSize int `yaml:"batch_size"`
	// BatchWait is how long a worker waits for a batch to fill before
	// writing what it has. Default: 20ms.
	BatchWait time.Duration `yaml:"batch_wait"`
	// MaxRetries is how often one write is retried after retryable
	// failures before the pipeline stops; 0 retries forever. Default: 10.
	MaxRetries int `yaml:"max_retries"`
	// StopAfterFailures is how many consecutive records may be
	// dead-lettered before the pipeline stops, since a run of them usually
	// means a broken mapping rather than bad rows; 0 never stops.
	// Default: 1000.
	StopAfterFailures int `yaml:"stop_after_failures"`
	// ShutdownTimeout bounds how long a stopping daemon drains in-flight
	// writes and acks. Default: 30s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

// Default returns the configuration a file holding only "version: 1"
// decodes to: every default applied, and the required fields
// (dataverse.url, dataverse.auth.token, connections) still empty.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	c.Version = 1
	return c
}

// setDefaults applies the defaults of every field that has one. Version has
// none: a file must say which format it is written in.
func (c *Config) setDefaults() {
	c.Log = Log{Level: "info", Format: "text"}
	c.HTTP = HTTP{Listen: "127.0.0.1:8080"}
	c.State = State{Path: "./dvsync-state.db"}
	c.Dataverse = Dataverse{APIVersion: "v9.2", Concurrency: 52, WriteMode: "auto", BatchSize: 100, Tag: "dvsync"}
	c.Dataverse.Changes.setDefaults()
	c.Mappings = []string{"mappings/*.yaml"}
	c.Engine = Engine{
		Workers:           8,
		BatchSize:         500,
		BatchWait:         20 * time.Millisecond,
		MaxRetries:        10,
		StopAfterFailures: 1000,
		ShutdownTimeout:   30 * time.Second,
	}
}

// SetDefaults sets the fields that have defaults: Slot, Publication,
// StatusInterval, HeartbeatInterval and DecodingWorkMem. Parse calls it for each entry of connections before
// decoding the entry, so that a field absent from the file keeps its
// default; a Connection built in code may call it first too.
func (c *Connection) SetDefaults() {
	c.Slot = "dvsync"
	c.Publication = "dvsync"
	c.StatusInterval = 10 * time.Second
	c.HeartbeatInterval = 30 * time.Second
	c.DecodingWorkMem = "64MB"
	c.GroupID = "dvsync"
	c.ClientID = "dvsync"
	c.StartOffset = "earliest"
	c.Compression = "snappy"
	c.Mode = "change_tracking"
	c.PollInterval = 200 * time.Millisecond
	c.MaxPollInterval = 5 * time.Second
	c.Context = "dvsync"
}

// Load reads the config file at path with the process environment; see
// Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, os.LookupEnv)
}

// Parse decodes a config file's contents. path names the file in errors
// and anchors relative mapping globs; env looks up variables for ${NAME}
// expansion (nil means os.LookupEnv).
//
// Expansion applies to string values only, never to keys, and its result is
// not expanded again. A variable that is unset and has no default is an
// error. A value that came from a variable may stand for a number, boolean
// or duration (workers: ${WORKERS:-8}); a literal string may not.
//
// On failure Parse returns nil and an error joining one *Problem per line.
func Parse(data []byte, path string, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = os.LookupEnv
	}
	c := &Config{}
	c.setDefaults()
	pos, failed := yamlfile.Decode(data, path, env, c)
	if pos == nil {
		return nil, failed.Err()
	}
	c.Path = path
	c.pos = pos
	if _, ok := pos["state.path"]; !ok {
		if _, ok := pos["state.postgres"]; ok {
			// The default file gives way to a PostgreSQL store: only
			// a path actually written conflicts with one.
			c.State.Path = ""
		}
	}
	var invalid yamlfile.Problems
	c.validate(&invalid)
	invalid = invalid.Without(failed)
	pos.Locate(path, invalid)
	if all := append(failed, invalid...); len(all) > 0 {
		return nil, all.Err()
	}
	return c, nil
}

// MappingFiles resolves the mapping globs, relative ones against the
// folder of the config file, and returns the files they match: sorted,
// each once, directories left out. A glob that matches no file is an error,
// since a mapping that silently never loads is worse than one that fails.
func (c *Config) MappingFiles() ([]string, error) {
	dir := "."
	if c.Path != "" {
		dir = filepath.Dir(c.Path)
	}
	var files []string
	var ps yamlfile.Problems
	for i, glob := range c.Mappings {
		path := fmt.Sprintf("mappings[%d]", i)
		pattern := glob
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			ps.Add(path, "%q is not a valid glob", glob)
			continue
		}
		n := 0
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
				files = append(files, m)
				n++
			}
		}
		if n == 0 {
			ps.Add(path, "%q matches no file (looked for %s)", glob, pattern)
		}
	}
	if len(ps) > 0 {
		c.pos.Locate(c.Path, ps)
		return nil, ps.Err()
	}
	slices.Sort(files)
	return slices.Compact(files), nil
}

// APIURL returns the base URL of the Web API, such as
// https://contoso.crm.dynamics.com/api/data/v9.2/, with a trailing slash.
func (d *Dataverse) APIURL() string {
	return strings.TrimRight(d.URL, "/") + "/api/data/" + d.APIVersion + "/"
}

// SlogLevel returns Level as a slog.Level; an unknown level (which Validate
// rejects) is Info.
func (l *Log) SlogLevel() slog.Level {
	switch l.Level {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
