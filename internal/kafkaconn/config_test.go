package kafkaconn

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/segmentio/kafka-go/sasl/plain"
)

func TestValidate(t *testing.T) {
	ok := Config{Brokers: []string{"b1:9092", "[::1]:9093"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no brokers":     {Config{}, "no brokers"},
		"no port":        {Config{Brokers: []string{"b1"}}, `"b1" is not host:port`},
		"empty port":     {Config{Brokers: []string{"b1:"}}, "not host:port"},
		"cert alone":     {Config{Brokers: []string{"b:1"}, TLS: &TLSConfig{CertFile: "c.pem"}}, "go together"},
		"mechanism":      {Config{Brokers: []string{"b:1"}, SASL: &SASLConfig{Mechanism: "gssapi", Username: "u", Password: "hunter2"}}, `unknown sasl mechanism "gssapi"`},
		"empty mech":     {Config{Brokers: []string{"b:1"}, SASL: &SASLConfig{Username: "u"}}, "mechanism is empty"},
		"empty username": {Config{Brokers: []string{"b:1"}, SASL: &SASLConfig{Mechanism: "plain", Password: "hunter2"}}, "username is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q contains the password", err)
			}
		})
	}
}

func TestStringHidesPassword(t *testing.T) {
	c := Config{Brokers: []string{"b:9093"}, TLS: &TLSConfig{}, SASL: &SASLConfig{Mechanism: "plain", Username: "$ConnectionString", Password: "Endpoint=sb://x/;SharedAccessKey=hunter2"}}
	s := c.String()
	if strings.Contains(s, "hunter2") {
		t.Fatalf("String() = %q contains the password", s)
	}
	for _, want := range []string{"brokers=b:9093", "client_id=dvsync", "tls=on", "sasl=plain", "user=$ConnectionString"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() = %q, want it to contain %q", s, want)
		}
	}
}

func TestMechanismCaseInsensitive(t *testing.T) {
	for _, m := range []string{"PLAIN", "Scram-SHA-256", "SCRAM-SHA-512"} {
		c := Config{Brokers: []string{"b:1"}, SASL: &SASLConfig{Mechanism: m, Username: "u", Password: "p"}}
		d, err := c.Dialer()
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if got := d.SASLMechanism.Name(); !strings.EqualFold(got, m) {
			t.Errorf("mechanism %s built %s", m, got)
		}
	}
	c := Config{Brokers: []string{"b:1"}, SASL: &SASLConfig{Mechanism: "plain", Username: "u", Password: "p"}}
	tr, err := c.Transport()
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := tr.SASL.(plain.Mechanism); !ok || m.Username != "u" || m.Password != "p" {
		t.Fatalf("transport SASL = %#v", tr.SASL)
	}
	if tr.ClientID != "dvsync" || tr.TLS != nil {
		t.Fatalf("transport client id %q, TLS %v", tr.ClientID, tr.TLS)
	}
}

func TestTLSBuild(t *testing.T) {
	pki := newPKI(t)
	dir := t.TempDir()
	ca := writeFile(t, dir, "ca.pem", pki.caPEM)
	cert := writeFile(t, dir, "client.pem", pki.clientCertPEM)
	key := writeFile(t, dir, "client-key.pem", pki.clientKeyPEM)

	tc, err := (&TLSConfig{CAFile: ca, CertFile: cert, KeyFile: key, ServerName: "kafka.internal"}).Build()
	if err != nil {
		t.Fatal(err)
	}
	if tc.MinVersion != tls.VersionTLS12 || tc.ServerName != "kafka.internal" || tc.InsecureSkipVerify {
		t.Fatalf("tls.Config = min %x name %q insecure %v", tc.MinVersion, tc.ServerName, tc.InsecureSkipVerify)
	}
	if tc.RootCAs == nil || len(tc.Certificates) != 1 {
		t.Fatalf("tls.Config has roots %v and %d certificates", tc.RootCAs != nil, len(tc.Certificates))
	}

	if _, err := (&TLSConfig{CAFile: filepath.Join(dir, "missing.pem")}).Build(); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing CA file: %v", err)
	}
	if _, err := (&TLSConfig{CAFile: key}).Build(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("CA file without a certificate: %v", err)
	}
	if _, err := (&TLSConfig{CertFile: cert, KeyFile: ca}).Build(); err == nil || !strings.Contains(err.Error(), "client certificate") {
		t.Errorf("mismatched key: %v", err)
	}
	// An empty TLSConfig means TLS against the system roots.
	tc, err = (&TLSConfig{}).Build()
	if err != nil || tc.RootCAs != nil || len(tc.Certificates) != 0 {
		t.Fatalf("empty TLSConfig: %v, %+v", err, tc)
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
