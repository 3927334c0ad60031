package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/dvsync/dvsync/change"
)

// stream is the goroutine that owns the replication connection while the
// source is open: it decodes pgoutput messages into records, hands them to
// Read through out, and keeps the server informed of the confirmed LSN.
type stream struct {
	conn     *pgconn.PgConn
	logger   *slog.Logger
	tables   map[string]table
	acks     *ackTracker
	interval time.Duration
	// from is the position Open resumed at: records at or before it were
	// acked in an earlier run, so replaying their transaction drops them.
	from position
	out  chan change.Record

	dec        *decoder
	relations  map[uint32]*relation
	tx         *txn // the transaction being received; nil between transactions
	nextStatus time.Time
	// held is the latest record of tx, sent once the next record or the
	// commit arrives. The last record of a transaction thus reaches Read
	// only after its commit has been registered with acks, so acking it
	// confirms the transaction right away (at Close, say) rather than
	// depending on how soon the commit message follows.
	held *change.Record

	// err is why the stream ended; read it only after out is closed.
	err error
}

// txn is the transaction being received.
type txn struct {
	commit pglogrepl.LSN
	time   time.Time
	xid    string
	lsn    string // commit LSN as text, for Meta
	origin string
	// next is the index of its next record. Rows of tables we do not
	// capture take an index too, so indexes stay the same across a
	// restart that captures more of the publication's tables.
	next    uint64
	records bool   // whether it had records for us (emitted or dropped as acked)
	last    uint64 // the index of the last of them
}

// relation is a table as pgoutput last described it.
type relation struct {
	table   string // "schema.table"
	columns []relColumn
	wanted  bool  // one of the configured tables
	key     []int // indexes into columns of the key, in column order
}

type relColumn struct {
	name string
	typ  uint32
}

// errClosed ends a stream that Close stopped.
var errClosed = errors.New("postgres: source closed")

// serve runs the stream until ctx ends or it fails, then closes out.
func (s *stream) serve(ctx context.Context) {
	err := s.run(ctx)
	if ctx.Err() != nil {
		// Closing: report what was acked since the last update, so the
		// next run does not replay it. Best effort; a replay is harmless.
		if err := s.sendStatus(); err != nil {
			s.logger.Debug("postgres: final standby status not sent", "err", err)
		}
		err = errClosed
	}
	s.err = err
	close(s.out)
}

func (s *stream) run(ctx context.Context) error {
	s.nextStatus = time.Now().Add(s.interval)
	for {
		if !time.Now().Before(s.nextStatus) {
			if err := s.sendStatus(); err != nil {
				return err
			}
		}
		// The deadline only wakes us to send a status update in time;
		// a timed-out receive leaves the connection usable.
		rctx, cancel := context.WithDeadline(ctx, s.nextStatus)
		msg, err := s.conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("postgres: replication stream: %w", err)
		}
		if err := s.handle(ctx, msg); err != nil {
			return err
		}
	}
}

func (s *stream) handle(ctx context.Context, msg pgproto3.BackendMessage) error {
	switch m := msg.(type) {
	case *pgproto3.CopyData:
		if len(m.Data) == 0 {
			return errors.New("postgres: replication stream: empty message")
		}
		switch m.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
			if err != nil {
				return fmt.Errorf("postgres: replication stream: %w", err)
			}
			if s.tx == nil {
				// Every transaction committed before ServerWALEnd has
				// been sent ahead of this keepalive.
				s.acks.idle(ka.ServerWALEnd)
			}
			if ka.ReplyRequested {
				return s.sendStatus()
			}
			return nil
		case pglogrepl.XLogDataByteID:
			xld, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return fmt.Errorf("postgres: replication stream: %w", err)
			}
			return s.logical(ctx, xld.WALData)
		}
		return nil
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("postgres: replication stream: %w", pgconn.ErrorResponseToPgError(m))
	case *pgproto3.CopyDone:
		return errors.New("postgres: the server ended the replication stream")
	}
	return nil // notices, parameter status
}

// logical handles one pgoutput message.
func (s *stream) logical(ctx context.Context, data []byte) error {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("postgres: decode pgoutput message: %w", err)
	}
	if s.tx == nil {
		switch msg.(type) {
		case *pglogrepl.BeginMessage, *pglogrepl.RelationMessage, *pglogrepl.TypeMessage:
		default:
			return fmt.Errorf("postgres: pgoutput %s message outside a transaction", msg.Type())
		}
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		s.tx = &txn{
			commit: m.FinalLSN,
			time:   m.CommitTime.UTC(),
			xid:    strconv.FormatUint(uint64(m.Xid), 10),
			lsn:    m.FinalLSN.String(),
		}
	case *pglogrepl.OriginMessage:
		s.tx.origin = m.Name
	case *pglogrepl.RelationMessage:
		return s.relation(m)
	case *pglogrepl.TypeMessage:
		// Values are decoded by type OID; types we do not know keep
		// their text form, so the type's name adds nothing.
	case *pglogrepl.InsertMessage:
		return s.insert(ctx, m)
	case *pglogrepl.UpdateMessage:
		return s.update(ctx, m)
	case *pglogrepl.DeleteMessage:
		return s.delete(ctx, m)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			if rel := s.relations[id]; rel != nil && rel.wanted {
				s.logger.Warn("postgres: TRUNCATE is not replicated; the destination keeps the rows", "table", rel.table)
			}
		}
	case *pglogrepl.CommitMessage:
		if m.CommitLSN != s.tx.commit {
			return fmt.Errorf("postgres: commit at %s does not match begin's %s", m.CommitLSN, s.tx.commit)
		}
		s.acks.committed(s.tx.commit, m.TransactionEndLSN, s.tx.records, s.tx.last)
		s.tx = nil
		if r := s.held; r != nil {
			s.held = nil
			return s.send(ctx, *r)
		}
	}
	return nil
}

// relation records a table's description. pgoutput sends one before the
// first change of a table in a session and again after its schema changes.
func (s *stream) relation(m *pglogrepl.RelationMessage) error {
	rel := &relation{table: m.Namespace + "." + m.RelationName}
	for _, c := range m.Columns {
		rel.columns = append(rel.columns, relColumn{name: c.Name, typ: c.DataType})
	}
	s.relations[m.RelationID] = rel
	t, ok := s.tables[rel.table]
	if !ok {
		return nil
	}
	rel.wanted = true
	if t.primaryKey != nil {
		rel.key = columnIndexes(rel.columns, t.primaryKey)
	}
	if rel.key == nil {
		for i, c := range m.Columns {
			if c.Flags&1 != 0 { // part of the replica identity
				rel.key = append(rel.key, i)
			}
		}
	}
	if len(rel.key) == 0 {
		return fmt.Errorf("postgres: table %s has no replica identity key, so its changes cannot be keyed: add a primary key, or set REPLICA IDENTITY USING INDEX or FULL", rel.table)
	}
	s.logger.Debug("postgres: relation", "table", rel.table, "columns", len(rel.columns), "key_columns", len(rel.key))
	return nil
}

// columnIndexes returns the indexes of names in columns, or nil if one is
// missing.
func columnIndexes(columns []relColumn, names []string) []int {
	var idx []int
	for _, n := range names {
		found := false
		for i, c := range columns {
			if c.name == n {
				idx = append(idx, i)
				found = true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return idx
}

func (s *stream) insert(ctx context.Context, m *pglogrepl.InsertMessage) error {
	rel, err := s.wanted(m.RelationID)
	if rel == nil {
		return err
	}
	after, key, err := s.row(rel, m.Tuple)
	if err != nil {
		return err
	}
	return s.emit(ctx, change.Record{Op: change.OpInsert, Table: rel.table, Key: key, After: after})
}

func (s *stream) update(ctx context.Context, m *pglogrepl.UpdateMessage) error {
	rel, err := s.wanted(m.RelationID)
	if rel == nil {
		return err
	}
	after, key, err := s.row(rel, m.NewTuple)
	if err != nil {
		return err
	}
	oldKey := key
	var before change.Row
	if m.OldTuple != nil {
		// 'O': the whole old row (REPLICA IDENTITY FULL); 'K': only its
		// key columns, sent because the key changed.
		old, k, err := s.row(rel, m.OldTuple)
		if err != nil {
			return err
		}
		oldKey = k
		if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
			before = old
		}
	}
	if !oldKey.Equal(key) {
		// The row moved to another key: for a destination keyed like the
		// source, that is the old key's row gone and a new one created.
		if err := s.emit(ctx, change.Record{Op: change.OpDelete, Table: rel.table, Key: oldKey, Before: before}); err != nil {
			return err
		}
		return s.emit(ctx, change.Record{Op: change.OpInsert, Table: rel.table, Key: key, After: after})
	}
	return s.emit(ctx, change.Record{Op: change.OpUpdate, Table: rel.table, Key: key, Before: before, After: after})
}

func (s *stream) delete(ctx context.Context, m *pglogrepl.DeleteMessage) error {
	rel, err := s.wanted(m.RelationID)
	if rel == nil {
		return err
	}
	old, key, err := s.row(rel, m.OldTuple)
	if err != nil {
		return err
	}
	var before change.Row
	if m.OldTupleType == pglogrepl.DeleteMessageTupleTypeOld {
		before = old
	}
	return s.emit(ctx, change.Record{Op: change.OpDelete, Table: rel.table, Key: key, Before: before})
}

// wanted returns the relation of a row message, or nil (and no error) if
// it is not one of ours.
func (s *stream) wanted(id uint32) (*relation, error) {
	rel := s.relations[id]
	if rel == nil {
		return nil, fmt.Errorf("postgres: row for relation %d, which was never described", id)
	}
	if !rel.wanted {
		s.tx.next++
		return nil, nil
	}
	return rel, nil
}

// row decodes a tuple and extracts its key. Errors name the table and
// column but never the value, which may be personal data.
func (s *stream) row(rel *relation, tuple *pglogrepl.TupleData) (change.Row, change.Key, error) {
	if tuple == nil || len(tuple.Columns) != len(rel.columns) {
		return nil, nil, fmt.Errorf("postgres: table %s: row does not match the table's %d columns", rel.table, len(rel.columns))
	}
	row := make(change.Row, len(rel.columns))
	for i, col := range tuple.Columns {
		c := rel.columns[i]
		v, err := s.dec.value(c.typ, col)
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: table %s column %s (type %d): cannot decode value", rel.table, c.name, c.typ)
		}
		row[i] = change.Column{Name: c.name, Value: v}
	}
	key := make(change.Key, len(rel.key))
	for i, ci := range rel.key {
		if row[ci].Value.IsUnchanged() {
			return nil, nil, fmt.Errorf("postgres: table %s: key column %s was not sent", rel.table, row[ci].Name)
		}
		key[i] = row[ci]
	}
	return row, key, nil
}

// emit gives r its position and transaction details and queues it for
// Read, unless it was acked before this run.
func (s *stream) emit(ctx context.Context, r change.Record) error {
	pos := position{commit: s.tx.commit, index: s.tx.next}
	s.tx.next++
	s.tx.records, s.tx.last = true, pos.index
	if !pos.after(s.from) {
		return nil
	}
	r.Position = pos.encode()
	r.CommitTime = s.tx.time
	r.Origin = change.Origin{System: "postgres", Name: s.tx.origin}
	r.Meta = map[string]string{"xid": s.tx.xid, "lsn": s.tx.lsn}
	prev := s.held
	s.held = &r
	if prev != nil {
		return s.send(ctx, *prev)
	}
	return nil
}

// send hands r to Read, waiting while its buffer is full.
func (s *stream) send(ctx context.Context, r change.Record) error {
	select {
	case s.out <- r:
		return nil
	default:
	}
	// Read is behind. While we wait, keep the server hearing from us, or
	// it would drop the connection after wal_sender_timeout.
	for {
		timer := time.NewTimer(time.Until(s.nextStatus))
		select {
		case s.out <- r:
			timer.Stop()
			return nil
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
			if err := s.sendStatus(); err != nil {
				return err
			}
		}
	}
}

// sendStatus reports the confirmed LSN as written, flushed and applied.
func (s *stream) sendStatus() error {
	lsn := s.acks.confirmedLSN()
	s.nextStatus = time.Now().Add(s.interval)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn,
		WALFlushPosition: lsn,
		WALApplyPosition: lsn,
	})
	if err != nil {
		return fmt.Errorf("postgres: send standby status: %w", err)
	}
	return nil
}
