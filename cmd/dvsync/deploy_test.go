package main

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// The deployment tests run the static binary the way deploy/Dockerfile,
// deploy/kubernetes and deploy/systemd run it: as an unprivileged user,
// with the config and mappings read-only and only the state directory
// (and /tmp, where large PostgreSQL transactions are spooled) writable.
//
// As root (CI and this project's machines) the daemon runs in its own
// mount namespace (unshare(1)) chrooted into a root filesystem that is a
// read-only bind mount, holding nothing but the binary, the config and the
// mappings, with the state directory bind-mounted writable on top and a
// tmpfs /tmp: the shape of a distroless container with
// readOnlyRootFilesystem. Where root may not create mount namespaces, the
// daemon runs as nobody (setpriv(1)) and file permissions keep the config
// read-only; as any other user, they keep it read-only to that user.

// nobody is the unprivileged uid and gid the sandboxed daemon runs as;
// distroless's nonroot user is 65532, systemd's DynamicUser picks one.
const nobody = 65534

// sandboxScript sets up the mount namespace unshare created and executes
// the daemon in it. Mounts made here vanish with the namespace when the
// daemon exits, so nothing leaks onto the host.
const sandboxScript = `set -eu
root=$1 state=$2
shift 2
mount --bind "$root" "$root"
mount -o remount,bind,ro "$root"
mount --bind "$state" "$root/var/lib/dvsync"
mount -t tmpfs -o mode=1777,size=64m tmpfs "$root/tmp"
mount -t proc proc "$root/proc"
exec chroot --userspec=65534:65534 "$root" "$@"
`

// isolation is how a sandbox keeps the daemon from writing.
type isolation int

const (
	readOnlyRoot isolation = iota // root: mount namespace, read-only root, chroot, nobody
	asNobody                      // root without namespaces: nobody and file permissions
	permissions                   // any other user: file permissions
)

func (i isolation) String() string {
	switch i {
	case readOnlyRoot:
		return "mount namespace, read-only bind-mounted root, chroot, uid 65534"
	case asNobody:
		return "uid 65534 (setpriv), file permissions"
	}
	return fmt.Sprintf("file permissions, uid %d", os.Geteuid())
}

// sandbox is a root filesystem for the daemon and its state directory.
type sandbox struct {
	root  string // holds usr/local/bin/dvsync and etc/dvsync
	state string // /var/lib/dvsync, as the daemon sees it
	how   isolation
}

// newSandbox lays out the root filesystem with the static binary and the
// example config and mappings of deploy/examples.
func newSandbox(t *testing.T) *sandbox {
	t.Helper()
	s := &sandbox{root: t.TempDir(), state: t.TempDir(), how: permissions}
	if os.Geteuid() == 0 {
		s.how = asNobody
		if exec.Command("unshare", "--mount", "--propagation", "private", "true").Run() == nil {
			s.how = readOnlyRoot
		}
	}
	for _, d := range []string{"usr/local/bin", "etc/dvsync/mappings", "var/lib/dvsync", "tmp", "proc"} {
		if err := os.MkdirAll(filepath.Join(s.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	buildStatic(t, filepath.Join(s.root, "usr/local/bin/dvsync"))
	copyFile(t, filepath.Join(examples, "dvsync.yaml"), filepath.Join(s.root, "etc/dvsync/dvsync.yaml"))
	copyFile(t, filepath.Join(examples, "mappings/customers.yaml"), filepath.Join(s.root, "etc/dvsync/mappings/customers.yaml"))

	if s.how != permissions {
		// t.TempDir makes 0700 folders: nobody must reach the root
		// filesystem (the chroot's "/", or the binary and config) and the
		// state directory, which is its own.
		for _, d := range []string{filepath.Dir(s.root), s.root} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chown(s.state, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	if s.how == readOnlyRoot {
		return s
	}
	// The config folder and files read-only to the daemon's user.
	for _, p := range []string{"etc/dvsync/mappings/customers.yaml", "etc/dvsync/dvsync.yaml"} {
		if err := os.Chmod(filepath.Join(s.root, p), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc/dvsync/mappings", "etc/dvsync"} {
		if err := os.Chmod(filepath.Join(s.root, d), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Let t.TempDir remove what it made.
		_ = os.Chmod(filepath.Join(s.root, "etc/dvsync"), 0o755)
		_ = os.Chmod(filepath.Join(s.root, "etc/dvsync/mappings"), 0o755)
	})
	return s
}

// command returns the executable and arguments that run the sandboxed
// daemon with args.
func (s *sandbox) command(args ...string) (string, []string) {
	exe := filepath.Join(s.root, "usr/local/bin/dvsync")
	switch s.how {
	case readOnlyRoot:
		return "unshare", append([]string{"--mount", "--propagation", "private", "--",
			"sh", "-c", sandboxScript, "sandbox", s.root, s.state, "/usr/local/bin/dvsync"}, args...)
	case asNobody:
		return "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", exe}, args...)
	}
	return exe, args
}

// path is where the daemon finds p, a path of the container's layout
// ("/etc/dvsync/dvsync.yaml", "/var/lib/dvsync/state.db").
func (s *sandbox) path(p string) string {
	if s.how == readOnlyRoot {
		return p
	}
	if rest, ok := strings.CutPrefix(p, "/var/lib/dvsync"); ok {
		return s.state + rest
	}
	return filepath.Join(s.root, p)
}

// buildStatic builds the binary as `make dist` does, for this machine,
// and checks that it is statically linked: the sandbox has no libc.
func buildStatic(t *testing.T, out string) {
	t.Helper()
	// go test puts its own GOROOT/bin first on the PATH.
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X main.version=deploy-test", "-o", out, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has a program interpreter: it is dynamically linked", out)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// sandboxEnv is the environment of deploy/examples/dvsync.yaml, without
// this test process's DVSYNC_* variables.
func sandboxEnv(e *e2e, s *sandbox, statePath string) []string {
	env := []string{"DVSYNC_STATE=" + s.path(statePath)}
	for _, kv := range e.env {
		if !strings.HasPrefix(kv, "DVSYNC_") {
			env = append(env, kv)
		}
	}
	return env
}

func TestDeployRunsUnprivilegedOnReadOnlyRoot(t *testing.T) {
	e := newE2E(t)
	s := newSandbox(t)
	t.Logf("sandbox: %s", s.how)

	exe, args := s.command("run", "-c", s.path("/etc/dvsync/dvsync.yaml"))
	d, err := spawnDaemonArgs(t.Context(), exe, args, filepath.Join(e.dir, "dvsync.log"), sandboxEnv(e, s, "/var/lib/dvsync/state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.kill)

	if s.how != permissions {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if want := "Uid:\t65534\t65534\t65534\t65534\n"; !strings.Contains(string(status), want) {
			t.Errorf("the daemon's /proc status has no %q:\n%s", want, status)
		}
	}

	// What the image's HEALTHCHECK and the Kubernetes probes ask.
	base := "http://" + d.httpAddr
	for _, path := range []string{"/healthz", "/readyz"} {
		if err := healthcheck(t.Context(), base+path); err != nil {
			t.Errorf("healthcheck %s: %v", path, err)
		}
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics: %s", resp.Status)
	}

	// It syncs, which needs the state store written.
	e.exec(`INSERT INTO customers (id, name, email) VALUES (1, 'Contoso', 'a@contoso.com'), (2, 'Fabrikam', NULL)`)
	e.exec(`UPDATE customers SET employees = 40 WHERE id = 2`)
	e.waitInSync(30 * time.Second)
	if err := d.stop(30 * time.Second); err != nil {
		t.Fatalf("%v; log:\n%s", err, tail(d.logPath, 30))
	}

	st, err := os.Stat(filepath.Join(s.state, "state.db"))
	if err != nil {
		t.Fatalf("no state file in the state directory: %v", err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; s.how != permissions && uid != nobody {
		t.Errorf("state file owned by uid %d, want %d", uid, nobody)
	}
	// Nothing else was written anywhere the daemon could reach.
	err = filepath.WalkDir(s.root, func(p string, de os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.root, p)
		switch rel {
		case ".", "usr", "usr/local", "usr/local/bin", "usr/local/bin/dvsync", "etc", "etc/dvsync",
			"etc/dvsync/dvsync.yaml", "etc/dvsync/mappings", "etc/dvsync/mappings/customers.yaml",
			"var", "var/lib", "var/lib/dvsync", "tmp", "proc":
			return nil
		}
		return fmt.Errorf("unexpected file %s in the root filesystem", rel)
	})
	if err != nil {
		t.Error(err)
	}
}

// The control: the sandbox really is read-only, so a state path outside
// the state directory makes the daemon fail at start, naming why.
func TestDeploySandboxRefusesWritesOutsideState(t *testing.T) {
	e := newE2E(t)
	s := newSandbox(t)
	exe, args := s.command("run", "-c", s.path("/etc/dvsync/dvsync.yaml"))
	cmd := exec.CommandContext(t.Context(), exe, args...)
	cmd.Env = append(os.Environ(), sandboxEnv(e, s, "/etc/dvsync/state.db")...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("dvsync run with its state in /etc/dvsync: %v, want a non-zero exit\n%s", err, out)
	}
	want := "permission denied"
	if s.how == readOnlyRoot {
		want = "read-only file system"
	}
	if !strings.Contains(string(out), want) {
		t.Errorf("output does not say %q:\n%s", want, out)
	}
}

// The Grafana dashboard queries only metrics that exist: dvsync's as
// operations.md documents them, the Go runtime's and the process's as
// the daemon's registry serves them.
func TestGrafanaDashboardUsesDocumentedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/dvsync.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range metricName.FindAllString(string(doc), -1) {
		documented[m] = true
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	runtimeMetrics := map[string]bool{}
	for _, f := range families {
		runtimeMetrics[f.GetName()] = true
	}

	ids := map[int]bool{}
	queried := 0
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		for _, target := range p.Targets {
			for _, m := range metricName.FindAllString(target.Expr, -1) {
				queried++
				base := m
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suffix)
				}
				switch {
				case strings.HasPrefix(m, "dvsync_"):
					if !documented[base] {
						t.Errorf("panel %q queries %s, which operations.md does not document", p.Title, m)
					}
				case !runtimeMetrics[m]:
					t.Errorf("panel %q queries %s, which the Go and process collectors do not serve", p.Title, m)
				}
			}
		}
	}
	if queried < 20 {
		t.Errorf("the dashboard queries %d metrics; the pattern finds too few", queried)
	}
}

// metricName matches the metric names a query or a doc mentions; PromQL
// functions and labels are lower case without these prefixes.
var metricName = regexp.MustCompile(`\b(?:dvsync|go|process)_[a-z0-9_]+\b`)
