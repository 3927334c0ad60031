package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/sinktest"
)

// harness runs the conformance suite against a table of a test database,
// reading rows back over a connection of its own.
type harness struct {
	d     *db
	table string
	key   func(i int) change.Key
	row   func(i, version int) change.Row
}

func (h *harness) NewSink(t *testing.T) sink.Sink {
	s, err := New(Config{DSN: h.d.DSN})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) Read(t *testing.T, table string, key change.Key) (change.Row, bool) {
	return h.d.read(t, table, key)
}

func (h *harness) Table() string                 { return h.table }
func (h *harness) Key(i int) change.Key          { return h.key(i) }
func (h *harness) Row(i, version int) change.Row { return h.row(i, version) }

func TestConformance(t *testing.T) {
	d := newDB(t)
	d.Exec(t,
		`CREATE SCHEMA "Sales"`,
		`CREATE TABLE "Sales"."Order Lines" (
			id bigint PRIMARY KEY,
			"Name" text NOT NULL,
			amount numeric(20,4),
			qty int,
			ratio double precision,
			paid boolean,
			placed timestamptz,
			due date,
			ref uuid,
			blob bytea,
			doc jsonb)`,
		`CREATE TABLE public.shipments (
			tenant int,
			code text,
			weight numeric,
			note text,
			PRIMARY KEY (tenant, code))`)
	base := time.Date(2024, 3, 1, 9, 30, 15, 123456000, time.UTC)

	t.Run("single", func(t *testing.T) {
		key := func(i int) change.Key { return intKey("id", i) }
		sinktest.Run(t, &harness{d: d, table: "Sales.Order Lines", key: key,
			row: func(i, v int) change.Row {
				var ref [16]byte
				ref[0], ref[1], ref[15] = byte(i>>8), byte(i), byte(v+1)
				return append(change.Row(key(i)),
					col("Name", change.Text(fmt.Sprintf("line %d \"v%d\" ü'", i, v))),
					col("amount", change.MustDecimal(fmt.Sprintf("1234567890123456.%04d", i*10+v))),
					col("qty", change.Int(int64(i*10+v))),
					col("ratio", change.Float(0.1+float64(v))),
					col("paid", change.Bool(v == 1)),
					col("placed", change.Timestamp(base.Add(time.Duration(i)*time.Hour+time.Duration(v)*time.Minute).In(time.FixedZone("", 2*3600)))),
					col("due", change.Date(base.AddDate(0, 0, i+v))),
					col("ref", change.UUID(ref)),
					col("blob", change.Bytes([]byte{0, byte(i), byte(v), 0xff})),
					col("doc", change.JSON([]byte(fmt.Sprintf(`{"i":%d,"v":%d}`, i, v)))),
				)
			}})
	})

	t.Run("composite", func(t *testing.T) {
		key := func(i int) change.Key {
			return change.Key{
				{Name: "tenant", Value: change.Int(int64(i % 3))},
				{Name: "code", Value: change.Text(fmt.Sprintf("C-%d", i))},
			}
		}
		sinktest.Run(t, &harness{d: d, table: "shipments", key: key,
			row: func(i, v int) change.Row {
				return append(change.Row(key(i)),
					col("weight", change.MustDecimal(fmt.Sprintf("%d.1234E+%d", i+1, v))),
					col("note", change.Text(fmt.Sprintf("note %d/%d", i, v))),
				)
			}})
	})
}

// BenchmarkWrite upserts batches of 500 rows of a few columns, the
// engine's usual batch size, into one table: rows/s is the figure.
func BenchmarkWrite(b *testing.B) {
	dsn := testenv.NewDatabase(b, testenv.StartPostgres(b))
	s, err := New(Config{DSN: dsn})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close(context.Background()) })
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `CREATE TABLE bench (id bigint PRIMARY KEY, name text, amount numeric, at timestamptz)`); err != nil {
		b.Fatal(err)
	}
	const size = 500
	batch := make([]change.Record, size)
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for n := range b.N {
		for i := range batch {
			id := int64(n%20*size + i)
			batch[i] = upsert("bench", change.Key{{Name: "id", Value: change.Int(id)}},
				col("name", change.Text(fmt.Sprintf("row %d", id))),
				col("amount", change.MustDecimal(fmt.Sprintf("%d.25", n))),
				col("at", change.Timestamp(at.Add(time.Duration(n)*time.Second))))
		}
		if err := s.Write(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "rows/s")
}
