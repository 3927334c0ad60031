package yamlfile

import (
	"errors"
	"testing"
)

func TestProblemText(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.yaml", Line: 3, Path: "x.y", Msg: "bad"}, "a.yaml:3: x.y: bad"},
		{Problem{File: "a.yaml", Path: "x", Msg: "bad"}, "a.yaml: x: bad"},
		{Problem{Path: "x", Msg: "bad"}, "x: bad"},
		{Problem{File: "a.yaml", Line: 1, Msg: "bad"}, "a.yaml:1: bad"},
	}
	for _, tt := range tests {
		if got := tt.p.Error(); got != tt.want {
			t.Errorf("%+v: got %q, want %q", tt.p, got, tt.want)
		}
	}
	err := Problems{{Line: 2, Msg: "b"}, {Line: 1, Msg: "a"}}.Err()
	if err.Error() != "a\nb" {
		t.Errorf("joined problems = %q, want line order", err)
	}
	var p *Problem
	if !errors.As(err, &p) || p.Msg != "a" {
		t.Errorf("errors.As = %+v", p)
	}
}
