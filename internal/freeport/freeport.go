// Package freeport picks loopback ports for listeners that another
// process opens later: a child process, or a server whose address must be
// written into a configuration before it starts.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Loopback returns a loopback address whose port was free a moment ago,
// for a child process to listen on. The port is drawn from below the
// kernel's ephemeral range: the kernel gives ports in that range to
// outgoing connections, and on a busy machine one takes a port freed here
// before the child binds it often enough to matter. Where the range starts
// too low to leave room, any free port will do.
func Loopback() (string, error) {
	const lowest = 10000
	if top := ephemeralStart(); top > lowest+1000 {
		for range 50 {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(lowest+rand.IntN(top-lowest))))
			if err != nil {
				continue // taken: draw again
			}
			defer ln.Close()
			return ln.Addr().String(), nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// ephemeralStart is the first port of the kernel's ephemeral range, 0
// when it cannot be read.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}
