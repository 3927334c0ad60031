// Package postgres is the PostgreSQL change source: it streams row changes
// of chosen tables from a logical replication slot with the built-in
// pgoutput plugin, and confirms progress to the slot only as far as the
// records have been acked.
//
// Open creates what is missing (a publication for the tables, a logical
// slot) and streams with pgoutput protocol version 1: whole transactions,
// sent at commit. The server needs wal_level=logical; the role needs the
// REPLICATION attribute. Every captured table needs a key: a primary key,
// a REPLICA IDENTITY USING INDEX, or REPLICA IDENTITY FULL (whose key is
// the primary key if there is one, all columns otherwise).
//
// Records: inserts carry After; updates carry After, where TOASTed columns
// the update did not touch are change.Unchanged; deletes carry only the
// key. Before is set under REPLICA IDENTITY FULL. An update that changes
// the key becomes a delete of the old key and an insert of the new one.
// Records of a transaction written by a replication origin (such as
// dvsync's own PostgreSQL sink) carry its name in Origin.Name. TRUNCATE is
// logged and not replicated.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/source"
)

// maxBatch caps the records one Read returns; bufferSize caps the records
// decoded ahead of Read. Together they bound the source's memory.
const (
	maxBatch   = 1024
	bufferSize = 1024
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
	conn    *pgconn.PgConn
	stream  *stream
	acks    *ackTracker
	records <-chan change.Record
	cancel  context.CancelFunc
	done    chan struct{}
}

var _ source.Source = (*Source)(nil)

// New returns an unopened source. It validates cfg (after defaults) and
// does not connect. A nil logger discards logs.
func New(cfg Config, logger *slog.Logger) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("postgres: invalid config: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{cfg: cfg.withDefaults(), logger: logger}, nil
}

// Open checks the tables, sets up the publication and slot if needed, and
// starts streaming just after from: the slot resumes at from's transaction,
// and the records of that transaction at or before from are dropped. A nil
// from starts at the slot's confirmed position.
//
// Open fails, naming the table, if a table does not exist or has no key;
// it then leaves the publication untouched. It waits up to ten seconds for
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
	up, err := prepare(ctx, s.cfg)
	if err != nil {
		return err
	}
	conn, err := connectReplication(ctx, s.cfg.DSN)
	if err != nil {
		return err
	}
	// The server starts at the later of this and the slot's confirmed
	// LSN, skipping transactions that committed before it.
	startLSN := up.confirmed
	if from != nil {
		startLSN = start.commit
	}
	err = pglogrepl.StartReplication(ctx, conn, s.cfg.Slot, startLSN, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", fmt.Sprintf("publication_names '%s'", s.cfg.Publication)},
	})
	if err != nil {
		conn.Close(context.Background())
		return fmt.Errorf("postgres: start replication from slot %s: %w", s.cfg.Slot, err)
	}
	s.logger.Info("postgres: streaming", "slot", s.cfg.Slot, "publication", s.cfg.Publication,
		"from", startLSN.String(), "confirmed", up.confirmed.String(), "tables", len(up.tables))

	out := make(chan change.Record, bufferSize)
	s.acks = newAckTracker(start, up.confirmed)
	s.stream = &stream{
		conn:      conn,
		logger:    s.logger,
		tables:    up.tables,
		acks:      s.acks,
		interval:  s.cfg.StatusInterval,
		from:      start,
		out:       out,
		dec:       newDecoder(),
		relations: map[uint32]*relation{},
	}
	s.conn = conn
	s.records = out
	s.done = make(chan struct{})
	streamCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() {
		defer close(s.done)
		s.stream.serve(streamCtx)
	}()
	return nil
}

// Read blocks until a record is available, then returns it with whatever
// else is buffered (at most 1024 records). Records come in commit order;
// those of one transaction are contiguous. After the stream fails, Read
// returns the records received before the failure, then the error.
func (s *Source) Read(ctx context.Context) ([]change.Record, error) {
	if s.records == nil {
		return nil, errors.New("postgres: source not open")
	}
	var batch []change.Record
	select {
	case r, ok := <-s.records:
		if !ok {
			return nil, s.stream.err
		}
		batch = append(make([]change.Record, 0, min(len(s.records)+1, maxBatch)), r)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	for len(batch) < maxBatch {
		select {
		case r, ok := <-s.records:
			if !ok {
				return batch, nil
			}
			batch = append(batch, r)
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
		return errors.New("postgres: source not open")
	}
	s.acks.ack(p)
	return nil
}

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
		s.conn.Conn().Close()
		<-s.done
	}
	err := s.conn.Close(ctx)
	s.conn, s.stream, s.acks, s.records, s.cancel, s.done = nil, nil, nil, nil, nil, nil
	if err != nil {
		return fmt.Errorf("postgres: close replication connection: %w", err)
	}
	return nil
}
