package benchenv

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/odataclient"
)

// Schema is the emulator's schema: the account table the benchmark
// table maps to, with the alternate key the mapping upserts by.
const Schema = `
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

// EntitySet is the account table's entity set.
const EntitySet = "accounts"

// childEnv names the environment variable that turns the benchmark
// program into the emulator's child process; its value is a childSpec.
const childEnv = "DVBENCH_EMULATOR"

// childSpec is what the parent tells the child.
type childSpec struct {
	Token  string          `json:"token"`
	Limits emulator.Limits `json:"limits"`
	// Schema is the schema YAML; empty means Schema.
	Schema string `json:"schema,omitempty"`
	// CPUProfile, when not empty, is the file the child writes its CPU
	// profile to, from start to Stop.
	CPUProfile string `json:"cpuprofile,omitempty"`
}

// EmulatorCPUProfile is a file name prefix: when it is not empty, every
// emulator started afterwards writes a CPU profile of its whole life to it
// followed by "." and its sequence number (1, 2, …), since a run starts
// several. Set it before the first start; it is not safe to change while
// emulators start.
var EmulatorCPUProfile string

// emulatorSeq numbers the emulators started, for their profiles' names.
var emulatorSeq atomic.Int64

// Emulator is the Dataverse emulator serving Schema in a child process
// (this program run again), so that the memory and CPU time measured in
// the benchmark process are dvsync's alone and not the emulator's.
type Emulator struct {
	// URL is the server's root; Token the bearer token it accepts.
	URL, Token string

	cmd   *exec.Cmd
	stdin io.Closer
}

// ServeEmulatorChild serves the emulator and returns true when this
// process was started as an Emulator's child; it returns false at once
// otherwise. Programs call it first thing in main and exit when it
// returns true. The child exits when its stdin closes, which the parent
// does in Stop, and which the kernel does when the parent dies.
func ServeEmulatorChild() (bool, error) {
	v := os.Getenv(childEnv)
	if v == "" {
		return false, nil
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(v), &spec); err != nil {
		return true, fmt.Errorf("emulator child: %w", err)
	}
	if spec.Schema == "" {
		spec.Schema = Schema
	}
	schema, err := emulator.ParseSchema([]byte(spec.Schema), "schema.yaml")
	if err != nil {
		return true, err
	}
	srv, err := emulator.New(schema, emulator.Options{Token: spec.Token, Limits: spec.Limits})
	if err != nil {
		return true, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return true, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }() // ends with ErrServerClosed at Close
	if spec.CPUProfile != "" {
		f, err := os.Create(spec.CPUProfile)
		if err != nil {
			return true, fmt.Errorf("emulator child: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			_ = f.Close()
			return true, fmt.Errorf("emulator child: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	fmt.Printf("http://%s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return true, hs.Close()
}

// StartEmulator starts a fresh, empty emulator serving Schema with the
// given service protection limits (the zero value: none).
func StartEmulator(limits emulator.Limits) (*Emulator, error) {
	return startEmulator(childSpec{Limits: limits})
}

// StartEmulatorWebhook starts a fresh, empty emulator serving Schema with
// change tracking on for accounts and, when url is not empty, a webhook
// posting every account create to url with key as its webhook key.
func StartEmulatorWebhook(url, key string) (*Emulator, error) {
	schema := strings.Replace(Schema, "    primary_name: name\n", "    primary_name: name\n    change_tracking: true\n", 1)
	if url != "" {
		schema += fmt.Sprintf(`
webhooks:
  - name: dvbench
    url: %q
    auth: {type: webhookkey, value: %q}
    steps:
      - {message: Create, table: account}
`, url, key)
	}
	return startEmulator(childSpec{Schema: schema})
}

func startEmulator(spec childSpec) (*Emulator, error) {
	token := randomToken()
	spec.Token = token
	if n := emulatorSeq.Add(1); EmulatorCPUProfile != "" {
		spec.CPUProfile = fmt.Sprintf("%s.%d", EmulatorCPUProfile, n)
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("benchenv: emulator: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(specJSON))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchenv: emulator: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("benchenv: emulator did not start: %w", err)
	}
	return &Emulator{URL: strings.TrimSpace(line), Token: token, cmd: cmd, stdin: stdin}, nil
}

// Client returns a new Web API client for the emulator.
func (e *Emulator) Client() (*odataclient.Client, error) {
	return odataclient.New(odataclient.Options{BaseURL: e.URL, Tokens: odataclient.StaticToken(e.Token)})
}

// CPU is the CPU time the emulator has used so far.
func (e *Emulator) CPU() time.Duration {
	return cpuTime(fmt.Sprintf("/proc/%d/stat", e.cmd.Process.Pid))
}

// PeakRSS is the emulator's peak resident memory in bytes; 0 if unknown.
func (e *Emulator) PeakRSS() int64 {
	return peakRSS(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
}

// Stop ends the child and waits for it.
func (e *Emulator) Stop() {
	_ = e.stdin.Close()
	done := make(chan struct{})
	go func() {
		_ = e.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
	}
}

// PostUpsertMultiple sends one prepared UpsertMultiple body for
// EntitySet, straight over HTTP: the emulator's own ingest rate, without
// dvsync's encoding, batching or limiter.
func (e *Emulator) PostUpsertMultiple(ctx context.Context, client *http.Client, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		e.URL+"/api/data/v9.2/"+EntitySet+"/Microsoft.Dynamics.CRM.UpsertMultiple", strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		return errors.New("UpsertMultiple: " + resp.Status + ": " + string(msg))
	}
	return nil
}

// UpsertMultipleBody renders the UpsertMultiple request for rows with ids
// first … first+n-1 and the values Postgres.Insert gives them, as the
// Dataverse sink would send them.
func UpsertMultipleBody(first int64, n int) []byte {
	var b strings.Builder
	b.WriteString(`{"Targets":[`)
	for i := first; i < first+int64(n); i++ {
		if i > first {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"@odata.type":"Microsoft.Dynamics.CRM.account","@odata.id":"accounts(accountnumber='%d')","accountnumber":"%d","name":"Customer %d","numberofemployees":%d,"creditlimit":%d.25}`,
			i, i, i, i%5000, i%100000)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Ingest creates accounts first … first+rows-1 with the values
// Postgres.Insert gives rows, through UpsertMultiple requests of batch
// rows built before the clock starts, workers at a time, straight over
// HTTP: the emulator's own ingest rate, without dvsync's encoding,
// batching or limiter. It returns how long the requests took.
func (e *Emulator) Ingest(ctx context.Context, first int64, rows, batch, workers int) (time.Duration, error) {
	bodies := make(chan []byte, rows/batch+1)
	for i := first; i < first+int64(rows); i += int64(batch) {
		bodies <- UpsertMultipleBody(i, min(batch, int(first+int64(rows)-i)))
	}
	close(bodies)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs error
	)
	began := time.Now()
	for range workers {
		wg.Go(func() {
			for b := range bodies {
				if err := e.PostUpsertMultiple(ctx, client, b); err != nil {
					mu.Lock()
					errs = errors.Join(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(began), errs
}
