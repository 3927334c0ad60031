// Command emulator measures the Dataverse emulator's write throughput:
// UpsertMultiple over real HTTP on loopback, first creating rows by
// alternate key, then updating the same rows.
//
//	go run ./bench/emulator [-rows 200000] [-batch 1000] [-workers 4]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/dvsync/dvsync/emulator"
)

const schema = `
tables:
  - logical_name: dvs_item
    entity_set: dvs_items
    primary_name: dvs_name
    attributes:
      - {name: dvs_name, type: string, max_length: 100}
      - {name: dvs_code, type: string, max_length: 20}
      - {name: dvs_qty, type: integer}
      - {name: dvs_price, type: money}
      - {name: dvs_active, type: boolean}
    keys:
      - {name: dvs_code_key, attributes: [dvs_code]}
`

const token = "bench-token"

func main() {
	rows := flag.Int("rows", 200000, "rows to upsert per pass")
	batch := flag.Int("batch", 1000, "rows per UpsertMultiple request")
	workers := flag.Int("workers", 4, "concurrent requests")
	profile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/emulator:", err)
			os.Exit(1)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if err := run(*rows, *batch, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "bench/emulator:", err)
		os.Exit(1)
	}
}

func run(rows, batch, workers int) error {
	s, err := emulator.ParseSchema([]byte(schema), "bench.yaml")
	if err != nil {
		return err
	}
	srv, err := emulator.New(s, emulator.Options{Token: token})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer func() { _ = hs.Shutdown(context.Background()) }()
	url := "http://" + ln.Addr().String() + "/api/data/v9.2/dvs_items/Microsoft.Dynamics.CRM.UpsertMultiple"

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	fmt.Printf("emulator UpsertMultiple: %d rows per pass, %d rows per request, %d workers (shared machine: figures vary)\n", rows, batch, workers)
	for _, pass := range []string{"create", "update"} {
		// Bodies are built before the clock starts, so that the figures
		// are the emulator's and the HTTP stack's only.
		var all [][]byte
		for start := 0; start < rows; start += batch {
			all = append(all, body(start, min(batch, rows-start), pass))
		}
		bodies := make(chan []byte, len(all))
		for _, b := range all {
			bodies <- b
		}
		close(bodies)
		began, cpuBefore := time.Now(), cpuTime()
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range bodies {
					if err := post(client, url, b); err != nil {
						errs <- err
						for range bodies {
						}
						return
					}
				}
			}()
		}
		wg.Wait()
		elapsed, cpu := time.Since(began), cpuTime()-cpuBefore
		select {
		case err := <-errs:
			return err
		default:
		}
		fmt.Printf("  %-6s %8d rows in %8.3fs = %9.0f rows/s; %6.2f CPU-s = %9.0f rows per CPU-second (HTTP client included)\n",
			pass, rows, elapsed.Seconds(), float64(rows)/elapsed.Seconds(), cpu.Seconds(), float64(rows)/cpu.Seconds())
	}
	return nil
}

// body renders one UpsertMultiple request.
func body(start, n int, pass string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"Targets":[`)
	for i := start; i < start+n; i++ {
		if i > start {
			b.WriteByte(',')
		}
		code := "C" + strconv.Itoa(i)
		fmt.Fprintf(&b, `{"@odata.type":"Microsoft.Dynamics.CRM.dvs_item","@odata.id":"dvs_items(dvs_code='%s')","dvs_name":"item %d %s","dvs_qty":%d,"dvs_price":%d.25,"dvs_active":true}`,
			code, i, pass, i%1000, i%500)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// cpuTime is the CPU time this process has used, user and system. On a
// busy shared machine wall-clock rates vary with the load; rows per
// CPU-second do much less.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func post(client *http.Client, url string, body []byte) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		return errors.New(resp.Status + ": " + string(msg))
	}
	return nil
}
