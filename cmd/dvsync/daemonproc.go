package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/dvsync/dvsync/internal/freeport"
)

// daemonProc is a 'dvsync run' child process, as the demo and the
// end-to-end tests start it.
type daemonProc struct {
	cmd      *exec.Cmd
	logPath  string
	httpAddr string
	done     chan error
}

// spawnDaemon starts 'exe run -c config' with env added to this process's
// environment and DVSYNC_HTTP set to a free loopback address, and returns
// once its /readyz answers 200: the source is streaming, so changes made
// from then on are captured.
func spawnDaemon(ctx context.Context, exe, config, logPath string, env []string) (*daemonProc, error) {
	return spawnDaemonArgs(ctx, exe, []string{"run", "-c", config}, logPath, env)
}

// spawnDaemonArgs is spawnDaemon with the whole command line after exe,
// which must start a daemon ('run' and its flags).
func spawnDaemonArgs(ctx context.Context, exe string, args []string, logPath string, env []string) (*daemonProc, error) {
	httpAddr, err := freeport.Loopback()
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	p := &daemonProc{logPath: logPath, httpAddr: httpAddr, done: make(chan error, 1)}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(append(os.Environ(), env...), "DVSYNC_HTTP="+httpAddr)
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()

	const readyWithin = 30 * time.Second
	deadline := time.Now().Add(readyWithin)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			return nil, fmt.Errorf("dvsync run exited early (%w); its log ends with:\n%s", err, tail(logPath, 30))
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("dvsync run was not ready within %s; its log ends with:\n%s", readyWithin, tail(logPath, 30))
		}
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *daemonProc) stop(timeout time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return p.wait(timeout)
}

// wait waits up to timeout for the child, already told to stop, to exit,
// and returns its error; past timeout it kills it. It sends no signal: a
// second SIGTERM can reach a daemon that has finished shutting down and
// restored the signal's default action, and kill it.
func (p *daemonProc) wait(timeout time.Duration) error {
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			return fmt.Errorf("dvsync run: %w", err)
		}
		return nil
	case <-time.After(timeout):
		p.kill()
		return fmt.Errorf("dvsync run did not stop within %s of SIGTERM", timeout)
	}
}

// kill ends the child at once (SIGKILL) and waits for it to be reaped.
// After a clean stop it is a no-op.
func (p *daemonProc) kill() {
	_ = p.cmd.Process.Kill()
	err := <-p.done
	p.done <- err
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(string(bytes.TrimRight(b, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
