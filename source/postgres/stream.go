package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	cfg    Config
	logger *slog.Logger
	tables map[string]table
	acks   *ackTracker
	// from is the position Open resumed at, or after a reconnect the last
	// position handed to Read: records at or before it were delivered
	// already, so replaying their transaction drops them.
	from position
	// sent is the position of the last record handed to Read.
	sent position
	out  chan []change.Record

	// conn is the replication connection, nil while reconnecting. The
	// stream goroutine replaces it under connMu and reads it freely;
	// other goroutines lock connMu (see interrupt).
	connMu sync.Mutex
	conn   *pgconn.PgConn

	dec       *decoder
	relations map[uint32]*relation
	tx        *txn // the transaction being received; nil between transactions
	// spills hold the streamed transactions in progress, by xid; block
	// is the one whose stream block is being received, if any.
	spills map[uint32]*spill
	block  *spill
	// schemas are the captured tables' columns as last described, kept
	// across reconnects; notes are the schema change notices awaiting
	// the next record of their table (see schemaChanged).
	schemas    map[string][]relColumn
	notes      map[string]map[string]string
	nextStatus time.Time
	// batch holds the records of tx decoded and not yet handed to Read,
	// in order; end is the position of its last record and prev that of
	// the one before. Records go to Read in batches, at the commit or when
	// handoffSize have gathered, so that Read is woken once per
	// transaction or batch rather than once per record. The last record
	// of a transaction is always held back until its commit has been
	// registered with acks, so acking it confirms the transaction right
	// away (at Close, say) rather than depending on how soon the commit
	// message follows.
	batch     []change.Record
	end, prev position

	// err is why the stream ended; read it only after out is closed.
	err error
	// failure, once set by fail, ends the stream with that error.
	failure atomic.Pointer[error]
	// health reports the stream's state to Source.Healthy: nil while
	// streaming, an error while reconnecting and once the stream failed.
	health func(error)
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
	// skip is set for a transaction of Config.SkipOrigin: its changes
	// are not records for us, and it is confirmed like one without any.
	skip bool
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
	s.discardSpills()
	if ctx.Err() != nil {
		// Closing: report what was acked since the last update, so the
		// next run does not replay it. Best effort; a replay is harmless.
		if s.conn != nil {
			if err := s.sendStatus(); err != nil {
				s.logger.Debug("postgres: final standby status not sent", "err", err)
			}
		}
		err = errClosed
	} else {
		s.health(err)
	}
	s.err = err
	close(s.out)
}

// run receives from the server, reconnecting whenever the connection is
// lost, until ctx ends or the stream fails for good.
func (s *stream) run(ctx context.Context) error {
	for {
		err := s.receive(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if f := s.failure.Load(); f != nil {
			return *f
		}
		var cl *connLost
		if !errors.As(err, &cl) {
			return err
		}
		if err := s.reconnect(ctx, err); err != nil {
			return err
		}
	}
}

// fail ends the stream with err, from any goroutine: the connection is
// cut, and the stream reports err instead of reconnecting.
func (s *stream) fail(err error) {
	s.failure.CompareAndSwap(nil, &err)
	s.interrupt()
}

// receive handles the messages of one connection until it fails.
//
// Rather than give each receive a context, which costs a timer and a
// watcher per message, it sets the socket's read deadline itself: to the
// next status update, which only wakes it to send one in time, and to now
// when ctx ends. A timed-out receive leaves the connection usable.
func (s *stream) receive(ctx context.Context) error {
	conn := s.conn.Conn()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stop()
	s.nextStatus = time.Now().Add(s.cfg.StatusInterval)
	var deadline time.Time
	for {
		if !time.Now().Before(s.nextStatus) {
			if err := s.sendStatus(); err != nil {
				return err
			}
		}
		if !deadline.Equal(s.nextStatus) {
			deadline = s.nextStatus
			if err := conn.SetReadDeadline(deadline); err != nil {
				return lost("postgres: replication stream: %w", err)
			}
		}
		// Checked after setting the deadline: ctx ending before that is
		// seen here, and after it, its deadline of now wins.
		if err := ctx.Err(); err != nil {
			return err
		}
		msg, err := s.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return lost("postgres: replication stream: %w", err)
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
		err := pgconn.ErrorResponseToPgError(m)
		if transient(err) {
			// Shutdown, crash, or a slot invalidated under us (which
			// the reconnect reports as lost).
			return lost("postgres: replication stream: %w", err)
		}
		return fmt.Errorf("postgres: replication stream: %w", err)
	case *pgproto3.CopyDone:
		return lost("postgres: replication stream: %w", errors.New("the server ended the stream"))
	}
	return nil // notices, parameter status
}

// logical handles one pgoutput message.
func (s *stream) logical(ctx context.Context, data []byte) error {
	if len(data) == 0 {
		return errors.New("postgres: empty pgoutput message")
	}
	if done, err := s.streamed(ctx, data); done {
		return err
	}
	msg, err := pglogrepl.ParseV2(data, false)
	if err != nil {
		return fmt.Errorf("postgres: decode pgoutput message: %w", err)
	}
	return s.message(ctx, msg)
}

// message handles a pgoutput message of a transaction sent whole, or of
// a streamed one being read back after its commit.
func (s *stream) message(ctx context.Context, msg pglogrepl.Message) error {
	if s.tx == nil {
		switch msg.(type) {
		case *pglogrepl.BeginMessage, *pglogrepl.RelationMessageV2, *pglogrepl.TypeMessageV2:
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
		s.tx.skip = s.cfg.SkipOrigin != "" && m.Name == s.cfg.SkipOrigin
	case *pglogrepl.RelationMessageV2:
		return s.relation(&m.RelationMessage)
	case *pglogrepl.TypeMessageV2:
		// Values are decoded by type OID; types we do not know keep
		// their text form, so the type's name adds nothing.
	case *pglogrepl.InsertMessageV2:
		return s.insert(ctx, &m.InsertMessage)
	case *pglogrepl.UpdateMessageV2:
		return s.update(ctx, &m.UpdateMessage)
	case *pglogrepl.DeleteMessageV2:
		return s.delete(ctx, &m.DeleteMessage)
	case *pglogrepl.TruncateMessageV2:
		return s.truncate(ctx, &m.TruncateMessage)
	case *pglogrepl.CommitMessage:
		if m.CommitLSN != s.tx.commit {
			return fmt.Errorf("postgres: commit at %s does not match begin's %s", m.CommitLSN, s.tx.commit)
		}
		return s.commit(ctx, m.CommitLSN, m.TransactionEndLSN)
	}
	return nil
}

// commit ends the transaction being received and hands its remaining
// records to Read.
func (s *stream) commit(ctx context.Context, commit, end pglogrepl.LSN) error {
	s.acks.committed(commit, end, s.tx.records, s.tx.last)
	s.tx = nil
	if len(s.batch) == 0 {
		return nil
	}
	batch := s.batch
	s.batch = nil
	return s.send(ctx, batch, s.end)
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
	if t.key != nil {
		rel.key = columnIndexes(rel.columns, t.key)
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
	s.schemaChanged(rel)
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

// truncate emits an OpTruncate record for each captured table of a
// TRUNCATE. Each table takes an index, captured or not, as rows do.
func (s *stream) truncate(ctx context.Context, m *pglogrepl.TruncateMessage) error {
	var opts []string
	if m.Option&truncateCascade != 0 {
		opts = append(opts, "cascade")
	}
	if m.Option&truncateRestartIdentity != 0 {
		opts = append(opts, "restart_identity")
	}
	for _, id := range m.RelationIDs {
		rel, err := s.wanted(id)
		if err != nil {
			return err
		}
		if rel == nil {
			continue
		}
		r := change.Record{Op: change.OpTruncate, Table: rel.table}
		if len(opts) > 0 {
			r.Meta = map[string]string{"truncate": strings.Join(opts, ",")}
		}
		if err := s.emit(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// The option bits of a pgoutput Truncate message.
const (
	truncateCascade         = 1
	truncateRestartIdentity = 2
)

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

// emit gives r its position and transaction details (added to its Meta)
// and queues it for Read, unless it was delivered before.
func (s *stream) emit(ctx context.Context, r change.Record) error {
	pos := position{commit: s.tx.commit, index: s.tx.next}
	s.tx.next++
	if s.tx.skip {
		return nil
	}
	s.tx.records, s.tx.last = true, pos.index
	if !pos.after(s.from) {
		return nil
	}
	r.Position = pos.encode()
	r.CommitTime = s.tx.time
	r.Origin = change.Origin{System: "postgres", Name: s.tx.origin}
	meta := map[string]string{"xid": s.tx.xid, "lsn": s.tx.lsn}
	for k, v := range r.Meta {
		meta[k] = v
	}
	if note := s.notes[r.Table]; note != nil {
		for k, v := range note {
			meta[k] = v
		}
		delete(s.notes, r.Table)
	}
	r.Meta = meta
	if len(s.batch) == handoffSize {
		// Hand over all but the latest record, which waits for the
		// next record or the commit.
		batch := s.batch[: handoffSize-1 : handoffSize-1]
		s.batch = append(make([]change.Record, 0, handoffSize), s.batch[handoffSize-1])
		if err := s.send(ctx, batch, s.prev); err != nil {
			return err
		}
	}
	if s.batch == nil {
		// Room for a small transaction; a large one grows to handoffSize.
		s.batch = make([]change.Record, 0, 16)
	}
	s.batch = append(s.batch, r)
	s.prev, s.end = s.end, pos
	return nil
}

// send hands batch, whose last record is at pos, to Read, waiting while
// its buffer is full. Read owns batch from then on.
func (s *stream) send(ctx context.Context, batch []change.Record, pos position) error {
	select {
	case s.out <- batch:
		s.sent = pos
		return nil
	default:
	}
	// Read is behind. While we wait, keep the server hearing from us, or
	// it would drop the connection after wal_sender_timeout.
	for {
		timer := time.NewTimer(time.Until(s.nextStatus))
		select {
		case s.out <- batch:
			timer.Stop()
			s.sent = pos
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
	s.nextStatus = time.Now().Add(s.cfg.StatusInterval)
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn,
		WALFlushPosition: lsn,
		WALApplyPosition: lsn,
	})
	if err != nil {
		return lost("postgres: send standby status: %w", err)
	}
	return nil
}
