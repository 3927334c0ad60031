package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// This file speaks systemd's service notification protocol (sd_notify(3))
// so that a unit with Type=notify knows when dvsync is ready, reloading
// or stopping. Each message is one datagram of newline-separated
// VARIABLE=value assignments sent to the unix socket named by
// NOTIFY_SOCKET. Without that variable (not started by systemd, or a unit
// of another type) every function here does nothing and returns nil.
//
// Notifications are advisory: a failure to send one is returned for the
// caller to log, never a reason to stop syncing.

// notifySocketEnv names the variable systemd sets to its notification
// socket: a filesystem path, or an abstract socket written with a
// leading '@'.
const notifySocketEnv = "NOTIFY_SOCKET"

// sdNotify sends the given assignments ("READY=1", "STATUS=...") to
// systemd in one datagram. It is a no-op without NOTIFY_SOCKET. It is
// safe for concurrent use; each call opens its own socket, which costs
// nothing next to how rarely it is called.
func sdNotify(assignments ...string) error {
	addr := os.Getenv(notifySocketEnv)
	if addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") {
		// Linux abstract namespace: the name starts with a NUL byte.
		addr = "\x00" + addr[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(assignments, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// readySent records that READY=1 went out, so that a reload before it
// (a SIGHUP while the sources still connect) does not declare the
// service ready early.
var readySent atomic.Bool

// notifyReady tells systemd that dvsync is ready: every pipeline is
// running with its source connected, as /readyz answers 200. Send it once
// at start-up (notifyWhenReady does).
func notifyReady() error {
	readySent.Store(true)
	return sdNotify("READY=1", "STATUS=running")
}

// notifyReloading tells systemd that a reload (SIGHUP re-reading the
// mapping files) has begun; systemd holds the unit in the reloading state
// until notifyReloaded. MONOTONIC_USEC lets systemd match the message to
// the reload it asked for (Type=notify-reload requires it). Before
// start-up's READY=1 it does nothing: the unit is still activating.
func notifyReloading() error {
	if !readySent.Load() {
		return nil
	}
	now, err := monotonicUsec()
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return sdNotify("RELOADING=1", "STATUS=reloading mappings", "MONOTONIC_USEC="+now)
}

// notifyReloaded ends a reload begun with notifyReloading, whether the
// new mappings were applied or refused (the log says which), with
// READY=1. Before start-up's READY=1 it does nothing.
func notifyReloaded() error {
	if !readySent.Load() {
		return nil
	}
	return sdNotify("READY=1", "STATUS=running")
}

// notifyStopping tells systemd that dvsync is shutting down: it has
// stopped reading and is finishing the writes in flight.
func notifyStopping() error {
	return sdNotify("STOPPING=1", "STATUS=stopping")
}

// notifyWhenReady polls ready every interval until it returns nil, then
// sends READY=1 and returns that send's error. It returns ctx's error if
// ctx ends first, without notifying. ready is /readyz's check: nil when
// every pipeline runs with its source connected.
//
// Polling, rather than a callback from the pipelines, keeps the engine
// free of systemd; the delay it adds to start-up is at most interval.
// Without NOTIFY_SOCKET it returns nil at once and polls nothing.
func notifyWhenReady(ctx context.Context, ready func() error, interval time.Duration) error {
	if os.Getenv(notifySocketEnv) == "" {
		return nil
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := ready()
		if err == nil {
			return notifyReady()
		}
		// Say why start-up waits; `systemctl status dvsync` shows it. One
		// line: sd_notify separates assignments by newlines.
		reason, _, _ := strings.Cut(err.Error(), "\n")
		if serr := sdNotify("STATUS=waiting: " + reason); serr != nil {
			return serr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares MONOTONIC_USEC with. Go's time package keeps a monotonic
// reading but does not expose its absolute value.
func monotonicUsec() (string, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return "", err
	}
	return fmt.Sprint(ts.Nano() / 1e3), nil
}
