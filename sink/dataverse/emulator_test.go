package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/emulator"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
)

// emulatorSink starts an emulator with the conformance schema and a Sink
// writing to it.
func emulatorSink(t *testing.T, cfg Config) (*testenv.Emulator, *odataclient.Client, *Sink) {
	t.Helper()
	emu := testenv.StartEmulator(t, conformanceSchema)
	c, err := odataclient.New(odataclient.Options{BaseURL: emu.URL, Tokens: odataclient.StaticToken(emu.Token)})
	if err != nil {
		t.Fatal(err)
	}
	s := New(c, cfg)
	t.Cleanup(func() { s.Close(t.Context()) })
	return emu, c, s
}

// setFaults replaces the emulator's injected faults through its admin
// endpoint.
func setFaults(t *testing.T, emu *testenv.Emulator, faults map[string]any) {
	t.Helper()
	b, _ := json.Marshal(faults)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, emu.URL+"/_emulator/faults", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+emu.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT /_emulator/faults: %s", resp.Status)
	}
}

func accountRecord(i int, name string) change.Record {
	number := fmt.Sprintf("E-%05d", i)
	return change.Record{
		Op:    change.OpInsert,
		Table: "account",
		Key:   change.Key{col("accountnumber", change.Text(number))},
		After: change.Row{
			col("accountnumber", change.Text(number)),
			col("name", change.Text(name)),
			col("numberofemployees", change.Int(int64(i))),
		},
	}
}

// accounts returns name by account number for every account row.
func accounts(t *testing.T, c *odataclient.Client) map[string]string {
	t.Helper()
	out := make(map[string]string)
	p, err := c.List(t.Context(), "accounts", odataclient.Query{Select: []string{"accountnumber", "name"}, MaxPageSize: 5000})
	for ; err == nil; p, err = c.Next(t.Context(), p) {
		for _, raw := range p.Rows {
			var row struct{ AccountNumber, Name string }
			if err := json.Unmarshal(raw, &row); err != nil {
				t.Fatal(err)
			}
			if _, dup := out[row.AccountNumber]; dup {
				t.Fatalf("two rows with account number %s", row.AccountNumber)
			}
			out[row.AccountNumber] = row.Name
		}
		if p.NextLink == "" {
			return out
		}
	}
	t.Fatal(err)
	return nil
}

func TestEmulatorBulkBadRowLandsGoodRows(t *testing.T) {
	_, c, s := emulatorSink(t, Config{})
	var batch []change.Record
	for i := range 300 {
		batch = append(batch, accountRecord(i, "first"))
	}
	// Too long for the column's max_length of 160: the service rejects
	// this one row, and with it the whole UpsertMultiple of its chunk.
	batch[150].After = batch[150].After.Set("name", change.Text(string(bytes.Repeat([]byte("x"), 200))))
	err := s.Write(t.Context(), batch)
	var be *change.BatchError
	if !errors.As(err, &be) || len(be.Failed) != 1 {
		t.Fatalf("err = %v, want a BatchError naming one record", err)
	}
	var oe *odataclient.Error
	if !change.IsPermanent(be.Failed[150]) || !errors.As(be.Failed[150], &oe) || oe.Code == "" {
		t.Fatalf("record 150: %v, want permanent with the service's error code", be.Failed[150])
	}
	rows := accounts(t, c)
	if len(rows) != 299 {
		t.Fatalf("%d rows, want 299", len(rows))
	}
	if _, ok := rows["E-00150"]; ok {
		t.Fatal("the bad row was written")
	}
}

func TestEmulatorThrottlingStormLosesNothing(t *testing.T) {
	emu, c, s := emulatorSink(t, Config{})
	var batch []change.Record
	for i := range 1000 {
		batch = append(batch, accountRecord(i, "storm"))
	}
	for _, mode := range []string{ModeAuto, ModeBatch} {
		// The next 6 writes are throttled with Retry-After 1s: more than
		// the 4 requests in flight that the emulator's x-ms-dop-hint
		// allows, so the sink backs off, comes back with half as many,
		// is throttled again, and still writes every row once.
		setFaults(t, emu, map[string]any{"throttle_rate": 1, "count": 6, "match": "batch"})
		if mode == ModeAuto {
			setFaults(t, emu, map[string]any{"throttle_rate": 1, "count": 6, "match": "UpsertMultiple"})
		}
		s.mode = mode
		if err := s.Write(t.Context(), batch); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
	}
	rows := accounts(t, c)
	if len(rows) != len(batch) {
		t.Fatalf("%d rows, want %d", len(rows), len(batch))
	}
	st := s.Stats()
	if st.Throttled == 0 || st.Limit >= MaxConcurrency {
		t.Fatalf("stats %+v: want throttling seen and the limit cut", st)
	}
}

func TestEmulatorFailuresRetried(t *testing.T) {
	emu, c, s := emulatorSink(t, Config{Mode: ModeBatch, BatchSize: 50})
	var batch []change.Record
	for i := range 200 {
		batch = append(batch, accountRecord(i, "v1"))
	}
	// One 503 on a $batch, then a dropped connection: both resent.
	setFaults(t, emu, map[string]any{"error_rate": 1, "count": 1, "match": "$batch"})
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	setFaults(t, emu, map[string]any{"drop_rate": 1, "count": 2, "match": "$batch"})
	for i := range batch {
		batch[i].After = batch[i].After.Set("name", change.Text("v2"))
	}
	if err := s.Write(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	rows := accounts(t, c)
	if len(rows) != len(batch) {
		t.Fatalf("%d rows, want %d", len(rows), len(batch))
	}
	for k, name := range rows {
		if name != "v2" {
			t.Fatalf("row %s has name %q, want v2", k, name)
		}
	}
	if st := s.Stats(); st.Retries != 3 {
		t.Fatalf("stats %+v, want 3 retries", st)
	}
}

// countingTokens records every distinct token its source hands out.
type countingTokens struct {
	src   odataclient.TokenSource
	mu    sync.Mutex
	seen  map[string]bool
	calls int
}

func (c *countingTokens) Token(ctx context.Context) (string, error) {
	tok, err := c.src.Token(ctx)
	if err == nil {
		c.mu.Lock()
		c.seen[tok] = true
		c.calls++
		c.mu.Unlock()
	}
	return tok, err
}

func (c *countingTokens) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// TestEmulatorTokenRefreshDuringLongRun writes through tokens from the
// emulator's client credentials endpoint that live 3 seconds, refreshed 2
// seconds before expiry, until the source has renewed them twice. The sink
// does not retry, so one request sent with an expired token would fail its
// Write; and each token must serve many requests, or it was not cached.
func TestEmulatorTokenRefreshDuringLongRun(t *testing.T) {
	schema, err := emulator.ParseSchema([]byte(conformanceSchema), "schema.yaml")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := emulator.New(schema, emulator.Options{
		Token:         "unused-static-token",
		Applications:  []emulator.Application{{ClientID: "dvsync-app", ClientSecret: "app-secret"}},
		TokenLifetime: 4 * time.Second, // expires_in: 3
	})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv)
	t.Cleanup(api.Close)

	src, err := odataclient.NewClientCredentials(odataclient.ClientCredentials{
		TokenURL:      api.URL + "/tenant-1/oauth2/v2.0/token",
		ClientID:      "dvsync-app",
		ClientSecret:  "app-secret",
		Scope:         api.URL + "/.default",
		RefreshBefore: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &countingTokens{src: src, seen: map[string]bool{}}
	c, err := odataclient.New(odataclient.Options{BaseURL: api.URL, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	s := New(c, Config{Retries: -1, BatchSize: 25})
	t.Cleanup(func() { s.Close(t.Context()) })

	deadline := time.Now().Add(60 * time.Second)
	written := 0
	for tokens.distinct() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d tokens in 60s", tokens.distinct())
		}
		var batch []change.Record
		for range 50 {
			batch = append(batch, accountRecord(written, "refresh"))
			written++
		}
		if err := s.Write(t.Context(), batch); err != nil {
			t.Fatalf("after %d rows and %d tokens: %v", written, tokens.distinct(), err)
		}
	}
	if n := len(accounts(t, c)); n != written {
		t.Fatalf("%d rows, want %d", n, written)
	}
	tokens.mu.Lock()
	defer tokens.mu.Unlock()
	if tokens.calls < 10*len(tokens.seen) {
		t.Fatalf("%d requests used %d tokens: not cached", tokens.calls, len(tokens.seen))
	}
}

// TestEmulatorWritesByPrimaryID covers mappings that derive the row's id
// (uuid5 or an id column): rows are created with that id, updated and
// deleted through it, in every write mode.
func TestEmulatorWritesByPrimaryID(t *testing.T) {
	for _, mode := range []string{ModeAuto, ModeBatch, ModeSingle} {
		t.Run(mode, func(t *testing.T) {
			_, c, s := emulatorSink(t, Config{Mode: mode})
			id, err := change.ParseUUID("0b9c2f7e-6f1d-5a3e-9d4c-1a2b3c4d5e6f")
			if err != nil {
				t.Fatal(err)
			}
			rec := func(op change.Op, name string) change.Record {
				r := change.Record{Op: op, Table: "account", Key: change.Key{{Name: "accountid", Value: id}}}
				if op != change.OpDelete {
					r.After = change.Row{{Name: "name", Value: change.Text(name)}}
				}
				return r
			}
			key := odataclient.Key{ID: id.String()}
			for _, name := range []string{"first", "second"} {
				if err := s.Write(t.Context(), []change.Record{rec(change.OpInsert, name)}); err != nil {
					t.Fatal(err)
				}
				raw, _, err := c.Retrieve(t.Context(), "accounts", key, odataclient.Query{Select: []string{"name"}})
				if err != nil {
					t.Fatalf("row %s not found by id after writing %q: %v", id, name, err)
				}
				if !bytes.Contains(raw, []byte(`"name":"`+name+`"`)) {
					t.Fatalf("row after writing %q: %s", name, raw)
				}
			}
			if err := s.Write(t.Context(), []change.Record{rec(change.OpDelete, "")}); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Retrieve(t.Context(), "accounts", key, odataclient.Query{}); !odataclient.IsNotFound(err) {
				t.Fatalf("after delete: %v, want not found", err)
			}
		})
	}
}
