package dataverse

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
	"github.com/dvsync/dvsync/sink"
	"github.com/dvsync/dvsync/sink/sinktest"
)

// conformanceSchema has a table for each key shape: account with its
// single-column alternate key, and a custom table keyed by tenant and code.
// Between them they carry every column type the sink encodes.
const conformanceSchema = `
tables:
  - logical_name: account
    entity_set: accounts
    primary_id: accountid
    primary_name: name
    attributes:
      - {name: name, type: string, max_length: 160}
      - {name: accountnumber, type: string, max_length: 20}
      - {name: creditlimit, type: money}
      - {name: numberofemployees, type: integer}
      - {name: creditonhold, type: boolean}
      - {name: lastonholdtime, type: datetime}
      - {name: address1_latitude, type: double, precision: 5}
      - {name: description, type: memo}
    keys:
      - {name: accountnumber_key, attributes: [accountnumber]}
  - logical_name: new_shipment
    entity_set: new_shipments
    primary_id: new_shipmentid
    primary_name: new_name
    attributes:
      - {name: new_name, type: string}
      - {name: new_tenant, type: integer}
      - {name: new_code, type: string, max_length: 40}
      - {name: new_weight, type: decimal, precision: 4}
      - {name: new_shipped, type: dateonly}
      - {name: new_trackingid, type: uniqueidentifier}
      - {name: new_count, type: bigint}
    keys:
      - {name: tenant_code_key, attributes: [new_tenant, new_code]}
`

// emulatorHarness runs the sink conformance suite against the emulator,
// reading rows back with plain net/http so that a bug shared by the sink
// and odataclient cannot hide itself.
type emulatorHarness struct {
	emu       *testenv.Emulator
	table     string
	entitySet string
	key       func(i int) change.Key
	row       func(i, version int) change.Row
	mode      string
}

func (h *emulatorHarness) NewSink(t *testing.T) sink.Sink {
	c, err := odataclient.New(odataclient.Options{BaseURL: h.emu.URL, Tokens: odataclient.StaticToken(h.emu.Token)})
	if err != nil {
		t.Fatal(err)
	}
	// No EntitySets: the sink must find the entity set in the metadata.
	return New(c, Config{Concurrency: 8, Mode: h.mode, Write: odataclient.WriteOptions{Tag: "dvsync conformance"}})
}

func (h *emulatorHarness) Table() string                 { return h.table }
func (h *emulatorHarness) Key(i int) change.Key          { return h.key(i) }
func (h *emulatorHarness) Row(i, version int) change.Row { return h.row(i, version) }

func (h *emulatorHarness) Read(t *testing.T, table string, key change.Key) (change.Row, bool) {
	t.Helper()
	var parts []string
	for _, c := range key {
		if c.Value.Kind() == change.KindText {
			parts = append(parts, c.Name+"='"+strings.ReplaceAll(c.Value.Str(), "'", "''")+"'")
		} else {
			parts = append(parts, c.Name+"="+c.Value.String())
		}
	}
	u := h.emu.URL + "/api/data/v9.2/" + h.entitySet + "(" + url.PathEscape(strings.Join(parts, ",")) + ")"
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.emu.Token)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, false
	default:
		t.Fatalf("read %s: %s: %s", key, resp.Status, body)
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	var row change.Row
	for name, v := range m {
		if strings.Contains(name, "@") {
			continue
		}
		switch v := v.(type) {
		case nil:
			row = append(row, change.Column{Name: name, Value: change.Null()})
		case string:
			row = append(row, change.Column{Name: name, Value: change.Text(v)})
		case bool:
			row = append(row, change.Column{Name: name, Value: change.Bool(v)})
		case json.Number:
			row = append(row, change.Column{Name: name, Value: change.MustDecimal(v.String())})
		default:
			t.Fatalf("read %s: column %s has unexpected JSON %T", key, name, v)
		}
	}
	return row, true
}

// TestConformance runs the suite once per write mode: bulk messages with
// $batch deletes, $batch only, and single requests.
func TestConformance(t *testing.T) {
	for _, mode := range []string{ModeAuto, ModeBatch, ModeSingle} {
		t.Run(mode, func(t *testing.T) { conformance(t, mode) })
	}
}

func conformance(t *testing.T, mode string) {
	emu := testenv.StartEmulator(t, conformanceSchema)
	base := time.Date(2024, 3, 1, 9, 30, 15, 0, time.UTC)

	t.Run("account", func(t *testing.T) {
		key := func(i int) change.Key {
			// A quote and a space exercise the key's escaping.
			return change.Key{{Name: "accountnumber", Value: change.Text(fmt.Sprintf("O'K %03d", i))}}
		}
		sinktest.Run(t, &emulatorHarness{
			emu: emu, table: "account", entitySet: "accounts", key: key, mode: mode,
			row: func(i, v int) change.Row {
				return append(change.Row(key(i)),
					change.Column{Name: "name", Value: change.Text(fmt.Sprintf("Account %d \"v%d\" ü", i, v))},
					change.Column{Name: "creditlimit", Value: change.MustDecimal(fmt.Sprintf("%d.%02d", 1000+i, 25+v))},
					change.Column{Name: "numberofemployees", Value: change.Int(int64(i*10 + v))},
					change.Column{Name: "creditonhold", Value: change.Bool(v == 1)},
					change.Column{Name: "lastonholdtime", Value: change.Timestamp(base.Add(time.Duration(i)*time.Hour + time.Duration(v)*24*time.Hour).In(time.FixedZone("", 2*3600)))},
					change.Column{Name: "address1_latitude", Value: change.Float(47.5 + float64(v)/4)},
					change.Column{Name: "description", Value: change.Text(fmt.Sprintf("line one\nline two of version %d", v))},
				)
			},
		})
	})

	t.Run("composite", func(t *testing.T) {
		key := func(i int) change.Key {
			return change.Key{
				{Name: "new_tenant", Value: change.Int(int64(i % 3))},
				{Name: "new_code", Value: change.Text(fmt.Sprintf("C-%d", i))},
			}
		}
		sinktest.Run(t, &emulatorHarness{
			emu: emu, table: "new_shipment", entitySet: "new_shipments", key: key, mode: mode,
			row: func(i, v int) change.Row {
				var tracking [16]byte
				tracking[0], tracking[1], tracking[15] = byte(i>>8), byte(i), byte(v+1)
				return append(change.Row(key(i)),
					change.Column{Name: "new_name", Value: change.Text(fmt.Sprintf("shipment %d/%d", i, v))},
					change.Column{Name: "new_weight", Value: change.MustDecimal(fmt.Sprintf("%d.1234E+%d", i+1, v))},
					change.Column{Name: "new_shipped", Value: change.Date(base.AddDate(0, 0, i+v))},
					change.Column{Name: "new_trackingid", Value: change.UUID(tracking)},
					change.Column{Name: "new_count", Value: change.Int(int64(1<<40 + i + v))},
				)
			},
		})
	})
}
