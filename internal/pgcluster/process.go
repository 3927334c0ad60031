package pgcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// osUser is the OS account initdb and the server run as. A nil *osUser
// means the current user.
type osUser struct {
	name     string
	uid, gid uint32
}

// serverOwner returns the "postgres" account when we are root (the server
// refuses to run as root), and nil otherwise.
func serverOwner() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root, so the server must run as the postgres OS user: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgcluster: postgres user has non-numeric uid %q or gid %q", u.Uid, u.Gid)
	}
	return &osUser{name: u.Username, uid: uint32(uid), gid: uint32(gid)}, nil
}

// own hands path to the server's account, after making sure the account
// can reach it. Directories below the temporary directory that block the
// way (t.TempDir() makes them 0700) get search permission for others —
// search only, not read. Elsewhere we do not touch permissions and report
// the directory instead.
func (u *osUser) own(path string) error {
	if u == nil {
		return nil
	}
	tmp := filepath.Clean(os.TempDir())
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		st, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if !u.canEnter(st) {
			if rel, err := filepath.Rel(tmp, dir); err != nil || rel == "." || strings.HasPrefix(rel, "..") {
				return fmt.Errorf("pgcluster: the %s OS user cannot enter %s (mode %v); choose another Options.Dir or TMPDIR", u.name, dir, st.Mode().Perm())
			}
			if err := os.Chmod(dir, st.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("pgcluster: let the %s OS user enter %s: %w", u.name, dir, err)
			}
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	if err := os.Chown(path, int(u.uid), int(u.gid)); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return nil
}

// canEnter reports whether u may search the directory st describes. The
// server runs without supplementary groups (see sysProcAttr), so only its
// primary group counts.
func (u *osUser) canEnter(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := st.Mode().Perm()
	switch {
	case sys.Uid == u.uid:
		return perm&0o100 != 0
	case sys.Gid == u.gid:
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

func (u *osUser) sysProcAttr() *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{}
	if u != nil {
		attr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
	}
	return attr
}

// process is a running postmaster, a direct child of ours.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the postmaster has exited and been reaped
	err    error         // its exit status; read only after exited is closed
}

// startProcess starts the server with its output in logPath, replacing
// that of an earlier attempt.
//
// The postmaster is our child rather than a daemon left behind by pg_ctl,
// and it gets SIGQUIT (immediate shutdown) if we die, so a killed test
// binary does not leak a server. Linux sends that parent-death signal when
// the *thread* that forked the child exits, so the goroutine that starts it
// stays locked to its thread until the server has exited.
func startProcess(path string, args []string, dir, logPath string, owner *osUser) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: open server log: %w", err)
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = owner.sysProcAttr()
	setParentDeathSignal(cmd.SysProcAttr, syscall.SIGQUIT)

	p := &process{cmd: cmd, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		logf.Close() // the child has its own descriptor
		started <- err
		if err != nil {
			return
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("pgcluster: start server: %w", err)
	}
	return p, nil
}

// stop asks for a fast shutdown (SIGINT), escalates to an immediate one
// (SIGQUIT) after 30 seconds or when ctx ends, and to SIGKILL as a last
// resort. It returns once the postmaster has been reaped.
func (p *process) stop(ctx context.Context) {
	steps := []struct {
		sig  os.Signal
		wait time.Duration
	}{
		{syscall.SIGINT, 30 * time.Second},
		{syscall.SIGQUIT, 10 * time.Second},
		{os.Kill, 0},
	}
	for _, step := range steps {
		// An error here means the process is already gone; exited says so.
		_ = p.cmd.Process.Signal(step.sig)
		if step.wait == 0 {
			<-p.exited
			return
		}
		timer := time.NewTimer(step.wait)
		select {
		case <-p.exited:
			timer.Stop()
			return
		case <-ctx.Done():
			ctx = context.Background() // escalate once for ctx, then by the clock
		case <-timer.C:
		}
		timer.Stop()
	}
}
