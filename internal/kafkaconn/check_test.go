package kafkaconn

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/internal/testenv"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// roundTrip writes one message through a Writer on c's Transport and
// reads it back through a Reader on c's Dialer.
func roundTrip(t *testing.T, c Config, topic string) {
	t.Helper()
	ctx := testContext(t)
	tr, err := c.Transport()
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	w := &kafka.Writer{Addr: kafka.TCP(c.Brokers...), Topic: topic, Transport: tr,
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: []byte("hello")}); err != nil {
		t.Fatalf("write: %v", err)
	}
	d, err := c.Dialer()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.Brokers, Topic: topic, Dialer: d,
		GroupID: "g", StartOffset: kafka.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(m.Value) != "hello" {
		t.Fatalf("read %q, want hello", m.Value)
	}
}

func TestSASL(t *testing.T) {
	k := testenv.StartKafkaSASL(t, "alice", "s3cret", "orders")
	for _, mech := range []string{MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512} {
		t.Run(mech, func(t *testing.T) {
			good := Config{Brokers: k.Addrs, SASL: &SASLConfig{Mechanism: mech, Username: "alice", Password: "s3cret"}}
			if err := good.Check(testContext(t)); err != nil {
				t.Fatalf("Check with the right password: %v", err)
			}
			roundTrip(t, good, "orders")

			bad := good
			bad.SASL = &SASLConfig{Mechanism: mech, Username: "alice", Password: "not-the-password"}
			err := bad.Check(testContext(t))
			var ae *AuthError
			if !errors.As(err, &ae) || !IsAuthError(err) {
				t.Fatalf("Check with a wrong password = %v, want an *AuthError", err)
			}
			if !errors.Is(err, kafka.SASLAuthenticationFailed) {
				t.Errorf("AuthError does not wrap kafka.SASLAuthenticationFailed: %v", err)
			}
			msg := err.Error()
			if strings.Contains(msg, "not-the-password") {
				t.Fatalf("error %q contains the password", msg)
			}
			for _, want := range []string{"rejected SASL " + strings.ToUpper(mech), `user "alice"`, "wrong username or password"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not say %q", msg, want)
				}
			}
		})
	}
}

func TestSASLRequiredButMissing(t *testing.T) {
	k := testenv.StartKafkaSASL(t, "alice", "s3cret")
	// A broker that demands SASL answers an unauthenticated metadata
	// request by closing the connection; Check must not report success.
	if err := (Config{Brokers: k.Addrs}).Check(testContext(t)); err == nil {
		t.Fatal("Check without credentials against a SASL cluster succeeded")
	}
}

func TestTLSCustomCAAndClientCertificate(t *testing.T) {
	p := newPKI(t)
	k := testenv.StartKafkaTLS(t, &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.pool,
		MinVersion:   tls.VersionTLS12,
	}, "orders")
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", p.caPEM)
	cert := writeFile(t, dir, "client.pem", p.clientCertPEM)
	key := writeFile(t, dir, "client-key.pem", p.clientKeyPEM)

	good := Config{Brokers: k.Addrs, TLS: &TLSConfig{CAFile: ca, CertFile: cert, KeyFile: key}}
	if err := good.Check(testContext(t)); err != nil {
		t.Fatalf("Check with the CA and a client certificate: %v", err)
	}
	roundTrip(t, good, "orders")

	// ServerName checks the certificate against a name instead of the IP.
	named := good
	named.TLS = &TLSConfig{CAFile: ca, CertFile: cert, KeyFile: key, ServerName: "kafka.internal"}
	if err := named.Check(testContext(t)); err != nil {
		t.Fatalf("Check with server_name: %v", err)
	}
	wrongName := good
	wrongName.TLS = &TLSConfig{CAFile: ca, CertFile: cert, KeyFile: key, ServerName: "other.example"}
	if err := wrongName.Check(testContext(t)); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("Check with a server name the certificate lacks = %v", err)
	}

	// Without the CA the system roots do not trust the broker.
	untrusted := Config{Brokers: k.Addrs, TLS: &TLSConfig{CertFile: cert, KeyFile: key}}
	if err := untrusted.Check(testContext(t)); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Errorf("Check without the CA = %v, want a certificate-not-trusted error", err)
	}
}

func TestTLSAgainstPlaintextBroker(t *testing.T) {
	k := testenv.StartKafka(t)
	c := Config{Brokers: k.Addrs[:1], DialTimeout: 300 * time.Millisecond, TLS: &TLSConfig{InsecureSkipVerify: true}}
	err := c.Check(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "no answer within 300ms") {
		t.Fatalf("TLS to a plaintext broker = %v", err)
	}
}

func TestCheckUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	err = (Config{Brokers: []string{addr}, DialTimeout: time.Second}).Check(testContext(t))
	if err == nil || !strings.Contains(err.Error(), "no bootstrap broker reachable") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Check of a closed port = %v", err)
	}
}
