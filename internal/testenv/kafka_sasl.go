package testenv

import (
	"crypto/tls"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// StartKafkaSASL starts a cluster like StartKafka whose brokers accept
// only SASL-authenticated connections. The one user, user with password
// pass, may authenticate with any of PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512; any other name or password is refused with the broker's
// SASL authentication error. The user is a superuser, so no ACLs apply.
func StartKafkaSASL(t testing.TB, user, pass string, topics ...string) *Kafka {
	t.Helper()
	return startKafka(t, []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", user, pass),
		kfake.Superuser("SCRAM-SHA-256", user, pass),
		kfake.Superuser("SCRAM-SHA-512", user, pass),
	}, topics)
}

// StartKafkaTLS starts a cluster like StartKafka whose listeners speak
// only TLS, configured by server: its Certificates are the brokers'
// certificate, and its ClientAuth and ClientCAs, when set, make the
// brokers demand client certificates. The brokers advertise 127.0.0.1, so
// the certificate must name that IP address or clients must set
// ServerName to a name it holds.
func StartKafkaTLS(t testing.TB, server *tls.Config, topics ...string) *Kafka {
	t.Helper()
	return startKafka(t, []kfake.Opt{kfake.TLS(server)}, topics)
}
