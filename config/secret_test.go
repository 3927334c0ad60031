package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

func TestSecretIsRedactedEverywhere(t *testing.T) {
	const value = "s3cr3t-t0ken"
	c, err := Parse([]byte(strings.Replace(minimal, "token: tok", "token: "+value, 1)), "x.yaml", envOf())
	if err != nil {
		t.Fatal(err)
	}
	if c.Dataverse.Auth.Token.Reveal() != value {
		t.Fatalf("Reveal = %q", c.Dataverse.Auth.Token.Reveal())
	}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, c), fmt.Sprintf(verb, c.Dataverse.Auth.Token))
	}
	outputs = append(outputs, fmt.Sprint(c.Dataverse.Auth), fmt.Sprintln(c.Connections))

	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("config", "token", c.Dataverse.Auth.Token, "auth", c.Dataverse.Auth)
	outputs = append(outputs, logged.String())

	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	ys, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(js), string(ys))

	for _, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, "pw@") || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if !strings.Contains(string(js), `"Token":"[redacted]"`) {
		t.Errorf("json = %s", js)
	}
	if got := fmt.Sprintf("%s", c.Dataverse.Auth.Token); got != "[redacted]" {
		t.Errorf("%%s = %q", got)
	}
}
