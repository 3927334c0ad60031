package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/internal/testenv"
)

// BenchmarkSnapshotRead reads a 200,000-row table through the snapshot
// source alone, acking each page, and reports rows/s.
func BenchmarkSnapshotRead(b *testing.B) {
	const rows = 200_000
	dsn := testenv.NewDatabase(b, testenv.StartPostgres(b))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{`CREATE TABLE public.customers (
		id bigint PRIMARY KEY, name text NOT NULL, email text, phone text,
		credit_limit numeric(12,2), employees int)`,
		`INSERT INTO public.customers
		 SELECT g, 'Customer ' || g, 'c' || g || '@example.com', '+1 555 ' || g, (g % 100000) * 1.25, g % 5000
		   FROM generate_series(1, 200000) g`,
		`VACUUM ANALYZE public.customers`} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	began := time.Now()
	for range b.N {
		s, err := NewSnapshot(Config{DSN: dsn, Tables: []string{"public.customers"}}, SnapshotOptions{DryRun: true}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Open(ctx, nil); err != nil {
			b.Fatal(err)
		}
		n := 0
		for n < rows {
			recs, err := s.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(recs)
			if err := s.Ack(ctx, recs[len(recs)-1].Position); err != nil {
				b.Fatal(err)
			}
		}
		if err := s.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows*b.N)/time.Since(began).Seconds(), "rows/s")
}
