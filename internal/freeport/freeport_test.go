package freeport

import (
	"net"
	"strconv"
	"testing"
)

// A port for a child to listen on comes from below the ephemeral range,
// where no outgoing connection can take it first, and is free.
func TestLoopbackAvoidsEphemeralPorts(t *testing.T) {
	start := ephemeralStart()
	if start == 0 {
		t.Fatal("cannot read the ephemeral port range")
	}
	for range 20 {
		addr, err := Loopback()
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if start > 11000 && port >= start {
			t.Errorf("%s is in the ephemeral range, which starts at %d", addr, start)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s is not free: %v", addr, err)
		}
		ln.Close()
	}
}
