package yamlfile

import (
	"errors"
	"fmt"
	"strings"
)

// expandEnv replaces ${NAME} with the variable's value and ${NAME:-default}
// with the value, or with default when the variable is unset or empty. $${
// stands for a literal ${. Anything else, including a lone $, is kept as
// written, so a password holding $ needs no escaping. The result is not
// expanded again. The errors name variables, never values.
func expandEnv(s string, env func(string) (string, bool)) (out string, expanded bool, errs []error) {
	if !strings.Contains(s, "${") {
		return s, false, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			break
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			errs = append(errs, errors.New("unterminated ${ (write $${ for a literal ${)"))
			break
		}
		ref := s[i+2 : i+end]
		s = s[i+end+1:]
		name, def, hasDef := strings.Cut(ref, ":-")
		if !isEnvName(name) {
			errs = append(errs, fmt.Errorf("${%s} is not a variable reference: a name is letters, digits and _", name))
			continue
		}
		expanded = true
		val, set := env(name)
		switch {
		case set && (val != "" || !hasDef):
			b.WriteString(val)
		case hasDef:
			b.WriteString(def)
		default:
			errs = append(errs, fmt.Errorf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name))
		}
	}
	return b.String(), expanded, errs
}

func isEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
