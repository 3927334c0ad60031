// Package e2e runs both pipelines of a bidirectional mapping against a
// real PostgreSQL and the Dataverse emulator: pipeline A reads the table's
// WAL and writes to Dataverse, pipeline B reads Dataverse's change
// tracking and writes to the table, and one engine.Sync joins them.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/conflict"
	"github.com/dvsync/dvsync/engine"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient" //nolint:depguard // an end-to-end test wires adapters as cmd does
	"github.com/dvsync/dvsync/sink"
	dvsink "github.com/dvsync/dvsync/sink/dataverse"    //nolint:depguard // an end-to-end test wires adapters as cmd does
	pgsink "github.com/dvsync/dvsync/sink/postgres"     //nolint:depguard // an end-to-end test wires adapters as cmd does
	pgsource "github.com/dvsync/dvsync/source/postgres" //nolint:depguard // an end-to-end test wires adapters as cmd does
	"github.com/dvsync/dvsync/state"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const schema = `
tables:
  - logical_name: new_customer
    entity_set: new_customers
    primary_id: new_customerid
    primary_name: new_name
    change_tracking: true
    attributes:
      - {name: new_name, type: string}
      - {name: new_city, type: string}
      - {name: new_number, type: integer}
    keys:
      - {name: number_key, attributes: [new_number]}
`

// columns are the source columns the mapping syncs both ways.
var columns = []string{"id", "name", "city"}

// world is one PostgreSQL database and one emulator, with what the two
// pipelines need, which start and stop as a pair (a restart of dvsync).
type world struct {
	t      *testing.T
	db     *testenv.DB
	emu    *testenv.Emulator
	client *odataclient.Client
	store  *state.Bolt
	rules  conflict.Rules
	origin string
	slot   string
	reg    *prometheus.Registry
	sync   *engine.Sync

	// Successful sink writes, by record.
	dvWrites, pgWrites atomic.Int64

	// run is the running pair; nil when stopped.
	run *running
	// ids maps Dataverse primary ids to row numbers, for deletions.
	ids *idMap
}

type running struct {
	cancel context.CancelFunc
	done   chan error
	a, b   *engine.Pipeline
	bsrc   *deltaSource
}

func newWorld(t *testing.T, rules conflict.Rules) *world {
	t.Helper()
	w := &world{t: t, rules: rules, reg: prometheus.NewRegistry(), ids: &idMap{m: map[string]int64{}}}
	w.db = testenv.NewDB(t)
	w.db.Exec(t, `CREATE TABLE public.customers (id int PRIMARY KEY, name text, city text, updated_at timestamptz)`)
	var name string
	if err := w.db.Conn.QueryRow(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	w.slot, w.origin = name, "o"+name
	t.Cleanup(func() {
		// The sink's session releases the origin as its backend exits,
		// which is soon after the sink closes but not at once.
		w.eventually("the replication origin dropped", func() bool {
			_, err := w.db.Conn.Exec(context.Background(), "SELECT pg_replication_origin_drop('"+w.origin+"') WHERE pg_replication_origin_oid('"+w.origin+"') IS NOT NULL")
			return err == nil
		})
	})
	w.emu = testenv.StartEmulator(t, schema)
	c, err := odataclient.New(odataclient.Options{BaseURL: w.emu.URL, Tokens: odataclient.StaticToken(w.emu.Token)})
	if err != nil {
		t.Fatal(err)
	}
	w.client = c
	st, err := state.OpenBolt(t.TempDir() + "/state.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w.store = st
	w.newSync()
	return w
}

// newSync builds the mapping's Sync afresh, as a restarted process does.
func (w *world) newSync() {
	s, err := engine.NewSync(engine.SyncConfig{
		Mapping: "customers", Rules: w.rules, Columns: columns, TimestampColumn: "updated_at",
		Reverse: func(rec *change.Record) (change.Record, bool, error) { return toSource(rec, w.ids) },
		Store:   w.store, Metrics: w.reg, Logger: testLogger(w.t),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.sync = s
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// start runs both pipelines until stop.
func (w *world) start() {
	t := w.t
	t.Helper()
	log := testLogger(t)
	src, err := pgsource.New(pgsource.Config{
		DSN: w.db.DSN, Slot: w.slot, Publication: w.slot, Tables: []string{"public.customers"},
		StatusInterval: 50 * time.Millisecond, SkipOrigin: w.origin,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := pgsink.New(pgsink.Config{DSN: w.db.DSN, Origin: w.origin})
	if err != nil {
		t.Fatal(err)
	}
	cfg := func(name string, side conflict.Side) engine.Config {
		return engine.Config{
			Name: name, Workers: 2, BatchWait: 5 * time.Millisecond, AckInterval: 20 * time.Millisecond,
			RetryBackoff: engine.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
			MaxRetries:   20, Logger: log, Resolver: w.sync.Resolver(side),
		}
	}
	a, err := engine.New(cfg("a", conflict.Source), src, engine.MapperFunc(toDataverse),
		&countingSink{Sink: dvsink.New(w.client, dvsink.Config{}), n: &w.dvWrites}, w.store)
	if err != nil {
		t.Fatal(err)
	}
	bsrc := &deltaSource{client: w.client, ids: w.ids}
	b, err := engine.New(cfg("b", conflict.Dataverse), bsrc,
		engine.MapperFunc(func(rec *change.Record) (change.Record, bool, error) { return toSource(rec, w.ids) }),
		&countingSink{Sink: dst, n: &w.pgWrites}, w.store)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 2), a: a, b: b, bsrc: bsrc}
	go func() { r.done <- a.Run(ctx) }()
	go func() { r.done <- b.Run(ctx) }()
	w.run = r
	t.Cleanup(w.stop)
	w.eventually("both pipelines running", func() bool { return a.Ready() == nil && b.Ready() == nil })
}

// stop stops both pipelines and waits for them; a no-op when stopped.
func (w *world) stop() {
	if w.run == nil {
		return
	}
	w.run.cancel()
	for range 2 {
		if err := <-w.run.done; err != nil {
			w.t.Errorf("pipeline: %v", err)
		}
	}
	w.run = nil
}

// restart stops both pipelines and starts them again with a fresh Sync,
// as a restarted dvsync would.
func (w *world) restart() {
	w.stop()
	w.newSync()
	w.start()
}

// eventually polls cond until it holds, failing the test after a deadline.
func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// quiet waits until both pipelines have caught up with everything there
// is to read: pipeline A has written a marker row inserted after the
// changes under test (so it read past them), pipeline B has completed
// two more delta rounds after that, and neither holds records in flight.
// Any echo would have been written by then.
var markerID atomic.Int64

func (w *world) quiet() {
	w.t.Helper()
	id := 1000 + markerID.Add(1)
	w.exec(fmt.Sprintf("INSERT INTO public.customers (id, name) VALUES (%d, 'marker')", id))
	w.eventually("the marker row in Dataverse", func() bool {
		_, ok := w.dvRow(id)
		return ok
	})
	w.dvWrites.Add(-1) // the marker's own write
	rounds := w.run.bsrc.rounds.Load()
	w.eventually("two delta rounds", func() bool { return w.run.bsrc.rounds.Load() >= rounds+2 })
	w.eventually("nothing in flight", func() bool {
		return w.run.a.Stats().InFlight == 0 && w.run.b.Stats().InFlight == 0
	})
}

func (w *world) exec(sql string) {
	w.t.Helper()
	w.db.Exec(w.t, sql)
}

// pgRow reads row id of the table: name, city, and whether it exists.
func (w *world) pgRow(id int) (name, city string, ok bool) {
	var n, c *string
	err := w.db.Conn.QueryRow(context.Background(), "SELECT name, city FROM public.customers WHERE id = $1", id).Scan(&n, &c)
	if err != nil {
		return "", "", false
	}
	return deref(n), deref(c), true
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// dvRow reads row new_number=id from the emulator.
func (w *world) dvRow(id int64) (map[string]any, bool) {
	body, _, err := w.client.Retrieve(context.Background(), "new_customers",
		dvKey(id), odataclient.Query{})
	if err != nil {
		return nil, false
	}
	var row map[string]any
	if err := json.Unmarshal(body, &row); err != nil {
		w.t.Fatal(err)
	}
	return row, true
}

// dvEdit changes row new_number=id in Dataverse as a user would.
func (w *world) dvEdit(id int64, attrs map[string]any) {
	w.t.Helper()
	body, _ := json.Marshal(attrs)
	_, err := w.client.Update(context.Background(), "new_customers",
		dvKey(id), body, odataclient.WriteOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
}

// conflicts returns dvsync_conflicts_total summed over its labels, and
// the labels of the last series.
func (w *world) conflicts() (float64, map[string]string) {
	w.t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		w.t.Fatal(err)
	}
	total := 0.0
	labels := map[string]string{}
	for _, mf := range mfs {
		if mf.GetName() != "dvsync_conflicts_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			total += m.GetCounter().GetValue()
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
		}
	}
	return total, labels
}

// bothSides waits until the row is as wanted on both sides: name and city,
// or absent when gone.
func (w *world) bothSides(id int, name, city string, gone bool) {
	w.t.Helper()
	w.eventually(fmt.Sprintf("row %d = %q/%q (gone %v) on both sides", id, name, city, gone), func() bool {
		n, c, ok := w.pgRow(id)
		if gone != !ok || ok && (n != name || c != city) {
			return false
		}
		row, ok := w.dvRow(int64(id))
		if gone {
			return !ok
		}
		return ok && row["new_name"] == name && str(row["new_city"]) == city
	})
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// countingSink counts the records its Sink made durable.
type countingSink struct {
	sink.Sink
	n *atomic.Int64
}

func (c *countingSink) Write(ctx context.Context, batch []change.Record) error {
	err := c.Sink.Write(ctx, batch)
	if err == nil {
		c.n.Add(int64(len(batch)))
		return nil
	}
	var be *change.BatchError
	if errors.As(err, &be) {
		c.n.Add(int64(len(batch) - len(be.Failed)))
	}
	return err
}

// toDataverse is pipeline A's mapping: public.customers → new_customer.
func toDataverse(rec *change.Record) (change.Record, bool, error) {
	id := rec.Key[0].Value
	out := change.Record{Op: rec.Op, Table: "new_customer", Key: change.Key{{Name: "new_number", Value: id}},
		Position: rec.Position, CommitTime: rec.CommitTime, Origin: rec.Origin}
	if rec.Op != change.OpDelete {
		out.After = change.Row{{Name: "new_number", Value: id}}
		for _, m := range [][2]string{{"name", "new_name"}, {"city", "new_city"}} {
			if v, ok := rec.After.Get(m[0]); ok {
				out.After = append(out.After, change.Column{Name: m[1], Value: v})
			}
		}
	}
	return out, true, nil
}

// toSource is pipeline B's mapping, and the Sync's Reverse:
// new_customer → public.customers.
func toSource(rec *change.Record, ids *idMap) (change.Record, bool, error) {
	num, ok := keyGet(rec.Key, "new_number")
	if !ok {
		num, ok = rec.After.Get("new_number")
	}
	if !ok {
		if id, found := keyGet(rec.Key, "new_customerid"); found {
			n, known := ids.get(id.String())
			num, ok = change.Int(n), known
		}
	}
	if !ok {
		return change.Record{}, false, nil
	}
	n, err := strconv.ParseInt(string(num.AppendText(nil)), 10, 64)
	if err != nil {
		return change.Record{}, false, change.Permanent(err)
	}
	out := change.Record{Op: rec.Op, Table: "public.customers", Key: change.Key{{Name: "id", Value: change.Int(n)}},
		Position: rec.Position, CommitTime: rec.CommitTime, Origin: rec.Origin, Meta: rec.Meta}
	if rec.Op != change.OpDelete {
		out.After = change.Row{{Name: "id", Value: change.Int(n)}}
		for _, m := range [][2]string{{"new_name", "name"}, {"new_city", "city"}} {
			if v, ok := rec.After.Get(m[0]); ok {
				out.After = append(out.After, change.Column{Name: m[1], Value: v})
			}
		}
	}
	return out, true, nil
}

func keyGet(k change.Key, name string) (change.Value, bool) {
	return change.Row(k).Get(name)
}

// idMap remembers each Dataverse row's number by its primary id, so that
// a deletion, which change tracking reports by id only, maps to its key.
type idMap struct {
	mu sync.Mutex
	m  map[string]int64
}

func (m *idMap) get(id string) (int64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.m[id]
	return n, ok
}

func (m *idMap) put(id string, n int64) {
	m.mu.Lock()
	m.m[id] = n
	m.mu.Unlock()
}

// deltaSource is pipeline B's source: it polls new_customers with
// change tracking and emits each round's changes, positioned by the
// round's delta link.
type deltaSource struct {
	client *odataclient.Client
	ids    *idMap
	link   string
	rounds atomic.Int64
}

func (s *deltaSource) Open(ctx context.Context, from change.Position) error {
	if from != nil {
		s.link = string(bytes.SplitN(from, []byte{0}, 2)[0])
		return nil
	}
	page, err := s.client.TrackChanges(ctx, "new_customers", odataclient.DeltaQuery{})
	if err != nil {
		return err
	}
	for page.NextLink != "" { // the baseline: rows already there are not changes
		if page, err = s.client.NextDelta(ctx, page.NextLink, 0); err != nil {
			return err
		}
	}
	s.link = page.DeltaLink
	return nil
}

func (s *deltaSource) Read(ctx context.Context) ([]change.Record, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var changes []odataclient.DeltaChange
		page, err := s.client.NextDelta(ctx, s.link, 0)
		for err == nil {
			changes = append(changes, page.Changes...)
			if page.NextLink == "" {
				break
			}
			page, err = s.client.NextDelta(ctx, page.NextLink, 0)
		}
		if err != nil {
			return nil, err
		}
		s.link = page.DeltaLink
		s.rounds.Add(1)
		if len(changes) > 0 {
			return s.records(changes)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

func (s *deltaSource) records(changes []odataclient.DeltaChange) ([]change.Record, error) {
	out := make([]change.Record, 0, len(changes))
	for i, ch := range changes {
		pos := change.Position(s.link + "\x00" + strconv.Itoa(i))
		if ch.Deleted {
			out = append(out, change.Record{Op: change.OpDelete, Table: "new_customer",
				Key: change.Key{{Name: "new_customerid", Value: change.Text(ch.ID)}}, Position: pos,
				Origin: change.Origin{System: "dataverse"}})
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(ch.Row))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			return nil, err
		}
		rec := change.Record{Op: change.OpUpdate, Table: "new_customer", Position: pos,
			Origin: change.Origin{System: "dataverse"}, Meta: map[string]string{}}
		for name, v := range obj {
			if bytes.IndexByte([]byte(name), '@') >= 0 {
				continue
			}
			val := jsonValue(v)
			rec.After = append(rec.After, change.Column{Name: name, Value: val})
		}
		id, _ := obj["new_customerid"].(string)
		rec.Key = change.Key{{Name: "new_customerid", Value: change.Text(id)}}
		if n, ok := obj["new_number"].(json.Number); ok {
			v, _ := n.Int64()
			s.ids.put(id, v)
		}
		if n, ok := obj["versionnumber"].(json.Number); ok {
			rec.Meta["versionnumber"] = n.String()
		}
		if mod, ok := rec.After.Get("modifiedon"); ok && mod.Kind() == change.KindTimestamp {
			rec.CommitTime = mod.Time()
		}
		out = append(out, rec)
	}
	return out, nil
}

func jsonValue(v any) change.Value {
	switch x := v.(type) {
	case nil:
		return change.Null()
	case bool:
		return change.Bool(x)
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return change.Int(i)
		}
		return change.MustDecimal(x.String())
	case string:
		if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
			return change.Timestamp(t)
		}
		return change.Text(x)
	}
	b, _ := json.Marshal(v)
	return change.JSON(b)
}

func (s *deltaSource) Ack(context.Context, change.Position) error { return nil }
func (s *deltaSource) Close(context.Context) error                { return nil }

func dvKey(id int64) odataclient.Key {
	return odataclient.Key{Alternate: []odataclient.KeyPart{{Name: "new_number", Value: id}}}
}

// dvDelete deletes row new_number=id in Dataverse as a user would.
func (w *world) dvDelete(id int64) {
	w.t.Helper()
	if err := w.client.Delete(context.Background(), "new_customers", dvKey(id), odataclient.WriteOptions{}); err != nil {
		w.t.Fatalf("delete in Dataverse: %v", err)
	}
}

// dvETag returns row new_number=id's ETag.
func (w *world) dvETag(id int64) string {
	w.t.Helper()
	_, etag, err := w.client.Retrieve(context.Background(), "new_customers", dvKey(id), odataclient.Query{})
	if err != nil {
		w.t.Fatal(err)
	}
	return etag
}
