package yamlfile

import (
	"strings"
	"testing"
)

// envOf returns a lookup function over a fixed set of variables.
func envOf(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestExpandEnv(t *testing.T) {
	env := envOf("HOST", "db.local", "EMPTY", "", "DOLLAR", "${HOST}")
	tests := []struct {
		in, want string
		expanded bool
		errs     []string
	}{
		{in: "plain", want: "plain"},
		{in: "pa$$word$", want: "pa$$word$"},
		{in: "${HOST}", want: "db.local", expanded: true},
		{in: "host=${HOST} port=${PORT:-5432}", want: "host=db.local port=5432", expanded: true},
		{in: "${EMPTY}", want: "", expanded: true},
		{in: "${EMPTY:-fallback}", want: "fallback", expanded: true},
		{in: "${HOST:-unused}", want: "db.local", expanded: true},
		{in: "${UNSET:-}", want: "", expanded: true},
		{in: "${DOLLAR}", want: "${HOST}", expanded: true}, // not expanded twice
		{in: "$${HOST}", want: "${HOST}"},
		{in: "a${UNSET}b${ALSO_UNSET}", want: "ab", expanded: true, errs: []string{
			"environment variable UNSET is not set (write ${UNSET:-default} to give a default)",
			"environment variable ALSO_UNSET is not set (write ${ALSO_UNSET:-default} to give a default)",
		}},
		{in: "${HOST", want: "", errs: []string{"unterminated ${ (write $${ for a literal ${)"}},
		{in: "${1X}", want: "", errs: []string{"${1X} is not a variable reference: a name is letters, digits and _"}},
		{in: "${}", want: "", errs: []string{"${} is not a variable reference: a name is letters, digits and _"}},
	}
	for _, tt := range tests {
		got, expanded, errs := expandEnv(tt.in, env)
		if got != tt.want || expanded != tt.expanded {
			t.Errorf("expandEnv(%q) = %q, %v; want %q, %v", tt.in, got, expanded, tt.want, tt.expanded)
		}
		if msg := strings.Join(errorStrings(errs), "|"); msg != strings.Join(tt.errs, "|") {
			t.Errorf("expandEnv(%q) errors = %q, want %q", tt.in, msg, tt.errs)
		}
	}
}

func errorStrings(errs []error) []string {
	var s []string
	for _, err := range errs {
		s = append(s, err.Error())
	}
	return s
}
