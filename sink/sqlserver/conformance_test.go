package sqlserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/sinktest"
)

// harness runs the conformance suite against the scripted server over
// TDS, reading rows back from the store directly.
type harness struct {
	st    *store
	dsn   string
	table string
	key   func(i int) change.Key
	row   func(i, version int) change.Row
}

func (h *harness) NewSink(t *testing.T) sink.Sink {
	s, err := New(Config{DSN: h.dsn})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (h *harness) Read(t *testing.T, table string, key change.Key) (change.Row, bool) {
	return h.st.read(table, key)
}

func (h *harness) Table() string                 { return h.table }
func (h *harness) Key(i int) change.Key          { return h.key(i) }
func (h *harness) Row(i, version int) change.Row { return h.row(i, version) }

func col(name string, v change.Value) change.Column { return change.Column{Name: name, Value: v} }

// orderLines is a table with every common type.
var orderLines = []memCol{
	{"id", "bigint", 8, 19, 0},
	{"Name", "nvarchar", 200, 0, 0},
	{"amount", "decimal", 17, 38, 4},
	{"qty", "int", 4, 10, 0},
	{"ratio", "float", 8, 53, 0},
	{"paid", "bit", 1, 1, 0},
	{"placed", "datetimeoffset", 10, 34, 7},
	{"stamp", "datetime2", 8, 27, 7},
	{"due", "date", 3, 10, 0},
	{"ref", "uniqueidentifier", 16, 0, 0},
	{"blob", "varbinary", -1, 0, 0},
	{"doc", "nvarchar", -1, 0, 0},
}

func TestConformance(t *testing.T) {
	st := newStore()
	st.addTable("Sales.Order Lines", orderLines, "id", "Name")
	st.addTable("shipments", []memCol{{"tenant", "int", 4, 10, 0}, {"code", "nvarchar", 40, 0, 0},
		{"weight", "decimal", 9, 18, 4}, {"note", "nvarchar", -1, 0, 0}}, "tenant", "code")
	dsn := startStore(t, st)
	base := time.Date(2024, 3, 1, 9, 30, 15, 123456700, time.UTC)

	t.Run("single", func(t *testing.T) {
		key := func(i int) change.Key { return change.Key{{Name: "id", Value: change.Int(int64(i))}} }
		sinktest.Run(t, &harness{st: st, dsn: dsn, table: "Sales.Order Lines", key: key,
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
					col("stamp", change.Timestamp(base.Add(time.Duration(v)*time.Second))),
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
		sinktest.Run(t, &harness{st: st, dsn: dsn, table: "shipments", key: key,
			row: func(i, v int) change.Row {
				return append(change.Row(key(i)),
					col("weight", change.MustDecimal(fmt.Sprintf("%d.1234E+%d", i+1, v))),
					col("note", change.Text(fmt.Sprintf("note %d/%d", i, v))),
				)
			}})
	})
}
