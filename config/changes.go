package config

import (
	"net"
	"regexp"
	"strings"
	"time"

	"github.com/dvsync/dvsync/internal/yamlfile"
)

// Changes configures how dvsync learns of changes made in Dataverse, for
// mappings with direction from-dataverse or both: webhooks Dataverse posts
// to dvsync, change-tracking (delta) queries dvsync makes, or both, where
// polling fills whatever the webhooks missed.
type Changes struct {
	// Webhook is the receiver of the RemoteExecutionContext JSON that a
	// Dataverse service endpoint (contract webhook) posts. Off when listen
	// is empty.
	Webhook Webhook `yaml:"webhook"`
	// Poll is the change-tracking poller.
	Poll Poll `yaml:"poll"`
	// EventHub reads the change events Dataverse publishes to an Azure
	// Event Hub instead of webhooks and polling.
	EventHub EventHub `yaml:"event_hub"`
	// UserID is the Dataverse user id dvsync writes as, whose changes are
	// its own and are not captured. Default: asked of Dataverse (WhoAmI)
	// at start-up.
	UserID string `yaml:"user_id"`
}

// Webhook configures the webhook receiver.
type Webhook struct {
	// Listen is the host:port the receiver listens on. Empty: no receiver.
	Listen string `yaml:"listen"`
	// Path is the URL path the service endpoint posts to. Default:
	// /dataverse/webhook.
	Path string `yaml:"path"`
	// TLSCertFile and TLSKeyFile make the receiver serve HTTPS, which
	// Dataverse requires unless a proxy terminates TLS in front of it.
	TLSCertFile string `yaml:"tls_cert_file"`
	// TLSKeyFile is the PEM private key of TLSCertFile.
	TLSKeyFile string `yaml:"tls_key_file"`
	// Auth is what the service endpoint sends with every post, as its
	// authtype says. At least one is required.
	Auth WebhookAuth `yaml:"auth"`
	// MaxBodyBytes bounds a post's body; larger ones get 413. Default:
	// 1048576 (Dataverse trims contexts above 256 KB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// WebhookAuth is the service endpoint's authentication: authtype
// WebhookKey (the code query parameter), HttpHeader or HttpQueryString.
type WebhookAuth struct {
	// WebhookKey is the endpoint's key, which Dataverse sends as ?code=.
	WebhookKey Secret `yaml:"webhook_key"`
	// Headers are header names and the values each post must carry.
	Headers map[string]Secret `yaml:"headers"`
	// Query are query parameters and the values each post must carry.
	Query map[string]Secret `yaml:"query"`
}

// EventHub names the Kafka topic holding the RemoteExecutionContext JSON
// that a Dataverse service endpoint (contract EventHub, message format
// JSON) publishes to an Azure Event Hub, read through the Event Hubs
// namespace's Kafka endpoint.
type EventHub struct {
	// Connection is a connection of type kafka: the namespace's Kafka
	// endpoint. Empty: no event hub is read.
	Connection string `yaml:"connection"`
	// Topic is the event hub. Required with connection.
	Topic string `yaml:"topic"`
}

// Poll configures the change-tracking poller.
type Poll struct {
	// Enabled turns polling on. Default: true. With webhooks, polling
	// fills what they missed (a failed delivery, dvsync down) and can be
	// slow; without, it is how changes arrive.
	Enabled bool `yaml:"enabled"`
	// MinInterval is the wait between rounds of a table that found
	// changes; each empty round doubles it up to MaxInterval. Default: 5s.
	MinInterval time.Duration `yaml:"min_interval"`
	// MaxInterval is the longest wait between rounds. Default: 5m.
	MaxInterval time.Duration `yaml:"max_interval"`
	// PageSize is the number of changes asked for per page. Default: 1000.
	PageSize int `yaml:"page_size"`
}

func (c *Changes) setDefaults() {
	c.Webhook = Webhook{Path: "/dataverse/webhook", MaxBodyBytes: 1 << 20}
	c.Poll = Poll{Enabled: true, MinInterval: 5 * time.Second, MaxInterval: 5 * time.Minute, PageSize: 1000}
}

func (c *Changes) validate(ps *yamlfile.Problems, path string) {
	w := &c.Webhook
	wp := yamlfile.JoinPath(path, "webhook")
	if w.Listen != "" {
		if _, _, err := net.SplitHostPort(w.Listen); err != nil {
			ps.Add(yamlfile.JoinPath(wp, "listen"), "%q is not host:port", w.Listen)
		}
		if !strings.HasPrefix(w.Path, "/") {
			ps.Add(yamlfile.JoinPath(wp, "path"), "%q must start with /", w.Path)
		}
		if (w.TLSCertFile == "") != (w.TLSKeyFile == "") {
			ps.Add(wp, "tls_cert_file and tls_key_file go together: give both or neither")
		}
		if w.Auth.WebhookKey == "" && len(w.Auth.Headers) == 0 && len(w.Auth.Query) == 0 {
			ps.Add(yamlfile.JoinPath(wp, "auth"), "required: webhook_key, headers or query, as the service endpoint's authtype says; an open endpoint would accept anyone's changes")
		}
		if w.MaxBodyBytes < 1024 {
			ps.Add(yamlfile.JoinPath(wp, "max_body_bytes"), "must be at least 1024, got %d", w.MaxBodyBytes)
		}
	}
	if eh := &c.EventHub; eh.Connection != "" || eh.Topic != "" {
		ep := yamlfile.JoinPath(path, "event_hub")
		switch {
		case eh.Connection == "":
			ps.Add(yamlfile.JoinPath(ep, "connection"), "required with topic: a connection of type kafka")
		case eh.Topic == "":
			ps.Add(yamlfile.JoinPath(ep, "topic"), "required: the event hub's name")
		case w.Listen != "":
			ps.Add(ep, "give webhook or event_hub, not both: Dataverse's events arrive one way")
		}
		return
	}
	pp := yamlfile.JoinPath(path, "poll")
	p := &c.Poll
	if !p.Enabled && w.Listen == "" {
		ps.Add(yamlfile.JoinPath(pp, "enabled"), "with no webhook.listen either, no Dataverse change would be captured")
	}
	if p.MinInterval <= 0 {
		ps.Add(yamlfile.JoinPath(pp, "min_interval"), "must be positive, got %s", p.MinInterval)
	}
	if p.MaxInterval < p.MinInterval {
		ps.Add(yamlfile.JoinPath(pp, "max_interval"), "must be at least min_interval (%s), got %s", p.MinInterval, p.MaxInterval)
	}
	if p.PageSize < 1 || p.PageSize > 5000 {
		ps.Add(yamlfile.JoinPath(pp, "page_size"), "must be between 1 and 5000, got %d", p.PageSize)
	}
	if c.UserID != "" && !guid.MatchString(c.UserID) {
		ps.Add(yamlfile.JoinPath(path, "user_id"), "%q is not a GUID", c.UserID)
	}
}

// guid is a Dataverse id as the Web API writes it.
var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
