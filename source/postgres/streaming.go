package postgres

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/jackc/pglogrepl"
)

// Large transactions arrive streamed (pgoutput protocol 2, streaming on):
// once a transaction's changes outgrow logical_decoding_work_mem, the
// server sends them in blocks while the transaction is still running,
// interleaved with other transactions, and says at the end whether it
// committed or aborted, or which of its subtransactions rolled back.
//
// Nothing of a transaction may reach Read before it commits, and holding
// its changes in memory would defeat the point of streaming. So each
// streamed transaction's messages go to a temporary file as they come,
// and on commit the file is read back and decoded as if the transaction
// had arrived whole: the changes of rolled-back subtransactions are left
// out, and indexes are counted the way they are for a transaction sent at
// commit, so positions do not depend on whether it was streamed.

// spill is the temporary file of one streamed transaction.
type spill struct {
	f *os.File
	w *bufio.Writer
	// aborted holds the subtransactions that rolled back; their changes
	// are skipped when the file is read back.
	aborted map[uint32]bool
}

func newSpill(xid uint32) (*spill, error) {
	f, err := os.CreateTemp("", "dvsync-pg-txn-"+strconv.FormatUint(uint64(xid), 10)+"-*")
	if err != nil {
		return nil, fmt.Errorf("postgres: spill streamed transaction %d: %w", xid, err)
	}
	return &spill{f: f, w: bufio.NewWriterSize(f, 64<<10), aborted: map[uint32]bool{}}, nil
}

// add appends one pgoutput message, length-prefixed.
func (sp *spill) add(data []byte) error {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	// A bufio.Writer keeps its first error and returns it from every
	// later call, so checking the last write covers both.
	_, _ = sp.w.Write(n[:])
	if _, err := sp.w.Write(data); err != nil {
		return fmt.Errorf("postgres: spill streamed transaction: %w", err)
	}
	return nil
}

// replay calls fn with each message in the order added. The slice is
// reused between calls.
func (sp *spill) replay(fn func(data []byte) error) error {
	if err := sp.w.Flush(); err != nil {
		return fmt.Errorf("postgres: spill streamed transaction: %w", err)
	}
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("postgres: read back streamed transaction: %w", err)
	}
	r := bufio.NewReaderSize(sp.f, 64<<10)
	var n [4]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(r, n[:]); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("postgres: read back streamed transaction: %w", err)
		}
		size := int(binary.BigEndian.Uint32(n[:]))
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("postgres: read back streamed transaction: %w", err)
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
}

// discard removes the file.
func (sp *spill) discard() {
	sp.f.Close()
	os.Remove(sp.f.Name())
}

// streamed handles the messages of protocol 2's streaming: it reports
// whether data was one (or belongs to a stream block) and so is handled.
func (s *stream) streamed(ctx context.Context, data []byte) (bool, error) {
	if s.block != nil && data[0] != byte(pglogrepl.MessageTypeStreamStop) {
		return true, s.block.add(data)
	}
	switch pglogrepl.MessageType(data[0]) {
	case pglogrepl.MessageTypeStreamStart, pglogrepl.MessageTypeStreamStop,
		pglogrepl.MessageTypeStreamCommit, pglogrepl.MessageTypeStreamAbort:
	default:
		return false, nil
	}
	msg, err := pglogrepl.ParseV2(data, false)
	if err != nil {
		return true, fmt.Errorf("postgres: decode pgoutput message: %w", err)
	}
	if s.tx != nil {
		return true, fmt.Errorf("postgres: pgoutput %s message inside a transaction", msg.Type())
	}
	switch m := msg.(type) {
	case *pglogrepl.StreamStartMessageV2:
		sp := s.spills[m.Xid]
		if sp == nil {
			if sp, err = newSpill(m.Xid); err != nil {
				return true, err
			}
			s.spills[m.Xid] = sp
		}
		s.block = sp
	case *pglogrepl.StreamStopMessageV2:
		s.block = nil
	case *pglogrepl.StreamAbortMessageV2:
		sp := s.spills[m.Xid]
		switch {
		case sp == nil:
		case m.SubXid == m.Xid || m.SubXid == 0:
			sp.discard()
			delete(s.spills, m.Xid)
		default:
			sp.aborted[m.SubXid] = true
		}
	case *pglogrepl.StreamCommitMessageV2:
		return true, s.streamCommit(ctx, m)
	}
	return true, nil
}

// streamCommit decodes a streamed transaction that committed.
func (s *stream) streamCommit(ctx context.Context, m *pglogrepl.StreamCommitMessageV2) error {
	s.tx = &txn{
		commit: m.CommitLSN,
		time:   m.CommitTime.UTC(),
		xid:    strconv.FormatUint(uint64(m.Xid), 10),
		lsn:    m.CommitLSN.String(),
	}
	if sp := s.spills[m.Xid]; sp != nil {
		delete(s.spills, m.Xid)
		err := sp.replay(func(data []byte) error {
			msg, err := pglogrepl.ParseV2(data, true)
			if err != nil {
				return fmt.Errorf("postgres: decode pgoutput message of streamed transaction %d: %w", m.Xid, err)
			}
			if sub, ok := changeXid(msg); ok && sp.aborted[sub] {
				return nil
			}
			return s.message(ctx, msg)
		})
		sp.discard()
		if err != nil {
			return err
		}
	}
	return s.commit(ctx, m.CommitLSN, m.TransactionEndLSN)
}

// changeXid returns the (sub)transaction of a streamed row change.
// Relation and type messages are not row changes: they describe tables
// for the rest of the transaction, whichever subtransaction sent them.
func changeXid(msg pglogrepl.Message) (uint32, bool) {
	switch m := msg.(type) {
	case *pglogrepl.InsertMessageV2:
		return m.Xid, true
	case *pglogrepl.UpdateMessageV2:
		return m.Xid, true
	case *pglogrepl.DeleteMessageV2:
		return m.Xid, true
	case *pglogrepl.TruncateMessageV2:
		return m.Xid, true
	}
	return 0, false
}

// discardSpills removes the files of streamed transactions in progress,
// which a new session streams again from their start.
func (s *stream) discardSpills() {
	for xid, sp := range s.spills {
		sp.discard()
		delete(s.spills, xid)
	}
	s.block = nil
}
