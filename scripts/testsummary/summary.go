package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// event is one line of `go test -json` output; see `go doc test2json`.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type status int

const (
	running status = iota
	passed
	failed
	skipped
)

// test is one test or subtest ("TestX/case").
type test struct {
	pkg     string
	name    string
	status  status
	elapsed float64
	output  []string
}

// pkg collects a package's events until its final pass, fail or skip.
type pkg struct {
	name  string
	lines []line // in arrival order, so failures print as go test prints them
	tests map[string]*test
}

type line struct {
	test string // "" for package-level output
	text string
}

// summary follows a `go test -json` stream. It is not safe for concurrent
// use.
type summary struct {
	w    io.Writer
	pkgs map[string]*pkg

	okPkgs, noTestPkgs int
	failedPkgs         []string
	passedTests        int
	failedTests        []*test
	skippedTests       []*test
}

func newSummary(w io.Writer) *summary {
	return &summary{w: w, pkgs: make(map[string]*pkg)}
}

// read consumes the stream to its end. Lines that are not JSON events (a
// go command message, a stray print) are passed through unchanged.
func (s *summary) read(r io.Reader) error {
	br := bufio.NewReader(r)
	for {
		b, err := br.ReadBytes('\n')
		if len(b) > 0 {
			var e event
			if b[0] == '{' && json.Unmarshal(b, &e) == nil {
				s.handle(e)
			} else {
				writeString(s.w, string(b))
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read test events: %w", err)
		}
	}
	// A package still open here never reported a result: the go command
	// was killed or crashed. Its output is all there is to show.
	for _, name := range slices.Sorted(maps.Keys(s.pkgs)) {
		s.finish(s.pkgs[name], "fail", "did not finish")
	}
	return nil
}

func (s *summary) handle(e event) {
	switch e.Action {
	case "build-output":
		// Compiler and vet errors: print them now, as go test does.
		writeString(s.w, e.Output)
		return
	case "build-fail", "pause", "cont", "bench":
		return
	}
	if e.Package == "" {
		return
	}
	p := s.pkgs[e.Package]
	if p == nil {
		p = &pkg{name: e.Package, tests: make(map[string]*test)}
		s.pkgs[e.Package] = p
	}
	switch e.Action {
	case "run":
		p.test(e.Test)
	case "output":
		p.lines = append(p.lines, line{test: e.Test, text: e.Output})
		if e.Test != "" {
			t := p.test(e.Test)
			t.output = append(t.output, e.Output)
		}
	case "pass", "fail", "skip":
		if e.Test == "" {
			s.finish(p, e.Action, "")
			return
		}
		t := p.test(e.Test)
		t.elapsed = e.Elapsed
		t.status = map[string]status{"pass": passed, "fail": failed, "skip": skipped}[e.Action]
	}
}

func (p *pkg) test(name string) *test {
	t := p.tests[name]
	if t == nil {
		t = &test{pkg: p.name, name: name}
		p.tests[name] = t
	}
	return t
}

// finish prints a package's result the way plain go test does and adds it
// to the counts. why, when set, says why a failed package has no result of
// its own.
func (s *summary) finish(p *pkg, action, why string) {
	delete(s.pkgs, p.name)
	for _, name := range slices.Sorted(maps.Keys(p.tests)) {
		t := p.tests[name]
		switch t.status {
		case passed:
			s.passedTests++
		case skipped:
			s.skippedTests = append(s.skippedTests, t)
		case failed:
			s.failedTests = append(s.failedTests, t)
		case running:
			// Still running when its package ended: the test binary timed
			// out, panicked or exited under it.
			s.failedTests = append(s.failedTests, t)
		}
	}
	switch action {
	case "pass":
		s.okPkgs++
		s.printResultLine(p, "ok  \t%s\n")
	case "skip":
		s.noTestPkgs++
		s.printResultLine(p, "?   \t%s\t[no test files]\n")
	default:
		s.failedPkgs = append(s.failedPkgs, p.name)
		for _, l := range p.lines {
			if l.test == "" || p.tests[l.test].status == failed || p.tests[l.test].status == running {
				writeString(s.w, l.text)
			}
		}
		if why != "" {
			fmt.Fprintf(s.w, "FAIL\t%s\t[%s]\n", p.name, why)
		}
	}
}

// printResultLine prints go test's own one-line result for a package that
// passed or has no tests ("ok  \tpkg\t0.123s"), or format when there is
// none.
func (s *summary) printResultLine(p *pkg, format string) {
	for _, l := range p.lines {
		if l.test == "" && (strings.HasPrefix(l.text, "ok") || strings.HasPrefix(l.text, "?")) {
			writeString(s.w, l.text)
			return
		}
	}
	fmt.Fprintf(s.w, format, p.name)
}

func (s *summary) failed() bool {
	return len(s.failedPkgs) > 0 || len(s.failedTests) > 0
}

// report prints the summary; its last line is the one CI logs are read by.
func (s *summary) report(took time.Duration) {
	fmt.Fprintf(s.w, "\n=== test summary (%s)\n", took.Round(time.Second))
	fmt.Fprintf(s.w, "packages: %d ok, %d failed, %d without tests\n", s.okPkgs, len(s.failedPkgs), s.noTestPkgs)
	if len(s.skippedTests) > 0 {
		fmt.Fprintln(s.w, "skipped:")
		for _, t := range s.skippedTests {
			fmt.Fprintf(s.w, "    SKIP %s %s\n", t.pkg, t.name)
			for _, o := range t.output {
				if !strings.HasPrefix(o, "=== ") && !strings.HasPrefix(strings.TrimSpace(o), "--- SKIP") {
					fmt.Fprintf(s.w, "        %s", strings.TrimLeft(o, " "))
				}
			}
		}
	}
	if len(s.failedPkgs) > 0 {
		fmt.Fprintln(s.w, "failed packages:")
		for _, name := range s.failedPkgs {
			fmt.Fprintf(s.w, "    FAIL %s\n", name)
		}
	}
	if len(s.failedTests) > 0 {
		fmt.Fprintln(s.w, "failed tests:")
		for _, t := range s.failedTests {
			if t.status == running {
				fmt.Fprintf(s.w, "    FAIL %s %s (did not finish)\n", t.pkg, t.name)
			} else {
				fmt.Fprintf(s.w, "    FAIL %s %s (%.2fs)\n", t.pkg, t.name, t.elapsed)
			}
		}
	}
	fmt.Fprintf(s.w, "tests: %d passed, %d failed, %d skipped\n", s.passedTests, len(s.failedTests), len(s.skippedTests))
}
