package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/segmentio/kafka-go"
)

// AuthError is a broker's refusal of the configured SASL credentials.
// Retrying will not help, so callers treat it as fatal. Its message names
// the broker, mechanism and user but never the password.
type AuthError struct {
	Broker    string
	Mechanism string
	Username  string
	// Err is kafka-go's error, which wraps kafka.SASLAuthenticationFailed
	// (or the broker's other SASL error code).
	Err error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("kafka: broker %s rejected SASL %s authentication as user %q: wrong username or password, or a mechanism the user has no credentials for",
		e.Broker, strings.ToUpper(e.Mechanism), e.Username)
}

func (e *AuthError) Unwrap() error { return e.Err }

// Check connects to the bootstrap brokers in order until one accepts the
// connection, completing the TLS and SASL handshakes, and reads the
// cluster's metadata through it. It returns nil as soon as one broker
// works.
//
// kafka-go's Writer reports a refused login only as "unexpected EOF", so
// sources and sinks call Check when they start, to fail with an error that
// says what is wrong: an *AuthError for refused credentials, a TLS error
// naming the broker for a certificate problem, or the dial error of every
// broker when none can be reached.
func (c Config) Check(ctx context.Context) error {
	d, err := c.Dialer()
	if err != nil {
		return err
	}
	var errs []error
	for _, addr := range c.Brokers {
		err := c.checkOne(ctx, d, addr)
		if err == nil {
			return nil
		}
		var ae *AuthError
		if errors.As(err, &ae) {
			// Every broker of a cluster shares the same users; the
			// next would refuse them just the same.
			return err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("kafka: no bootstrap broker reachable: %w", errors.Join(errs...))
}

func (c Config) checkOne(ctx context.Context, d *kafka.Dialer, addr string) error {
	// The Dialer's timeout covers the TCP connect only; a TLS client
	// talking to a plaintext port would wait for a server hello forever.
	ctx, cancel := context.WithTimeout(ctx, c.dialTimeout())
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: no answer within %s (a TLS setting that does not match the port?): %w", addr, c.dialTimeout(), err)
		}
		return c.explain(addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Brokers(); err != nil {
		return fmt.Errorf("%s: read metadata: %w", addr, err)
	}
	return nil
}

// explain turns a dial error into one that names its cause.
func (c Config) explain(addr string, err error) error {
	var kerr kafka.Error
	if c.SASL != nil && errors.As(err, &kerr) &&
		(kerr == kafka.SASLAuthenticationFailed || kerr == kafka.UnsupportedSASLMechanism || kerr == kafka.IllegalSASLState) {
		return &AuthError{Broker: addr, Mechanism: c.SASL.Mechanism, Username: c.SASL.Username, Err: err}
	}
	var (
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		rerr tls.RecordHeaderError
		cerr *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &herr):
		return fmt.Errorf("%s: TLS: broker certificate does not match its address (set tls.server_name): %w", addr, err)
	case errors.As(err, &uerr):
		return fmt.Errorf("%s: TLS: broker certificate not trusted (set tls.ca_file to the CA that signed it): %w", addr, err)
	case errors.As(err, &cerr):
		return fmt.Errorf("%s: TLS: broker certificate rejected: %w", addr, err)
	case errors.As(err, &rerr):
		return fmt.Errorf("%s: TLS: the broker does not speak TLS on this port: %w", addr, err)
	}
	return fmt.Errorf("%s: %w", addr, err)
}

// IsAuthError reports whether err is, or wraps, a refusal of the SASL
// credentials, whether Check classified it or a kafka-go call returned
// the broker's error code.
func IsAuthError(err error) bool {
	var ae *AuthError
	if errors.As(err, &ae) {
		return true
	}
	return errors.Is(err, kafka.SASLAuthenticationFailed)
}
