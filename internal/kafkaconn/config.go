package kafkaconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanism names accepted in SASLConfig.Mechanism, compared without
// regard to case.
const (
	MechanismPlain       = "plain"
	MechanismSCRAMSHA256 = "scram-sha-256"
	MechanismSCRAMSHA512 = "scram-sha-512"
)

// DefaultDialTimeout bounds connecting to one broker, TLS and SASL
// handshakes included, when Config.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// Config is how to reach one Kafka cluster. The zero TLS and SASL mean a
// plaintext, unauthenticated connection, which only a local or private
// broker should accept.
//
// A Config is a plain value: it is safe to copy, and the Dialer and
// Transport built from it do not refer back to it.
type Config struct {
	// Brokers are the bootstrap servers as host:port. The client learns
	// the rest of the cluster from them.
	Brokers []string `yaml:"brokers"`
	// ClientID names this client in the brokers' logs and quotas;
	// "dvsync" when empty.
	ClientID string `yaml:"client_id,omitempty"`
	// DialTimeout bounds connecting to one broker; DefaultDialTimeout
	// when zero.
	DialTimeout time.Duration `yaml:"dial_timeout,omitempty"`
	// TLS, when not nil, encrypts every connection. An empty TLSConfig
	// verifies the brokers against the system's root certificates, which
	// is what managed services (Confluent Cloud, MSK, Event Hubs) need.
	TLS *TLSConfig `yaml:"tls,omitempty"`
	// SASL, when not nil, authenticates every connection.
	SASL *SASLConfig `yaml:"sasl,omitempty"`
}

// TLSConfig configures TLS to the brokers. File names are read when a
// Dialer or Transport is built, not when the Config is loaded.
type TLSConfig struct {
	// CAFile is a PEM file of certificates that may sign the brokers'
	// certificates, in place of the system roots: a private CA.
	CAFile string `yaml:"ca_file,omitempty"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// brokers that authenticate clients by certificate (mutual TLS).
	// Both or neither.
	CertFile string `yaml:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file,omitempty"`
	// InsecureSkipVerify accepts any broker certificate. It defeats TLS's
	// protection against a man in the middle; only for tests.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify,omitempty"`
	// ServerName overrides the name the brokers' certificates are checked
	// against, which is otherwise the host each broker advertises.
	ServerName string `yaml:"server_name,omitempty"`
}

// SASLConfig configures SASL authentication.
type SASLConfig struct {
	// Mechanism is "plain", "scram-sha-256" or "scram-sha-512".
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password is never included in errors or in String.
	Password string `yaml:"password"`
}

// String describes c for logs: brokers, client id, whether TLS is on and
// the SASL mechanism and user. It never includes the password.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "brokers=%s client_id=%s", strings.Join(c.Brokers, ","), c.clientID())
	if c.TLS != nil {
		b.WriteString(" tls=on")
	}
	if c.SASL != nil {
		fmt.Fprintf(&b, " sasl=%s user=%s", c.SASL.Mechanism, c.SASL.Username)
	}
	return b.String()
}

// Validate reports the first setting that cannot work, without touching
// the network or the file system.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers configured")
	}
	for _, b := range c.Brokers {
		if i := strings.LastIndexByte(b, ':'); i <= 0 || i == len(b)-1 {
			return fmt.Errorf("kafka: broker %q is not host:port", b)
		}
	}
	if t := c.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		return errors.New("kafka: tls cert_file and key_file go together")
	}
	if s := c.SASL; s != nil {
		if _, err := mechanism(s); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) clientID() string {
	if c.ClientID == "" {
		return "dvsync"
	}
	return c.ClientID
}

func (c Config) dialTimeout() time.Duration {
	if c.DialTimeout <= 0 {
		return DefaultDialTimeout
	}
	return c.DialTimeout
}

// Dialer returns a kafka-go Dialer carrying c's client id, timeout, TLS
// and SASL settings, for kafka.ReaderConfig.Dialer and kafka.DialContext.
// It reads the TLS files now, so a missing or malformed file is reported
// here rather than on the first connection.
func (c Config) Dialer() (*kafka.Dialer, error) {
	tc, mech, err := c.build()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{
		ClientID:      c.clientID(),
		Timeout:       c.dialTimeout(),
		DualStack:     true,
		TLS:           tc,
		SASLMechanism: mech,
	}, nil
}

// Transport returns a kafka-go Transport carrying c's client id, timeout,
// TLS and SASL settings, for kafka.Writer.Transport and kafka.Client. It
// reads the TLS files now, like Dialer. The caller should call its
// CloseIdleConnections when done with it.
func (c Config) Transport() (*kafka.Transport, error) {
	tc, mech, err := c.build()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{
		ClientID:    c.clientID(),
		DialTimeout: c.dialTimeout(),
		TLS:         tc,
		SASL:        mech,
	}, nil
}

func (c Config) build() (*tls.Config, sasl.Mechanism, error) {
	if err := c.Validate(); err != nil {
		return nil, nil, err
	}
	var tc *tls.Config
	if c.TLS != nil {
		var err error
		if tc, err = c.TLS.Build(); err != nil {
			return nil, nil, err
		}
	}
	var mech sasl.Mechanism
	if c.SASL != nil {
		var err error
		if mech, err = mechanism(c.SASL); err != nil {
			return nil, nil, err
		}
	}
	return tc, mech, nil
}

// Build returns the crypto/tls configuration t describes, reading its
// files. TLS 1.2 is the minimum, as every managed Kafka service requires.
func (t *TLSConfig) Build() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, // documented as for tests only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka: tls ca_file %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka: tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func mechanism(s *SASLConfig) (sasl.Mechanism, error) {
	if s.Username == "" {
		return nil, errors.New("kafka: sasl username is empty")
	}
	switch strings.ToLower(s.Mechanism) {
	case MechanismPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		algo := scram.SHA256
		if strings.EqualFold(s.Mechanism, MechanismSCRAMSHA512) {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, s.Username, s.Password)
		if err != nil {
			// scram's errors come from SASLprep of the name and
			// password; say which without echoing either.
			return nil, errors.New("kafka: sasl username or password contains characters SCRAM does not allow")
		}
		return m, nil
	case "":
		return nil, errors.New("kafka: sasl mechanism is empty (want plain, scram-sha-256 or scram-sha-512)")
	}
	return nil, fmt.Errorf("kafka: unknown sasl mechanism %q (want plain, scram-sha-256 or scram-sha-512)", s.Mechanism)
}
