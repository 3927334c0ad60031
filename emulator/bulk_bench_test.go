package emulator_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/dvsync/dvsync/emulator"
)

// benchSchema is the account table dvbench writes: four columns and the
// alternate key its mapping upserts by.
const benchSchema = `
tables:
  - logical_name: account
    entity_set: accounts
    primary_id: accountid
    primary_name: name
    attributes:
      - {name: name, type: string, max_length: 160}
      - {name: accountnumber, type: string, max_length: 20}
      - {name: numberofemployees, type: integer}
      - {name: creditlimit, type: money}
    keys:
      - {name: accountnumber_key, attributes: [accountnumber]}
`

// upsertBody renders an UpsertMultiple body for accounts first …
// first+n-1, addressed by alternate key, as the Dataverse sink sends them.
func upsertBody(first, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"Targets":[`)
	for i := first; i < first+n; i++ {
		if i > first {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"@odata.type":"Microsoft.Dynamics.CRM.account","@odata.id":"accounts(accountnumber='%d')","accountnumber":"%d","name":"Customer %d","numberofemployees":%d,"creditlimit":%d.25}`,
			i, i, i, i%5000, i%100000)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// discardWriter is a ResponseWriter that keeps only the status, so that the
// benchmark measures the handler and not a recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkUpsertMultiple measures the handler's cost per upserted row:
// requests of 100 rows, each creating new rows by alternate key (the
// backfill's and streaming's write), or updating rows that exist.
func BenchmarkUpsertMultiple(b *testing.B) {
	const batch = 100
	for _, mode := range []string{"create", "update"} {
		b.Run(mode, func(b *testing.B) {
			schema, err := emulator.ParseSchema([]byte(benchSchema), "schema.yaml")
			if err != nil {
				b.Fatal(err)
			}
			srv, err := emulator.New(schema, emulator.Options{Token: testToken})
			if err != nil {
				b.Fatal(err)
			}
			post := func(body []byte) {
				req := httptest.NewRequest(http.MethodPost,
					"http://127.0.0.1/api/data/v9.2/accounts/Microsoft.Dynamics.CRM.UpsertMultiple", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testToken)
				req.Header.Set("Content-Type", "application/json")
				w := &discardWriter{h: http.Header{}}
				srv.ServeHTTP(w, req)
				if w.status != http.StatusNoContent {
					b.Fatalf("status %d", w.status)
				}
			}
			// Bodies are built before the clock starts: a create run
			// needs one per iteration, an update run first creates the
			// rows it then rewrites.
			n := b.N
			if mode == "update" {
				n = min(b.N, 1000)
			}
			bodies := make([][]byte, n)
			for i := range bodies {
				bodies[i] = upsertBody(1+i*batch, batch)
			}
			if mode == "update" {
				for _, body := range bodies {
					post(body)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			for i := range b.N {
				post(bodies[i%len(bodies)])
			}
			rows := float64(b.N * batch)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/rows, "ns/row")
			// The process's CPU, garbage collection included: on a
			// shared machine the elapsed time says more about the
			// neighbours.
			if cpu >= 0 {
				b.ReportMetric(float64((processCPU()-cpu).Nanoseconds())/rows, "cpu-ns/row")
			}
		})
	}
}
