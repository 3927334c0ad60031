package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixture is a module whose packages cover every outcome go test has.
var fixture = map[string]string{
	"go.mod": "module example.com/m\n\ngo 1.26\n",

	"pass/pass.go": "package pass\n",
	"pass/pass_test.go": `package pass

import "testing"

func TestOK(t *testing.T)   { t.Log("quiet when passing") }
func TestSkip(t *testing.T) { t.Skip("not on this machine") }
`,

	"fail/fail.go": "package fail\n",
	"fail/fail_test.go": `package fail

import "testing"

func TestFails(t *testing.T) {
	t.Run("good", func(t *testing.T) {})
	t.Run("bad", func(t *testing.T) { t.Error("boom") })
}

func TestPasses(t *testing.T) { t.Log("also quiet") }
`,

	"hang/hang.go": "package hang\n",
	"hang/hang_test.go": `package hang

import "testing"

func TestHang(t *testing.T) { <-make(chan struct{}) }
`,

	"broken/broken.go": "package broken\n",
	"broken/broken_test.go": `package broken

import "testing"

func TestBroken(t *testing.T) { nope() }
`,

	"notests/notests.go": "package notests\n",
}

func TestSummaryOfRealGoTest(t *testing.T) {
	dir := writeFixture(t)
	out, s := summarize(t, goTestJSON(t, dir, "./..."))

	for _, want := range []string{
		"ok  \texample.com/m/pass\t",
		"?   \texample.com/m/notests\t[no test files]",
		"boom",                        // a failed test's output
		"undefined: nope",             // a build error
		"panic: test timed out after", // a package that did not finish
		"packages: 1 ok, 3 failed, 1 without tests",
		"    SKIP example.com/m/pass TestSkip\n        pass_test.go:6: not on this machine\n",
		"    FAIL example.com/m/fail TestFails/bad (",
		"    FAIL example.com/m/hang TestHang (did not finish)",
		"    FAIL example.com/m/broken\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	for _, unwanted := range []string{"quiet when passing", "also quiet", "=== RUN   TestOK"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("output has %q, which plain go test hides for passing tests", unwanted)
		}
	}
	if got, want := lastLine(out), "tests: 3 passed, 3 failed, 1 skipped"; got != want {
		t.Errorf("last line = %q, want %q", got, want)
	}
	if !s.failed() {
		t.Error("failed() = false for a run with failures")
	}
	if t.Failed() {
		t.Logf("full output:\n%s", out)
	}
}

func TestSummaryOfPassingRun(t *testing.T) {
	dir := writeFixture(t)
	out, s := summarize(t, goTestJSON(t, dir, "./pass/...", "./notests/..."))

	if s.failed() {
		t.Errorf("failed() = true for a passing run; output:\n%s", out)
	}
	if got, want := lastLine(out), "tests: 1 passed, 0 failed, 1 skipped"; got != want {
		t.Errorf("last line = %q, want %q", got, want)
	}
}

func TestSummaryOfCutStream(t *testing.T) {
	// The go command died mid-package: the package's output so far is
	// shown and it counts as failed, with its running test.
	stream := strings.Join([]string{
		`go: a message that is not JSON`,
		`{"Action":"start","Package":"example.com/m/x"}`,
		`{"Action":"run","Package":"example.com/m/x","Test":"TestA"}`,
		`{"Action":"output","Package":"example.com/m/x","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"example.com/m/x","Test":"TestA","Output":"    a_test.go:3: halfway\n"}`,
	}, "\n")
	out, s := summarize(t, []byte(stream))

	for _, want := range []string{
		"go: a message that is not JSON\n",
		"    a_test.go:3: halfway\n",
		"FAIL\texample.com/m/x\t[did not finish]\n",
		"    FAIL example.com/m/x TestA (did not finish)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q; output:\n%s", want, out)
		}
	}
	if !s.failed() {
		t.Error("failed() = false for a cut stream")
	}
}

func writeFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range fixture {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// goTestJSON runs the real go command over the fixture. Its exit status is
// ignored: failing is what most of the fixture is for.
func goTestJSON(t *testing.T, dir string, pkgs ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A short timeout makes the hanging test end the way a real one would.
	args := append([]string{"test", "-json", "-count=1", "-timeout", "2s"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil && ctx.Err() != nil {
		t.Fatalf("go test: %v", err)
	}
	return stdout.Bytes()
}

func summarize(t *testing.T, stream []byte) (string, *summary) {
	t.Helper()
	var out bytes.Buffer
	s := newSummary(&out)
	if err := s.read(bytes.NewReader(stream)); err != nil {
		t.Fatalf("read: %v", err)
	}
	s.report(time.Second)
	return out.String(), s
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
