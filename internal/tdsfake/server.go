// Package tdsfake is a scripted SQL Server for tests: a TCP listener that
// speaks enough of TDS 7.4 (MS-TDS) for a real client driver such as
// go-mssqldb to connect without encryption, run SQL batches and
// sp_executesql calls with parameters, and begin and commit transactions,
// and that answers every request with the result sets or error a Handler
// returns for it.
//
// It implements no SQL: the handler sees each statement's text and
// decoded parameters and decides the answer, so a test states exactly
// what the server says to the statements the code under test sends, and
// the driver decodes those answers from real wire bytes.
//
// Supported: PRELOGIN answered with ENCRYPT_NOT_SUP (clients must connect
// with encrypt=disable), any LOGIN7 accepted, SQL batch, RPC (by name or
// by procedure id, as sp_executesql), transaction manager begin, commit
// and rollback, attention. Result columns and parameters of the types in
// Type; ERROR tokens for handler errors of type *Error.
package tdsfake

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// Request is one statement a client sent.
type Request struct {
	// SQL is the statement text: the batch, or sp_executesql's @stmt.
	// For another procedure it is the procedure's name.
	SQL string
	// Params are the parameters after sp_executesql's @stmt and @params
	// (or all of another procedure's), in order.
	Params []Param
	// RPC is set for a remote procedure call, clear for a SQL batch.
	RPC bool
	// Transaction is the descriptor of the transaction the request runs
	// in (from its ALL_HEADERS), zero outside a transaction.
	Transaction uint64
	// Isolation is the isolation level the transaction was begun with
	// (MS-TDS: 1 read uncommitted … 5 snapshot), zero outside one.
	Isolation uint8
	// Conn numbers the connection the request came on, from 1.
	Conn int
}

// Param is one decoded RPC parameter.
type Param struct {
	Name string // "@p1"
	Type Type
	// Value is nil for NULL, else int64 (intN, bitN as 0/1 are bool),
	// bool, float64, string (nvarchar, and decimal as its exact text),
	// []byte (varbinary, binary), time.Time (date, datetime2,
	// datetimeoffset, in UTC with the offset applied for the last) or
	// [16]byte (uniqueidentifier, in RFC 4122 byte order).
	Value any
}

// Result is one result set, or, without Columns, one statement's row
// count.
type Result struct {
	Columns []Column
	// Rows hold values as Param.Value describes, one per column.
	Rows [][]any
	// RowsAffected is reported for a result without columns.
	RowsAffected int64
}

// Handler answers a request with result sets, or with an error: an
// *Error becomes an ERROR token the client reports as that SQL Server
// error; any other error ends the connection, as a server crash would.
// Handlers may be called concurrently, from one goroutine per
// connection.
type Handler func(req Request) ([]Result, error)

// Error is a SQL Server error message.
type Error struct {
	Number  int32
	State   uint8
	Class   uint8 // severity; 16 for ordinary user errors
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("mssql: error %d: %s", e.Number, e.Message) }

// Server is a running fake SQL Server.
type Server struct {
	ln      net.Listener
	handler Handler
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
	closed  bool
	next    atomic.Int64 // connection numbers
	xact    atomic.Uint64
	// Err is the first protocol error a connection met, for tests to
	// check after the fact; nil when every exchange was understood.
	errMu sync.Mutex
	err   error
}

// Start listens on a free loopback port and serves h until Close.
func Start(h Handler) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, handler: h, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the listener's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// DSN is a go-mssqldb connection string for database db on this server.
func (s *Server) DSN(db string) string {
	return "sqlserver://dvsync:secret@" + s.Addr() + "?database=" + db + "&encrypt=disable&dial+timeout=5"
}

// hungUp reports whether err only says the client went away: it closed
// the connection, or its process ended with bytes unread, which the
// kernel answers with a reset.
func hungUp(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Err returns the first protocol error met, if any.
func (s *Server) Err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *Server) fail(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// Close stops listening, drops every connection and waits for their
// goroutines.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// CloseConnections drops every open connection, as a server restart
// would, and keeps listening.
func (s *Server) CloseConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			sc := &conn{srv: s, c: c, id: int(s.next.Add(1)), packetSize: 4096}
			if err := sc.serve(); !hungUp(err) {
				s.fail(err)
			}
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			_ = c.Close()
		}()
	}
}
