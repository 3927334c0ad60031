package sqlserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dvsync/dvsync/change"
)

// databaseSQL reads what the source needs of the connected database.
const databaseSQL = `SELECT DB_NAME() AS name, CAST(snapshot_isolation_state AS int) AS snapshot_isolation_state, is_cdc_enabled FROM sys.databases WHERE database_id = DB_ID()`

// opener connects to the database; tests replace it.
type opener func(dsn string) (database, error)

func openSQL(dsn string) (database, error) { return openDatabase(dsn) }

// prepare connects, checks the database and every table, and returns a
// streamer positioned at from. Tables from does not mention start at the
// current version or maximum LSN, read whole first when snapshot is set.
func prepare(ctx context.Context, open opener, cfg Config, logger *slog.Logger, from change.Position, snapshot bool) (*streamer, error) {
	pos, err := decodePosition(from)
	if err != nil {
		return nil, err
	}
	db, err := open(cfg.DSN)
	if err != nil {
		return nil, err
	}
	s := &streamer{cfg: cfg, db: db, logger: logger, context: []byte(cfg.Context), pos: pos, warned: map[string]string{}}
	if err := s.check(ctx, snapshot); err != nil {
		_ = db.close() // the check's error is the one to report
		return nil, err
	}
	return s, nil
}

func (s *streamer) check(ctx context.Context, snapshot bool) error {
	var name string
	var isolation int64
	var cdc, found bool
	err := s.db.query(ctx, databaseSQL, nil, func(_ []column, v []any) error {
		name, _ = v[0].(string)
		isolation, _ = v[1].(int64)
		cdc, _ = v[2].(bool)
		found = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlserver: connect: %w", err)
	}
	if !found {
		return errors.New("sqlserver: the login cannot read its database's row of sys.databases")
	}
	switch {
	case s.cfg.Mode == ModeChangeTracking && isolation != 1:
		return fmt.Errorf("sqlserver: database %s does not allow snapshot isolation, which change tracking mode reads under so that versions and rows agree: run ALTER DATABASE %s SET ALLOW_SNAPSHOT_ISOLATION ON", name, quoteName(name))
	case s.cfg.Mode == ModeCDC && !cdc:
		return fmt.Errorf("sqlserver: CDC is not enabled on database %s: run EXEC sys.sp_cdc_enable_db in it", name)
	}
	var errs []error
	for _, tn := range s.cfg.Tables {
		t, err := describeTable(ctx, s.db, s.cfg, tn)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		start, err := s.startCursor(ctx, t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.tables = append(s.tables, t)
		if _, ok := s.pos.Tables[tn]; ok {
			continue
		}
		if snapshot {
			s.startSnapshot(t, start)
		} else {
			s.pos.Tables[tn] = start
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if s.cfg.Mode == ModeCDC {
		s.lastCheck = time.Now()
		for _, t := range s.tables {
			s.warnMismatch(t)
		}
	}
	return nil
}

// startCursor is where t streams from when nothing is saved for it: the
// current change tracking version or maximum LSN, or with StartEarliest
// the oldest it still holds. Reading it also checks that t is tracked or
// captured.
func (s *streamer) startCursor(ctx context.Context, t *table) (cursor, error) {
	earliest := s.cfg.Start == StartEarliest
	if s.cfg.Mode == ModeCDC {
		minLSN, maxLSN, err := cdcLSNs(ctx, s.db, t)
		if earliest {
			// Nothing of the instance's first LSN has been read.
			return cursor{LSN: minLSN}, err
		}
		return cursor{LSN: maxLSN, Seqval: allSeqval}, err
	}
	cur, minValid, err := ctVersions(ctx, s.db, t)
	if earliest {
		return cursor{Version: minValid}, err
	}
	return cursor{Version: cur}, err
}
