// Package postgres is the PostgreSQL change source: it streams row changes
// of chosen tables from a logical replication slot with the built-in
// pgoutput plugin, and confirms progress to the slot only as far as the
// records have been acked.
//
// Open creates what is missing (a publication for the tables, a logical
// slot) and streams with pgoutput protocol version 2, so the server
// streams a large transaction while it runs instead of decoding it whole
// first; the source keeps such a transaction in a temporary file until it
// commits, and never delivers one that aborts. The server needs
// PostgreSQL 14 or later and wal_level=logical; the role needs the
// REPLICATION attribute. Every captured table needs a key: a primary key,
// a REPLICA IDENTITY USING INDEX, or REPLICA IDENTITY FULL (whose key is
// the primary key if there is one, all columns otherwise).
//
// Records: inserts carry After; updates carry After, where TOASTed columns
// the update did not touch are change.Unchanged; deletes carry only the
// key. Before is set under REPLICA IDENTITY FULL. An update that changes
// the key becomes a delete of the old key and an insert of the new one.
// TRUNCATE becomes one change.OpTruncate record per captured table.
// Records of a transaction written by a replication origin (such as
// dvsync's own PostgreSQL sink) carry its name in Origin.Name; those of
// Config.SkipOrigin are not delivered at all. The first record of a table
// after a column was dropped or changed type names those columns in Meta
// (MetaDroppedColumns, MetaRetypedColumns).
//
// A lost connection or a server restart is survived: the source
// reconnects with backoff and resumes from the confirmed position,
// without delivering a record twice. A heartbeat keeps the slot of a
// quiet database moving and measures its lag (SlotLag); a slot the server
// invalidated ends the stream with ErrSlotLost.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/source"
)

// maxBatch caps the records one Read returns. The stream hands records
// to Read in batches of at most handoffSize, and decodes at most
// bufferSize batches ahead of it. Together they bound the source's memory.
const (
	maxBatch    = 1024
	handoffSize = 256
	bufferSize  = 16
)

// Source is a source.Source over one PostgreSQL logical replication slot.
//
// Its methods follow the source.Source contract: Open, then Read from one
// goroutine and Ack from another, then Close; the source may be opened
// again after Close.
type Source struct {
	cfg    Config
	logger *slog.Logger

	// Set by Open, cleared by Close.
	stream  *stream
	acks    *ackTracker
	records <-chan []change.Record
	// rest is what the last Read took from records beyond maxBatch.
	rest   []change.Record
	cancel context.CancelFunc
	done   chan struct{}
	beats  chan struct{} // closed when the heartbeat has stopped; nil without one

	// lag is the slot's lag in bytes, -1 while unknown.
	lag atomic.Int64
	// health is what Healthy returns.
	health atomic.Pointer[error]
}

var (
	_ source.Source         = (*Source)(nil)
	_ source.HealthReporter = (*Source)(nil)
)

// errNotOpen is the error of methods called outside Open and Close.
var errNotOpen = errors.New("postgres: source not open")

// New returns an unopened source. It validates cfg (after defaults) and
// does not connect. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{cfg: cfg.withDefaults(), logger: logger}
	s.lag.Store(-1)
	s.setHealth(errNotOpen)
	return s, nil
}

// Open checks the tables, sets up the publication and slot if needed, and
// starts streaming just after from: the slot resumes at from's transaction,
// and the records of that transaction at or before from are dropped. A nil
// from starts at the slot's confirmed position.
//
// Open fails, naming the table, if a table does not exist or has no key;
// it then leaves the publication untouched. It fails with ErrSlotLost if
// the server invalidated the slot, and it creates a missing slot only
// when from is nil: a slot that vanished took the changes since from
// with it. It waits up to ten seconds for
// a slot that another session still holds.
func (s *Source) Open(ctx context.Context, from change.Position) error {
	if s.stream != nil {
		return errors.New("postgres: source already open")
	}
	var start position
	if from != nil {
		p, err := decodePosition(from)
		if err != nil {
			return err
		}
		start = p
	}
	// Resuming needs the slot that holds the changes since from; a new
	// slot would silently start after them.
	up, err := prepare(ctx, s.cfg, from == nil)
	if err != nil {
		return err
	}
	// The server starts at the later of this and the slot's confirmed
	// LSN, skipping transactions that committed before it.
	startLSN := up.confirmed
	if from != nil {
		startLSN = start.commit
	}
	conn, err := startReplication(ctx, s.cfg, startLSN)
	if err != nil {
		return err
	}
	s.logger.Info("postgres: streaming", "slot", s.cfg.Slot, "publication", s.cfg.Publication,
		"from", startLSN.String(), "confirmed", up.confirmed.String(), "tables", len(up.tables))

	out := make(chan []change.Record, bufferSize)
	s.acks = newAckTracker(start, up.confirmed)
	s.stream = &stream{
		cfg:       s.cfg,
		conn:      conn,
		logger:    s.logger,
		tables:    up.tables,
		acks:      s.acks,
		from:      start,
		sent:      start,
		out:       out,
		dec:       newDecoder(),
		relations: map[uint32]*relation{},
		health:    s.setHealth,
		spills:    map[uint32]*spill{},
		schemas:   map[string][]relColumn{},
		notes:     map[string]map[string]string{},
	}
	s.records = out
	s.setHealth(nil)
	s.done = make(chan struct{})
	streamCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		s.stream.serve(streamCtx)
	}()
	if s.cfg.HeartbeatInterval > 0 {
		hb := &heartbeat{cfg: s.cfg, logger: s.logger, lag: &s.lag, fail: s.stream.fail}
		s.beats = make(chan struct{})
		go func() {
			defer close(s.beats)
			hb.run(streamCtx)
		}()
	}
	return nil
}

// Read blocks until a record is available, then returns it with whatever
// else is buffered (at most 1024 records). Records come in commit order;
// those of one transaction are contiguous. After the stream fails, Read
// returns the records received before the failure, then the error.
func (s *Source) Read(ctx context.Context) ([]change.Record, error) {
	if s.records == nil {
		return nil, errNotOpen
	}
	batch := s.rest
	s.rest = nil
	if len(batch) == 0 {
		select {
		case b, ok := <-s.records:
			if !ok {
				return nil, s.stream.err
			}
			batch = b
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for len(batch) < maxBatch {
		select {
		case b, ok := <-s.records:
			if !ok {
				return batch, nil
			}
			if len(batch)+len(b) > maxBatch {
				b, s.rest = b[:maxBatch-len(batch)], b[maxBatch-len(batch):]
			}
			// The stream no longer touches a batch it handed over, so
			// batch may grow in place.
			batch = append(batch, b...)
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// Ack records that every record up to and including pos is durable. The
// slot is confirmed up to the end of the last transaction whose records
// are all acked, at the next status update (every StatusInterval, and at
// Close).
func (s *Source) Ack(ctx context.Context, pos change.Position) error {
	p, err := decodePosition(pos)
	if err != nil {
		return err
	}
	if s.acks == nil {
		return errNotOpen
	}
	s.acks.ack(p)
	return nil
}

// SlotLag returns how many bytes of WAL the slot has yet to confirm (the
// server's current WAL position minus the slot's confirmed_flush_lsn),
// as last measured by the heartbeat, and whether there is a measurement:
// there is none before the first heartbeat, after Close, or with the
// heartbeat turned off. The WAL the server keeps for the slot grows with
// it. Safe to call from any goroutine at any time.
func (s *Source) SlotLag() (bytes int64, ok bool) {
	n := s.lag.Load()
	return n, n >= 0
}

// Healthy returns nil while the source streams, and otherwise why not:
// it is not open, it is reconnecting (with the last attempt's error), or
// the stream has failed. It never blocks and is safe to call from any
// goroutine at any time. Errors name no secrets.
func (s *Source) Healthy() error {
	if p := s.health.Load(); p != nil {
		return *p
	}
	return errNotOpen
}

func (s *Source) setHealth(err error) { s.health.Store(&err) }

// Close stops streaming, reports the confirmed position one last time and
// closes the connection. Records not yet read are dropped; they are not
// acked, so the next Open delivers them again.
func (s *Source) Close(ctx context.Context) error {
	if s.stream == nil {
		return nil
	}
	s.cancel()
	select {
	case <-s.done:
	case <-ctx.Done():
		// The stream is stuck writing to the server. Closing the socket
		// under it is the only way to unblock it.
		s.stream.interrupt()
		<-s.done
	}
	if s.beats != nil {
		<-s.beats
	}
	s.lag.Store(-1)
	s.setHealth(errNotOpen)
	var err error
	if conn := s.stream.conn; conn != nil {
		err = conn.Close(ctx)
	}
	s.stream, s.acks, s.records, s.rest, s.cancel, s.done, s.beats = nil, nil, nil, nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("postgres: close replication connection: %w", err)
	}
	return nil
}
