package dataverse

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Config configures a Source. The zero value of every optional field
// selects its default. At least one of Webhook and Poll must be set.
type Config struct {
	// Name identifies the source's inbox in the state store: the
	// pipeline's name. Two sources must not share it.
	Name string `yaml:"name"`
	// Webhook configures the receiver of the contexts Dataverse posts;
	// nil runs none.
	Webhook *WebhookConfig `yaml:"webhook"`
	// Poll configures the change-tracking poller; nil runs none.
	Poll *PollConfig `yaml:"poll"`
	// OwnUserIDs are the Dataverse user ids dvsync writes as (its
	// application user, from WhoAmI). Changes they made are not captured:
	// they are dvsync's own writes coming back.
	OwnUserIDs []string `yaml:"own_user_ids"`
	// Tag is the value dvsync passes as the "tag" shared variable on its
	// writes; webhook contexts carrying it are not captured. Empty turns
	// the check off.
	Tag string `yaml:"tag"`
	// MaxBatch bounds the records one Read returns. Default 256.
	MaxBatch int `yaml:"max_batch"`
}

// WebhookConfig configures the webhook receiver.
type WebhookConfig struct {
	// Listen is the TCP address to listen on, e.g. ":8443".
	Listen string `yaml:"listen"`
	// Path is the URL path registered with Dataverse. Default
	// "/dataverse/webhook".
	Path string `yaml:"path"`
	// TLSCertFile and TLSKeyFile, both or neither, make the receiver
	// serve HTTPS; Dataverse only posts to https URLs, so without them a
	// TLS-terminating proxy must sit in front.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// Auth is what every request must carry. At least one is required.
	Auth WebhookAuth `yaml:"auth"`
	// MaxBodyBytes bounds a request body; larger ones get 413. Default
	// 1 MiB (Dataverse trims contexts above 256 KB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// WebhookAuth mirrors the service endpoint's authtype: WebhookKey (sent
// as the "code" query parameter), HttpHeader (header name/value pairs) or
// HttpQueryString (query parameter name/value pairs). Every value set
// must match; all are secrets and never logged.
type WebhookAuth struct {
	WebhookKey string            `yaml:"webhook_key" secret:"true"`
	Headers    map[string]string `yaml:"headers" secret:"true"`
	Query      map[string]string `yaml:"query" secret:"true"`
}

// PollConfig configures the change-tracking poller.
type PollConfig struct {
	// Tables are the tables to poll, each with change tracking enabled.
	Tables []PollTable `yaml:"tables"`
	// MinInterval and MaxInterval bound the wait between two rounds of a
	// table: after a round that found changes the poller waits
	// MinInterval, after each empty round twice as long as before, up to
	// MaxInterval. Defaults 5s and 5m.
	MinInterval time.Duration `yaml:"min_interval"`
	MaxInterval time.Duration `yaml:"max_interval"`
	// PageSize is the odata.maxpagesize asked for. Default 1000.
	PageSize int `yaml:"page_size"`
}

// PollTable is one polled table.
type PollTable struct {
	// Table is the logical name, e.g. "contact".
	Table string `yaml:"table"`
	// Select lists the columns to read; empty reads all of them. The
	// primary id, versionnumber, modifiedon and modifiedby are always
	// read.
	Select []string `yaml:"select"`
}

// Defaults of Config's optional fields.
const (
	DefaultPath         = "/dataverse/webhook"
	DefaultMaxBodyBytes = 1 << 20
	DefaultMinInterval  = 5 * time.Second
	DefaultMaxInterval  = 5 * time.Minute
	DefaultPageSize     = 1000
	DefaultMaxBatch     = 256
)

// withDefaults returns c with defaults in its zero fields; nested configs
// are copied, not shared with the caller.
func (c Config) withDefaults() Config {
	if c.MaxBatch <= 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.Webhook != nil {
		w := *c.Webhook
		if w.Path == "" {
			w.Path = DefaultPath
		}
		if w.MaxBodyBytes <= 0 {
			w.MaxBodyBytes = DefaultMaxBodyBytes
		}
		c.Webhook = &w
	}
	if c.Poll != nil {
		p := *c.Poll
		if p.MinInterval <= 0 {
			p.MinInterval = DefaultMinInterval
		}
		if p.MaxInterval <= 0 {
			p.MaxInterval = DefaultMaxInterval
		}
		if p.PageSize <= 0 {
			p.PageSize = DefaultPageSize
		}
		c.Poll = &p
	}
	return c
}

// validate reports every problem of a defaulted config at once.
func (c Config) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if c.Webhook == nil && c.Poll == nil {
		errs = append(errs, errors.New("set webhook, poll or both"))
	}
	if w := c.Webhook; w != nil {
		if w.Listen == "" {
			errs = append(errs, errors.New("webhook.listen is required"))
		}
		if !strings.HasPrefix(w.Path, "/") {
			errs = append(errs, fmt.Errorf("webhook.path %q must start with /", w.Path))
		}
		if (w.TLSCertFile == "") != (w.TLSKeyFile == "") {
			errs = append(errs, errors.New("webhook.tls_cert_file and webhook.tls_key_file go together"))
		}
		if w.Auth.WebhookKey == "" && len(w.Auth.Headers) == 0 && len(w.Auth.Query) == 0 {
			errs = append(errs, errors.New("webhook.auth needs webhook_key, headers or query: an open endpoint would accept anyone's changes"))
		}
		for name, v := range w.Auth.Headers {
			if name == "" || v == "" {
				errs = append(errs, errors.New("webhook.auth.headers has an empty name or value"))
			}
		}
		for name, v := range w.Auth.Query {
			if name == "" || v == "" {
				errs = append(errs, errors.New("webhook.auth.query has an empty name or value"))
			}
		}
	}
	if p := c.Poll; p != nil {
		if len(p.Tables) == 0 {
			errs = append(errs, errors.New("poll.tables is empty"))
		}
		seen := map[string]bool{}
		for i, t := range p.Tables {
			if t.Table == "" {
				errs = append(errs, fmt.Errorf("poll.tables[%d].table is required", i))
			} else if seen[t.Table] {
				errs = append(errs, fmt.Errorf("poll.tables[%d]: %s is listed twice", i, t.Table))
			}
			seen[t.Table] = true
		}
		if p.MinInterval > p.MaxInterval {
			errs = append(errs, fmt.Errorf("poll.min_interval %s exceeds poll.max_interval %s", p.MinInterval, p.MaxInterval))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dataverse source: %w", err)
	}
	return nil
}
