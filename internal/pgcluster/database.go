package pgcluster

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// CreateDatabase creates an empty database owned by the cluster's
// superuser. It fails if the database exists.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("pgcluster: create database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("pgcluster: create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops a database if it exists. It first ends the
// walsenders streaming from the database's replication slots and drops
// those slots, which would otherwise make DROP DATABASE fail, and ends
// every other session in it.
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	conn, err := c.connect(ctx)
	if err != nil {
		return fmt.Errorf("pgcluster: drop database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	if err := dropSlots(ctx, conn, name); err != nil {
		return fmt.Errorf("pgcluster: drop database %s: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("pgcluster: drop database %s: %w", name, err)
	}
	return nil
}

// dropSlots drops every replication slot of database db. A terminated
// walsender releases its slot shortly after it is signalled, so an active
// slot is terminated and then polled until it is free.
func dropSlots(ctx context.Context, conn *pgx.Conn, db string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var active int
		err := conn.QueryRow(ctx, `
			SELECT count(pg_terminate_backend(active_pid))
			  FROM pg_replication_slots
			 WHERE database = $1 AND active_pid IS NOT NULL`, db).Scan(&active)
		if err != nil {
			return err
		}
		if active == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replication slots still in use: %w", ctx.Err())
		case <-tick.C:
		}
	}
	_, err := conn.Exec(ctx, `
		SELECT pg_drop_replication_slot(slot_name)
		  FROM pg_replication_slots
		 WHERE database = $1`, db)
	return err
}

func (c *Cluster) connect(ctx context.Context) (*pgx.Conn, error) {
	return pgx.Connect(ctx, c.DSN("postgres"))
}
