package yamlfile

import "testing"

func TestHint(t *testing.T) {
	known := []string{"source", "target", "type"}
	tests := map[string]string{
		"tagret": `(did you mean "target"?)`,
		"sorce":  `(did you mean "source"?)`,
		"typ":    `(did you mean "type"?)`,
		"colour": "(expected one of: source, target, type)",
	}
	for in, want := range tests {
		if got := Hint(in, known); got != want {
			t.Errorf("Hint(%q) = %s, want %s", in, got, want)
		}
	}
}
