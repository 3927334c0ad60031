package tdsfake

import (
	"net"
	"testing"
	"time"

	"github.com/dvsync/dvsync/internal/testenv"
)

// A client whose process ends mid-exchange resets the connection. That is
// the client going away, not a protocol error.
func TestResetByClientIsNoProtocolError(t *testing.T) {
	srv, err := Start(func(Request) ([]Result, error) { return nil, nil })
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	// Half a packet header: the server is left waiting for the rest.
	if _, err := c.Write([]byte{packPrelogin, 1, 0}); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).SetLinger(0); err != nil { // close with a reset
		t.Fatal(err)
	}
	_ = c.Close()
	testenv.Eventually(t, 10*time.Second, "the server to drop the reset connection", func() bool { return srv.open() == 0 })
	_ = srv.Close()
	if err := srv.Err(); err != nil {
		t.Errorf("a reset by the client counted as a protocol error: %v", err)
	}
}

func (s *Server) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
