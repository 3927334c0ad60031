package testenv

import (
	"testing"
	"time"
)

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, 5*time.Second, "the third check", func() bool { n++; return n >= 3 })
	if n != 3 {
		t.Errorf("checked %d times, want 3", n)
	}
}
