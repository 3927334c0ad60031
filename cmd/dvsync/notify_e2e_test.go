package main

import (
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestDaemonTellsSystemd runs the daemon as systemd's Type=notify would:
// READY=1 once it serves, RELOADING=1 then READY=1 around a SIGHUP
// reload, STOPPING=1 on SIGTERM.
func TestDaemonTellsSystemd(t *testing.T) {
	e := newE2E(t)
	conn := notifySocket(t, "notify.sock") // sets NOTIFY_SOCKET, which the child inherits
	d := e.startDaemonWith(e.writeConfig("telephone1"))
	expect := func(want string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
			if slices.Contains(readNotify(t, conn), want) {
				return
			}
		}
		t.Fatalf("no %s from the daemon", want)
	}
	expect("READY=1")
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	expect("RELOADING=1")
	expect("READY=1")
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	expect("STOPPING=1")
	if err := d.wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
}
