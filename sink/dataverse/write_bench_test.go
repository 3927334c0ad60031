package dataverse

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/odataclient"
)

// BenchmarkWriteUpserts measures the sink's path for a backfill: Writes
// of 500 new rows as the engine hands them over, sent as UpsertMultiple
// requests to a loopback server that reads each body and answers 204.
// One op is one row, so allocs/op is allocations per row; the server's
// work is in the figures too, the same for every version of the sink.
func BenchmarkWriteUpserts(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := odataclient.New(odataclient.Options{BaseURL: srv.URL, Tokens: odataclient.StaticToken("t")})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseIdleConnections()
	s := New(c, Config{EntitySets: map[string]string{"account": "accounts"}})
	defer s.Close(context.Background())

	const size = 500
	batch := make([]change.Record, size)
	for i := range batch {
		id := change.Text(strconv.Itoa(1_000_000 + i))
		batch[i] = change.Record{
			Op: change.OpRead, Table: "account",
			Key: change.Key{{Name: "accountnumber", Value: id}},
			After: change.Row{
				{Name: "accountnumber", Value: id},
				{Name: "name", Value: change.Text("Customer " + strconv.Itoa(i))},
				{Name: "numberofemployees", Value: change.Int(int64(i % 5000))},
				{Name: "creditlimit", Value: change.MustDecimal(strconv.Itoa(i) + ".25")},
			},
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	began := cpuTime(b)
	for n := 0; n < b.N; n += size {
		if err := s.Write(ctx, batch[:min(size, b.N-n)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-began)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time the process has used, the machine's other load
// left out.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
