// Command testsummary reads `go test -json` output on stdin and prints what
// plain `go test` would (an ok line per passing package, the full output of
// failing tests and packages, build errors), followed by a summary: package
// and test counts, every failed and skipped test, and a closing line of the
// form "tests: N passed, N failed, N skipped".
//
// It exits 1 when any package or test failed, and 2 when stdin cannot be
// read, so `go test -json ./... | testsummary` under `set -o pipefail` fails
// exactly when the tests do.
package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

func main() {
	start := time.Now()
	s := newSummary(os.Stdout)
	if err := s.read(os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "testsummary: %v\n", err)
		os.Exit(2)
	}
	s.report(time.Since(start))
	if s.failed() {
		os.Exit(1)
	}
}

// writeString writes to the terminal; a failed write there has nowhere
// better to be reported, and the exit code still tells the outcome.
func writeString(w io.Writer, s string) {
	_, _ = io.WriteString(w, s)
}
