package config

import (
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dvsync/dvsync/internal/yamlfile"
)

// Problem is one problem with the configuration, as "FILE:LINE: PATH:
// MESSAGE". The errors of Parse, MappingFiles and every Validate, and
// those of Load once the file is read, join *Problem values; errors.As
// finds the first.
type Problem = yamlfile.Problem

// Each Validate returns nil or an error joining one *Problem per problem,
// with field paths relative to the value validated. Config.Validate names
// the file and lines too when the Config came from Load or Parse.

// Validate checks the whole configuration.
func (c *Config) Validate() error {
	var ps yamlfile.Problems
	c.validate(&ps)
	c.pos.Locate(c.Path, ps)
	return ps.Err()
}

func (c *Config) validate(ps *yamlfile.Problems) {
	switch c.Version {
	case 0:
		ps.Add("version", "required; write version: 1")
	case 1:
	default:
		ps.Add("version", "unsupported version %d; this dvsync reads version 1", c.Version)
	}
	c.Log.validate(ps, "log")
	c.HTTP.validate(ps, "http")
	c.State.validate(ps, "state")
	c.Dataverse.validate(ps, "dataverse")
	if len(c.Connections) == 0 {
		ps.Add("connections", "required: at least one connection for mappings to read from")
	}
	for _, name := range slices.Sorted(maps.Keys(c.Connections)) {
		path := "connections." + name
		if !connName.MatchString(name) {
			ps.Add(path, "%q is not a valid connection name: use letters, digits, _ and -, starting with a letter or digit", name)
		}
		conn := c.Connections[name]
		conn.validate(ps, path)
		c.checkFieldTypes(ps, path, conn.Type)
	}
	if name := c.Dataverse.Changes.EventHub.Connection; name != "" {
		if conn, ok := c.Connections[name]; !ok || conn.Type != "kafka" {
			ps.Add("dataverse.changes.event_hub.connection", "%q is not a connection of type kafka", name)
		}
	}
	if len(c.Mappings) == 0 && len(c.Publish) == 0 {
		ps.Add("mappings", "required: at least one glob of mapping files (a config that only publishes writes mappings: [])")
	}
	for i, glob := range c.Mappings {
		path := "mappings[" + strconv.Itoa(i) + "]"
		if glob == "" {
			ps.Add(path, "empty glob")
		} else if _, err := filepath.Match(glob, ""); err != nil {
			ps.Add(path, "%q is not a valid glob", glob)
		}
	}
	c.Engine.validate(ps, "engine")
	c.validatePublish(ps)
}

var connName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)

// Validate checks the log settings.
func (l *Log) Validate() error { return check(l.validate) }

func (l *Log) validate(ps *yamlfile.Problems, path string) {
	oneOf(ps, yamlfile.JoinPath(path, "level"), l.Level, "debug", "info", "warn", "error")
	oneOf(ps, yamlfile.JoinPath(path, "format"), l.Format, "text", "json")
}

// Validate checks the HTTP settings.
func (h *HTTP) Validate() error { return check(h.validate) }

func (h *HTTP) validate(ps *yamlfile.Problems, path string) {
	if h.Listen == "" {
		return
	}
	path = yamlfile.JoinPath(path, "listen")
	_, port, err := net.SplitHostPort(h.Listen)
	if err != nil {
		ps.Add(path, "%q is not host:port (write \"\" to disable the server)", h.Listen)
		return
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		ps.Add(path, "%q has no valid port number", h.Listen)
	}
}

// Validate checks the state settings.
func (s *State) Validate() error { return check(s.validate) }

func (s *State) validate(ps *yamlfile.Problems, path string) {
	pg := s.Postgres
	switch {
	case s.Path != "" && pg.DSN != "":
		ps.Add(yamlfile.JoinPath(path, "postgres"), "give state.path or state.postgres, not both")
	case s.Path == "" && pg.DSN == "":
		ps.Add(path, "required: path (a file) or postgres.dsn (a database) to keep positions and dead letters in")
	}
}

// Validate checks the Dataverse settings.
func (d *Dataverse) Validate() error { return check(d.validate) }

var apiVersion = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)

func (d *Dataverse) validate(ps *yamlfile.Problems, path string) {
	urlPath := yamlfile.JoinPath(path, "url")
	if d.URL == "" {
		ps.Add(urlPath, "required: the environment's address, such as https://contoso.crm.dynamics.com")
	} else if u, err := url.Parse(d.URL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		ps.Add(urlPath, "%q is not an http or https URL with a host", d.URL)
	} else {
		switch {
		case u.User != nil:
			// The URL is logged; credentials belong in auth.
			ps.Add(urlPath, "must not hold credentials; put the token in auth.token")
		case u.RawQuery != "" || u.Fragment != "":
			ps.Add(urlPath, "%q must not have a query or fragment", d.URL)
		case strings.Contains(u.Path, "/api/data"):
			ps.Add(urlPath, "%q must not include /api/data; dvsync adds it with api_version", d.URL)
		}
	}
	if !apiVersion.MatchString(d.APIVersion) {
		ps.Add(yamlfile.JoinPath(path, "api_version"), "%q is not a Web API version such as v9.2", d.APIVersion)
	}
	d.Auth.validate(ps, yamlfile.JoinPath(path, "auth"))
	if d.Concurrency < 1 || d.Concurrency > 52 {
		ps.Add(yamlfile.JoinPath(path, "concurrency"), "must be between 1 and 52, got %d", d.Concurrency)
	}
	switch d.WriteMode {
	case "auto", "batch", "single":
	default:
		ps.Add(yamlfile.JoinPath(path, "write_mode"), "%q is not auto, batch or single", d.WriteMode)
	}
	if d.BatchSize < 1 || d.BatchSize > 1000 {
		ps.Add(yamlfile.JoinPath(path, "batch_size"), "must be between 1 and 1000, got %d", d.BatchSize)
	}
	d.Changes.validate(ps, yamlfile.JoinPath(path, "changes"))
}

func (a *Auth) validate(ps *yamlfile.Problems, path string) {
	if a.ClientID == "" {
		if a.Token == "" {
			ps.Add(yamlfile.JoinPath(path, "token"), "required: a bearer token, usually ${DATAVERSE_TOKEN}")
		}
		for name, v := range map[string]string{
			"tenant_id": a.TenantID, "client_secret": a.ClientSecret.Reveal(), "certificate_file": a.CertificateFile,
			"authority": a.Authority, "token_url": a.TokenURL, "scope": a.Scope,
		} {
			if v != "" {
				ps.Add(yamlfile.JoinPath(path, name), "needs client_id")
			}
		}
		return
	}
	if a.Token != "" {
		ps.Add(yamlfile.JoinPath(path, "token"), "give either token or client_id, not both")
	}
	if a.TenantID == "" && a.TokenURL == "" {
		ps.Add(yamlfile.JoinPath(path, "tenant_id"), "required with client_id (or give token_url)")
	}
	if (a.ClientSecret == "") == (a.CertificateFile == "") {
		ps.Add(yamlfile.JoinPath(path, "client_secret"), "give exactly one of client_secret and certificate_file with client_id")
	}
	for name, v := range map[string]string{"authority": a.Authority, "token_url": a.TokenURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
			ps.Add(yamlfile.JoinPath(path, name), "%q is not an http or https URL with a host and no credentials", v)
		}
	}
}

// Validate checks one connection.
func (c *Connection) Validate() error { return check(c.validate) }

// slotName is PostgreSQL's rule for replication slot names.
var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// connectionTypes are the supported values of connections.<name>.type.
var connectionTypes = []string{"postgres", "sqlserver", "kafka"}

// fieldTypes gives the connection types each type-specific field applies
// to; fields not listed (type, dsn) apply to several.
var fieldTypes = map[string]string{
	"slot": "postgres", "publication": "postgres", "status_interval": "postgres",
	"heartbeat_interval": "postgres", "logical_decoding_work_mem": "postgres", "skip_origin": "postgres",
	"brokers": "kafka", "group_id": "kafka", "client_id": "kafka", "start_offset": "kafka",
	"compression": "kafka", "dead_letter_topic": "kafka", "tls": "kafka", "sasl": "kafka",
	"mode": "sqlserver", "poll_interval": "sqlserver", "max_poll_interval": "sqlserver", "context": "sqlserver",
	"dsn": "postgres sqlserver",
}

// checkFieldTypes reports fields written for a connection whose type they
// do not apply to: a slot on a Kafka connection is a mistake, not a no-op.
func (c *Config) checkFieldTypes(ps *yamlfile.Problems, path, typ string) {
	if !slices.Contains(connectionTypes, typ) {
		return
	}
	for p := range c.pos {
		field, ok := strings.CutPrefix(p, path+".")
		if !ok || strings.ContainsAny(field, ".[") {
			continue
		}
		if types, ok := fieldTypes[field]; ok && !slices.Contains(strings.Fields(types), typ) {
			ps.Add(p, "only for connections of type %s, not %s", strings.ReplaceAll(types, " ", " or "), typ)
		}
	}
}

func (c *Connection) validate(ps *yamlfile.Problems, path string) {
	typePath := yamlfile.JoinPath(path, "type")
	switch c.Type {
	case "postgres":
	case "sqlserver":
		c.validateSQLServer(ps, path)
		return
	case "kafka":
		c.validateKafka(ps, path)
		return
	case "":
		ps.Add(typePath, "required (supported: %s)", strings.Join(connectionTypes, ", "))
		return
	default:
		ps.Add(typePath, "unknown type %q %s", c.Type, yamlfile.Hint(c.Type, connectionTypes))
		return
	}
	if c.DSN == "" {
		ps.Add(yamlfile.JoinPath(path, "dsn"), "required: the connection string, usually ${PG_DSN}")
	}
	if !slotName.MatchString(c.Slot) {
		ps.Add(yamlfile.JoinPath(path, "slot"), "%q is not a replication slot name: 1 to 63 lower-case letters, digits and _", c.Slot)
	}
	if c.Publication == "" || len(c.Publication) > 63 {
		ps.Add(yamlfile.JoinPath(path, "publication"), "must be 1 to 63 bytes long")
	}
	if c.StatusInterval <= 0 {
		ps.Add(yamlfile.JoinPath(path, "status_interval"), "must be positive, got %s", c.StatusInterval)
	}
	if c.DecodingWorkMem != "" && !memorySize.MatchString(c.DecodingWorkMem) {
		ps.Add(yamlfile.JoinPath(path, "logical_decoding_work_mem"), "%q is not a memory size such as 64MB (kB, MB, GB)", c.DecodingWorkMem)
	}
}

// memorySize is a memory setting as postgresql.conf writes it.
var memorySize = regexp.MustCompile(`^[0-9]+(kB|MB|GB|TB)?$`)

// Validate checks the engine settings.
func (e *Engine) Validate() error { return check(e.validate) }

func (e *Engine) validate(ps *yamlfile.Problems, path string) {
	if e.Workers < 1 {
		ps.Add(yamlfile.JoinPath(path, "workers"), "must be at least 1, got %d", e.Workers)
	}
	if e.BatchSize < 1 || e.BatchSize > 1000 {
		ps.Add(yamlfile.JoinPath(path, "batch_size"), "must be between 1 and 1000 (the Dataverse $batch limit), got %d", e.BatchSize)
	}
	if e.BatchWait < 0 {
		ps.Add(yamlfile.JoinPath(path, "batch_wait"), "must not be negative, got %s", e.BatchWait)
	}
	if e.MaxRetries < 0 {
		ps.Add(yamlfile.JoinPath(path, "max_retries"), "must not be negative (0 retries forever), got %d", e.MaxRetries)
	}
	if e.StopAfterFailures < 0 {
		ps.Add(yamlfile.JoinPath(path, "stop_after_failures"), "must not be negative (0 never stops), got %d", e.StopAfterFailures)
	}
	if e.ShutdownTimeout <= 0 {
		ps.Add(yamlfile.JoinPath(path, "shutdown_timeout"), "must be positive, got %s", e.ShutdownTimeout)
	}
}

// check runs a validate method on the value's own root.
func check(validate func(*yamlfile.Problems, string)) error {
	var ps yamlfile.Problems
	validate(&ps, "")
	return ps.Err()
}

// oneOf checks that v is one of the allowed values.
func oneOf(ps *yamlfile.Problems, path, v string, allowed ...string) {
	if slices.Contains(allowed, v) {
		return
	}
	ps.Add(path, "%q is not one of: %s", v, strings.Join(allowed, ", "))
}

func (c *Connection) validateSQLServer(ps *yamlfile.Problems, path string) {
	if c.DSN == "" {
		ps.Add(yamlfile.JoinPath(path, "dsn"), "required: the connection string, usually ${SQLSERVER_DSN}")
	}
	oneOf(ps, yamlfile.JoinPath(path, "mode"), c.Mode, "change_tracking", "cdc")
	if c.PollInterval <= 0 {
		ps.Add(yamlfile.JoinPath(path, "poll_interval"), "must be positive, got %s", c.PollInterval)
	}
	if c.MaxPollInterval < c.PollInterval {
		ps.Add(yamlfile.JoinPath(path, "max_poll_interval"), "must be at least poll_interval (%s), got %s", c.PollInterval, c.MaxPollInterval)
	}
	if c.Context == "" || len(c.Context) > 128 {
		ps.Add(yamlfile.JoinPath(path, "context"), "must be 1 to 128 bytes long (it is stored in CHANGE_TRACKING_CONTEXT's varbinary(128))")
	}
}

func (c *Connection) validateKafka(ps *yamlfile.Problems, path string) {
	if len(c.Brokers) == 0 {
		ps.Add(yamlfile.JoinPath(path, "brokers"), "required: the bootstrap servers, host:port")
	}
	for i, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			ps.Add(yamlfile.JoinPath(path, "brokers["+strconv.Itoa(i)+"]"), "%q is not host:port", b)
		}
	}
	if c.GroupID == "" {
		ps.Add(yamlfile.JoinPath(path, "group_id"), "required: the consumer group")
	}
	oneOf(ps, yamlfile.JoinPath(path, "start_offset"), c.StartOffset, "earliest", "latest")
	oneOf(ps, yamlfile.JoinPath(path, "compression"), c.Compression, "none", "gzip", "snappy", "lz4", "zstd")
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		ps.Add(yamlfile.JoinPath(path, "tls"), "cert_file and key_file go together: give both or neither")
	}
	sasl := yamlfile.JoinPath(path, "sasl")
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			ps.Add(yamlfile.JoinPath(sasl, "mechanism"), "required with a username or password: plain, scram-sha-256 or scram-sha-512")
		}
	case "plain", "scram-sha-256", "scram-sha-512":
		if c.SASL.Username == "" {
			ps.Add(yamlfile.JoinPath(sasl, "username"), "required with mechanism %s", c.SASL.Mechanism)
		}
		if c.SASL.Password == "" {
			ps.Add(yamlfile.JoinPath(sasl, "password"), "required with mechanism %s, usually ${KAFKA_PASSWORD}", c.SASL.Mechanism)
		}
	default:
		ps.Add(yamlfile.JoinPath(sasl, "mechanism"), "%q is not one of: plain, scram-sha-256, scram-sha-512", c.SASL.Mechanism)
	}
}
