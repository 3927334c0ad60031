package benchenv

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// CreateSlot creates a pgoutput logical replication slot: WAL written
// from now on is kept for it until it is read or dropped.
func (p *Postgres) CreateSlot(ctx context.Context, slot string) error {
	return p.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", slot)
}

// DropSlot drops a slot, waiting up to ten seconds for the connection
// that last streamed from it to go, so that the WAL it held is freed.
func (p *Postgres) DropSlot(ctx context.Context, slot string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := p.Conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", slot)
		if err != nil {
			return fmt.Errorf("benchenv: drop slot %s: %w", slot, err)
		}
		var left bool
		if err := p.Conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = $1)", slot).Scan(&left); err != nil {
			return fmt.Errorf("benchenv: drop slot %s: %w", slot, err)
		}
		if !left {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("benchenv: slot %s still in use", slot)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// CopyOut reads Table with COPY … TO STDOUT and discards it: the rate at
// which PostgreSQL hands out the table's rows, the ceiling of any reader
// of it. It returns the rows copied.
func (p *Postgres) CopyOut(ctx context.Context) (int64, error) {
	tag, err := p.Conn.PgConn().CopyTo(ctx, io.Discard, "COPY "+Table+" TO STDOUT")
	if err != nil {
		return 0, fmt.Errorf("benchenv: copy: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ReadRaw streams slot with pglogrepl alone, receiving and parsing the
// pgoutput messages of publication without decoding values or acking,
// until it has parsed n inserts: the ceiling of any Go consumer of the
// same changes. It uses protocol version 1, so a large transaction
// arrives whole after its commit rather than streamed.
func ReadRaw(ctx context.Context, dsn, slot, publication string, n int) error {
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("benchenv: replication connection: %w", err)
	}
	defer conn.Close(context.Background())
	err = pglogrepl.StartReplication(ctx, conn, slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + publication + "'"},
	})
	if err != nil {
		return fmt.Errorf("benchenv: start replication: %w", err)
	}
	inserts := 0
	for inserts < n {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return fmt.Errorf("benchenv: raw replication after %d of %d inserts: %w", inserts, n, err)
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(m)
		case *pgproto3.CopyData:
			if len(m.Data) == 0 || m.Data[0] != pglogrepl.XLogDataByteID {
				continue
			}
			xld, err := pglogrepl.ParseXLogData(m.Data[1:])
			if err != nil {
				return err
			}
			lm, err := pglogrepl.Parse(xld.WALData)
			if err != nil {
				return err
			}
			if _, ok := lm.(*pglogrepl.InsertMessage); ok {
				inserts++
			}
		}
	}
	return nil
}
