// Package compat_test proves the emulator's fidelity with a client nobody on
// this project wrote: it starts the emulator and runs
// dynamicswebapi.test.mjs, a node:test suite that drives it through the
// dynamics-web-api npm package (DynamicsWebApi v2, pinned in
// package-lock.json). Node.js 20 or newer must be on PATH; the npm
// dependencies are installed with `npm ci` when they are missing or differ
// from the lockfile.
package compat_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/internal/testenv"
)

// suiteTimeout bounds npm ci plus the node run; both take seconds normally.
const suiteTimeout = 5 * time.Minute

// minNodeMajor is the oldest Node.js whose node:test runner and fetch the
// suite and DynamicsWebApi rely on.
const minNodeMajor = 20

func TestDynamicsWebApi(t *testing.T) {
	node := requireNode(t)
	ctx, cancel := context.WithTimeout(t.Context(), suiteTimeout)
	defer cancel()
	installDeps(ctx, t)

	schema, err := os.ReadFile("schema.yaml")
	if err != nil {
		t.Fatal(err)
	}
	emu := testenv.StartEmulator(t, string(schema))

	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", "dynamicswebapi.test.mjs")
	cmd.Env = append(os.Environ(),
		"DVSYNC_EMULATOR_URL="+emu.URL,
		"DVSYNC_EMULATOR_TOKEN="+emu.Token,
		"NO_COLOR=1",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test dynamicswebapi.test.mjs: %v\n%s", err, out)
	}
	sum, err := parseTAPSummary(out)
	if err != nil {
		t.Fatalf("node --test output: %v\n%s", err, out)
	}
	// A suite that quietly ran nothing, or skipped its cases, proves nothing.
	if sum["tests"] == 0 || sum["fail"] != 0 || sum["skipped"] != 0 || sum["todo"] != 0 || sum["cancelled"] != 0 {
		t.Fatalf("node --test summary %v: want tests > 0 and no fail, skipped, todo or cancelled\n%s", sum, out)
	}
	t.Logf("DynamicsWebApi suite: %d tests passed", sum["pass"])
}

// requireNode returns the path of a node binary new enough for the suite, or
// fails the test saying what to install.
func requireNode(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("Node.js %d or newer, with npm, is required for the DynamicsWebApi compatibility suite and 'node' is not on PATH (see https://nodejs.org/en/download; Debian 12's own nodejs package is too old)", minNodeMajor)
	}
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", node, err)
	}
	v := strings.TrimSpace(string(out))
	major, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(v, "v"), ".", 2)[0])
	if err != nil || major < minNodeMajor {
		t.Fatalf("Node.js %d or newer is required for the DynamicsWebApi compatibility suite; %s is %s", minNodeMajor, node, v)
	}
	return node
}

// installDeps runs `npm ci` unless node_modules already holds the
// dynamics-web-api version the lockfile pins. Comparing that one version
// keeps the common case (installed, unchanged) free of npm, and still
// reinstalls after the pin moves.
func installDeps(ctx context.Context, t *testing.T) {
	t.Helper()
	const pkg = "dynamics-web-api"
	want, err := lockedVersion("package-lock.json", pkg)
	if err != nil {
		t.Fatal(err)
	}
	have, err := installedVersion(filepath.Join("node_modules", pkg, "package.json"))
	if err == nil && have == want {
		return
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is required to install %s@%s for the compatibility suite and is not on PATH; it comes with Node.js (https://nodejs.org/en/download)", pkg, want)
	}
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in emulator/compat: %v\n%s", err, out)
	}
	if have, err := installedVersion(filepath.Join("node_modules", pkg, "package.json")); err != nil || have != want {
		t.Fatalf("after npm ci, node_modules has %s %q (%v); package-lock.json pins %q", pkg, have, err, want)
	}
}

// lockedVersion reads the version of node_modules/<pkg> from an npm v3
// lockfile.
func lockedVersion(lockfile, pkg string) (string, error) {
	data, err := os.ReadFile(lockfile)
	if err != nil {
		return "", err
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return "", fmt.Errorf("%s: %w", lockfile, err)
	}
	entry, ok := lock.Packages["node_modules/"+pkg]
	if !ok || entry.Version == "" {
		return "", fmt.Errorf("%s does not pin %s", lockfile, pkg)
	}
	return entry.Version, nil
}

// installedVersion reads "version" from an installed package's package.json.
func installedVersion(packageJSON string) (string, error) {
	data, err := os.ReadFile(packageJSON)
	if err != nil {
		return "", err
	}
	var p struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return "", fmt.Errorf("%s: %w", packageJSON, err)
	}
	return p.Version, nil
}

// tapSummaryLine matches the counters node's TAP reporter prints last,
// e.g. "# pass 30".
var tapSummaryLine = regexp.MustCompile(`^# (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$`)

// parseTAPSummary returns the final counters of a node --test TAP report.
func parseTAPSummary(out []byte) (map[string]int, error) {
	sum := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := tapSummaryLine.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[2])
			sum[m[1]] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if _, ok := sum["tests"]; !ok {
		return nil, errors.New("no test summary")
	}
	return sum, nil
}
