package tdsfake

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"unicode/utf16"
)

// Packet types (MS-TDS 2.2.3.1.1).
const (
	packSQLBatch  = 1
	packRPC       = 3
	packReply     = 4
	packAttention = 6
	packTM        = 14
	packLogin7    = 16
	packPrelogin  = 18
)

// Tokens (MS-TDS 2.2.7).
const (
	tokReturnStatus = 0x79
	tokColMetadata  = 0x81
	tokError        = 0xAA
	tokLoginAck     = 0xAD
	tokRow          = 0xD1
	tokEnvChange    = 0xE3
	tokDone         = 0xFD
	tokDoneProc     = 0xFE
	tokDoneInProc   = 0xFF
)

// DONE status bits.
const (
	doneFinal = 0x00
	doneMore  = 0x01
	doneError = 0x02
	doneCount = 0x10
	doneAttn  = 0x20
)

const cmdSelect = 0xC1

// conn is one client connection.
type conn struct {
	srv        *Server
	c          net.Conn
	id         int
	packetSize int
	tx         uint64 // the open transaction's descriptor, zero when none
	isolation  uint8
}

// serve answers the connection's requests until it fails or closes; it
// always returns an error, io.EOF when the client hung up.
func (c *conn) serve() error {
	for {
		typ, msg, err := c.readMessage()
		if err != nil {
			return err
		}
		switch typ {
		case packPrelogin:
			err = c.prelogin()
		case packLogin7:
			err = c.login()
		case packSQLBatch:
			err = c.batch(msg)
		case packRPC:
			err = c.rpc(msg)
		case packTM:
			err = c.transaction(msg)
		case packAttention:
			// Every request was answered in full before the next was
			// read, so there is nothing to cancel: acknowledge.
			err = c.reply(done(tokDone, doneAttn, 0, 0))
		default:
			return fmt.Errorf("tdsfake: unsupported packet type %d", typ)
		}
		if err != nil {
			return err
		}
	}
}

// readMessage reads packets up to the end of a message.
func (c *conn) readMessage() (byte, []byte, error) {
	var msg []byte
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(c.c, hdr[:]); err != nil {
			return 0, nil, err
		}
		n := int(binary.BigEndian.Uint16(hdr[2:4]))
		if n < 8 {
			return 0, nil, fmt.Errorf("tdsfake: packet length %d", n)
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(c.c, body); err != nil {
			return 0, nil, err
		}
		msg = append(msg, body...)
		if hdr[1]&0x01 != 0 {
			return hdr[0], msg, nil
		}
	}
}

// reply sends a tabular result message, split into packets.
func (c *conn) reply(body []byte) error {
	room := c.packetSize - 8
	id := byte(1)
	for first := true; first || len(body) > 0; first = false {
		n := min(len(body), room)
		status := byte(0)
		if n == len(body) {
			status = 0x01
		}
		pkt := make([]byte, 8, 8+n)
		pkt[0], pkt[1] = packReply, status
		binary.BigEndian.PutUint16(pkt[2:], uint16(8+n))
		pkt[6] = id
		id++
		pkt = append(pkt, body[:n]...)
		if _, err := c.c.Write(pkt); err != nil {
			return err
		}
		body = body[n:]
	}
	return nil
}

func (c *conn) prelogin() error {
	// Options: VERSION, ENCRYPTION (not supported), INSTOPT, MARS.
	opts := []struct {
		tok  byte
		data []byte
	}{
		{0, []byte{16, 0, 0x0f, 0xa0, 0, 0}}, // 16.0.4000.0
		{1, []byte{2}},
		{2, []byte{0}},
		{4, []byte{0}},
	}
	var b []byte
	off := 5*len(opts) + 1
	var data []byte
	for _, o := range opts {
		b = append(b, o.tok)
		b = binary.BigEndian.AppendUint16(b, uint16(off+len(data)))
		b = binary.BigEndian.AppendUint16(b, uint16(len(o.data)))
		data = append(data, o.data...)
	}
	b = append(b, 0xFF)
	return c.reply(append(b, data...))
}

func (c *conn) login() error {
	var b []byte
	// ENVCHANGE packet size, so the client sizes its buffers as we do.
	size := utf16Bytes(fmt.Sprint(c.packetSize))
	env := []byte{4, byte(len(size) / 2)}
	env = append(env, size...)
	env = append(env, byte(len(size)/2))
	env = append(env, size...)
	b = append(b, tokEnvChange)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(env)))
	b = append(b, env...)
	// LOGINACK: SQL interface, TDS 7.4, program name, version.
	name := utf16Bytes("tdsfake")
	ack := []byte{1, 0x74, 0x00, 0x00, 0x04, byte(len(name) / 2)}
	ack = append(ack, name...)
	ack = append(ack, 16, 0, 0x0f, 0xa0)
	b = append(b, tokLoginAck)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(ack)))
	b = append(b, ack...)
	return c.reply(append(b, done(tokDone, doneFinal, 0, 0)...))
}

// skipHeaders reads ALL_HEADERS and returns the transaction descriptor
// it carries, and the rest of msg.
func skipHeaders(msg []byte) (uint64, []byte, error) {
	if len(msg) < 4 {
		return 0, nil, errors.New("tdsfake: short ALL_HEADERS")
	}
	total := int(binary.LittleEndian.Uint32(msg))
	if total < 4 || total > len(msg) {
		return 0, nil, fmt.Errorf("tdsfake: ALL_HEADERS length %d", total)
	}
	var tx uint64
	for h := msg[4:total]; len(h) >= 6; {
		n := int(binary.LittleEndian.Uint32(h))
		if n < 6 || n > len(h) {
			return 0, nil, errors.New("tdsfake: bad header length")
		}
		if binary.LittleEndian.Uint16(h[4:]) == 2 && n >= 14 {
			tx = binary.LittleEndian.Uint64(h[6:])
		}
		h = h[n:]
	}
	return tx, msg[total:], nil
}

func (c *conn) request(tx uint64) Request {
	r := Request{Transaction: tx, Conn: c.id}
	if tx != 0 && tx == c.tx {
		r.Isolation = c.isolation
	}
	return r
}

func (c *conn) batch(msg []byte) error {
	tx, rest, err := skipHeaders(msg)
	if err != nil {
		return err
	}
	req := c.request(tx)
	req.SQL = utf16String(rest)
	return c.answer(req)
}

func (c *conn) rpc(msg []byte) error {
	tx, rest, err := skipHeaders(msg)
	if err != nil {
		return err
	}
	req := c.request(tx)
	req.RPC = true
	r := &reader{b: rest}
	proc := ""
	if id := r.u16(); id == 0xFFFF {
		if pid := r.u16(); pid == 10 {
			proc = "sp_executesql"
		} else {
			proc = fmt.Sprintf("procedure %d", pid)
		}
	} else {
		proc = utf16String(r.bytes(int(id) * 2))
	}
	r.u16() // option flags
	var params []Param
	for r.err == nil && len(r.b) > 0 {
		p := Param{Name: utf16String(r.bytes(int(r.u8()) * 2))}
		r.u8() // status flags
		p.Type = readTypeInfo(r)
		p.Value = readValue(r, p.Type)
		params = append(params, p)
	}
	if r.err != nil {
		return fmt.Errorf("tdsfake: RPC %s: %w", proc, r.err)
	}
	req.SQL, req.Params = proc, params
	if proc == "sp_executesql" {
		if len(params) < 1 {
			return errors.New("tdsfake: sp_executesql without @stmt")
		}
		req.SQL, _ = params[0].Value.(string)
		req.Params = nil
		if len(params) > 2 {
			req.Params = params[2:]
		}
	}
	return c.answer(req)
}

// answer runs the handler and writes its results.
func (c *conn) answer(req Request) error {
	results, err := c.srv.handler(req)
	var sqlErr *Error
	if err != nil && !errors.As(err, &sqlErr) {
		return err
	}
	var b []byte
	last := tokDone
	if req.RPC {
		last = tokDoneProc
	}
	for i, res := range results {
		if len(res.Columns) > 0 {
			b = appendColMetadata(b, res.Columns)
			for _, row := range res.Rows {
				b, err = appendRow(b, res.Columns, row)
				if err != nil {
					return err
				}
			}
		}
		count, cmd := res.RowsAffected, uint16(0xC3)
		if len(res.Columns) > 0 {
			count, cmd = int64(len(res.Rows)), cmdSelect
		}
		status := uint16(doneCount)
		if req.RPC {
			b = append(b, done(tokDoneInProc, status|doneMore, cmd, count)...)
			continue
		}
		if i < len(results)-1 || sqlErr != nil {
			status |= doneMore
		}
		b = append(b, done(tokDone, status, cmd, count)...)
	}
	switch {
	case sqlErr != nil:
		b = appendError(b, sqlErr)
		b = append(b, done(byte(last), doneError, 0, 0)...)
	case req.RPC:
		b = append(b, tokReturnStatus, 0, 0, 0, 0)
		b = append(b, done(tokDoneProc, doneFinal, 0, 0)...)
	case len(results) == 0:
		b = append(b, done(tokDone, doneFinal, 0, 0)...)
	}
	return c.reply(b)
}

// Transaction manager request types.
const (
	tmBegin    = 5
	tmCommit   = 7
	tmRollback = 8
)

func (c *conn) transaction(msg []byte) error {
	_, rest, err := skipHeaders(msg)
	if err != nil {
		return err
	}
	r := &reader{b: rest}
	typ := r.u16()
	var env []byte
	switch typ {
	case tmBegin:
		c.isolation = r.u8()
		c.tx = c.srv.xact.Add(1)
		env = []byte{8, 8}
		env = binary.LittleEndian.AppendUint64(env, c.tx)
		env = append(env, 0)
		_, err = c.srv.handler(Request{SQL: "BEGIN TRANSACTION", Transaction: c.tx, Isolation: c.isolation, Conn: c.id})
	case tmCommit, tmRollback:
		name := "COMMIT TRANSACTION"
		if typ == tmRollback {
			name = "ROLLBACK TRANSACTION"
		}
		_, err = c.srv.handler(Request{SQL: name, Transaction: c.tx, Isolation: c.isolation, Conn: c.id})
		env = []byte{byte(typ + 2), 0, 8} // 9 commit, 10 rollback
		env = binary.LittleEndian.AppendUint64(env, c.tx)
		c.tx, c.isolation = 0, 0
	default:
		return fmt.Errorf("tdsfake: unsupported transaction manager request %d", typ)
	}
	var sqlErr *Error
	if err != nil && !errors.As(err, &sqlErr) {
		return err
	}
	var b []byte
	if sqlErr != nil {
		b = appendError(b, sqlErr)
		return c.reply(append(b, done(tokDone, doneError, 0, 0)...))
	}
	b = append(b, tokEnvChange)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(env)))
	b = append(b, env...)
	return c.reply(append(b, done(tokDone, doneFinal, 0, 0)...))
}

func done(tok byte, status, cmd uint16, count int64) []byte {
	b := []byte{tok}
	b = binary.LittleEndian.AppendUint16(b, status)
	b = binary.LittleEndian.AppendUint16(b, cmd)
	return binary.LittleEndian.AppendUint64(b, uint64(count))
}

func appendError(b []byte, e *Error) []byte {
	var body []byte
	body = binary.LittleEndian.AppendUint32(body, uint32(e.Number))
	class := e.Class
	if class == 0 {
		class = 16
	}
	body = append(body, e.State, class)
	msg := utf16Bytes(e.Message)
	body = binary.LittleEndian.AppendUint16(body, uint16(len(msg)/2))
	body = append(body, msg...)
	srv := utf16Bytes("tdsfake")
	body = append(body, byte(len(srv)/2))
	body = append(body, srv...)
	body = append(body, 0)                           // procedure name
	body = binary.LittleEndian.AppendUint32(body, 1) // line
	b = append(b, tokError)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func utf16Bytes(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(b[2*i:], r)
	}
	return b
}

func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// reader consumes a message; the first short read sets err and makes
// every later read return zeros.
type reader struct {
	b   []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("tdsfake: message too short (%d bytes wanted, %d left)", n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() byte {
	b := r.bytes(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16() uint16 {
	b := r.bytes(2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func (r *reader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (r *reader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}
