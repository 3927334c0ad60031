package main

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notifySocket listens where systemd would and points NOTIFY_SOCKET at
// it. name is a file in a temporary folder, or an abstract name when it
// starts with '@'.
func notifySocket(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	addr := name
	if !strings.HasPrefix(name, "@") {
		addr = filepath.Join(t.TempDir(), name)
		name = addr
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv(notifySocketEnv, name)
	return conn
}

// readNotify returns the assignments of the next datagram.
func readNotify(t *testing.T, conn *net.UnixConn) []string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification: %v", err)
	}
	msg := string(buf[:n])
	if !strings.HasSuffix(msg, "\n") {
		t.Errorf("datagram %q does not end in a newline", msg)
	}
	return strings.Split(strings.TrimSuffix(msg, "\n"), "\n")
}

func TestNotifyWithoutSocketIsNoop(t *testing.T) {
	t.Setenv(notifySocketEnv, "")
	resetReady(t)
	for name, f := range map[string]func() error{
		"ready": notifyReady, "reloading": notifyReloading, "reloaded": notifyReloaded, "stopping": notifyStopping,
	} {
		if err := f(); err != nil {
			t.Errorf("%s without NOTIFY_SOCKET: %v", name, err)
		}
	}
	// Never ready, yet it returns at once: there is nobody to tell.
	err := notifyWhenReady(t.Context(), func() error { return errors.New("never") }, time.Hour)
	if err != nil {
		t.Errorf("notifyWhenReady without NOTIFY_SOCKET: %v", err)
	}
}

// resetReady forgets an earlier test's READY=1.
func resetReady(t *testing.T) {
	t.Helper()
	readySent.Store(false)
	t.Cleanup(func() { readySent.Store(false) })
}

func TestNotifyStates(t *testing.T) {
	conn := notifySocket(t, "notify.sock")
	resetReady(t)

	if err := notifyReady(); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, conn); !slices.Contains(got, "READY=1") {
		t.Errorf("ready sent %q", got)
	}

	before, err := monotonicUsec()
	if err != nil {
		t.Fatal(err)
	}
	if err := notifyReloading(); err != nil {
		t.Fatal(err)
	}
	got := readNotify(t, conn)
	if !slices.Contains(got, "RELOADING=1") {
		t.Errorf("reloading sent %q", got)
	}
	// systemd compares MONOTONIC_USEC with its own CLOCK_MONOTONIC, so it
	// must be that clock, not wall time.
	after, _ := monotonicUsec()
	i := slices.IndexFunc(got, func(s string) bool { return strings.HasPrefix(s, "MONOTONIC_USEC=") })
	if i < 0 {
		t.Fatalf("reloading sent no MONOTONIC_USEC: %q", got)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(got[i], "MONOTONIC_USEC="), 10, 64)
	lo, _ := strconv.ParseInt(before, 10, 64)
	hi, _ := strconv.ParseInt(after, 10, 64)
	if err != nil || usec < lo || usec > hi {
		t.Errorf("MONOTONIC_USEC=%d (%v), want within [%d, %d]", usec, err, lo, hi)
	}

	if err := notifyReloaded(); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, conn); !slices.Contains(got, "READY=1") {
		t.Errorf("reloaded sent %q", got)
	}

	if err := notifyStopping(); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, conn); !slices.Contains(got, "STOPPING=1") {
		t.Errorf("stopping sent %q", got)
	}
}

// A SIGHUP while the sources still connect must not make systemd think
// the service is ready.
func TestNotifyReloadBeforeReadyIsSilent(t *testing.T) {
	conn := notifySocket(t, "notify.sock")
	resetReady(t)
	if err := notifyReloading(); err != nil {
		t.Fatal(err)
	}
	if err := notifyReloaded(); err != nil {
		t.Fatal(err)
	}
	if err := notifyStopping(); err != nil {
		t.Fatal(err)
	}
	// The first datagram is the stop: the reload sent nothing.
	if got := readNotify(t, conn); !slices.Equal(got, []string{"STOPPING=1", "STATUS=stopping"}) {
		t.Errorf("first notification %q, want the stop alone", got)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	conn := notifySocket(t, "@dvsync-notify-test-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := notifyStopping(); err != nil {
		t.Fatal(err)
	}
	if got := readNotify(t, conn); !slices.Contains(got, "STOPPING=1") {
		t.Errorf("stopping sent %q", got)
	}
}

func TestNotifyMissingSocketFails(t *testing.T) {
	t.Setenv(notifySocketEnv, filepath.Join(t.TempDir(), "absent.sock"))
	if err := notifyReady(); err == nil {
		t.Fatal("notifyReady to a socket nobody listens on returned nil")
	}
}

func TestNotifyWhenReadyWaitsForReadiness(t *testing.T) {
	conn := notifySocket(t, "notify.sock")
	resetReady(t)
	calls := 0
	ready := func() error {
		calls++
		if calls < 3 {
			return errors.New("pipeline \"app\": source not connected\nsecond line")
		}
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- notifyWhenReady(t.Context(), ready, time.Millisecond) }()

	for range 2 {
		got := readNotify(t, conn)
		want := `STATUS=waiting: pipeline "app": source not connected`
		if !slices.Equal(got, []string{want}) {
			t.Errorf("while not ready sent %q, want %q", got, want)
		}
	}
	if got := readNotify(t, conn); !slices.Contains(got, "READY=1") {
		t.Errorf("once ready sent %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNotifyWhenReadyStopsWithContext(t *testing.T) {
	conn := notifySocket(t, "notify.sock")
	resetReady(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- notifyWhenReady(ctx, func() error { return errors.New("not yet") }, time.Hour)
	}()
	if got := readNotify(t, conn); !slices.Equal(got, []string{"STATUS=waiting: not yet"}) {
		t.Errorf("sent %q", got)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("notifyWhenReady after cancel = %v, want context.Canceled", err)
	}
	// Nothing more, in particular no READY=1.
	if err := conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := conn.Read(make([]byte, 512)); err == nil {
		t.Errorf("a notification after cancel: %d bytes", n)
	}
}
