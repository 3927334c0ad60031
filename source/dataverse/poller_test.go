package dataverse

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/dvevent"
)

func pollConfig() *PollConfig {
	return &PollConfig{
		Tables:      []PollTable{{Table: "contact"}},
		MinInterval: 10 * time.Millisecond,
		MaxInterval: 40 * time.Millisecond,
		PageSize:    2,
	}
}

// byID groups records by row id, in order.
func byID(recs []change.Record) map[string][]change.Record {
	out := map[string][]change.Record{}
	for _, r := range recs {
		out[keyID(r)] = append(out[keyID(r)], r)
	}
	return out
}

// TestDeltaOnly: without webhooks, the poller delivers creates, updates
// and deletes, skips dvsync's own writes, and after its delta token
// expires repairs by a full read: the rows that vanished are deleted, the
// rows that appeared are read.
func TestDeltaOnly(t *testing.T) {
	d := startDataverse(t, "")
	open, _ := openBolt(t)
	store := open()
	t.Cleanup(func() { store.Close() })
	before := d.create(d.client, "Early")
	cfg := Config{Name: "dv", Poll: pollConfig(), OwnUserIDs: []string{appUser}}
	o := openSource(t, cfg, d.client, store, nil)

	// The first round reads the table.
	got := o.read(1)
	if got[0].Op != change.OpRead || keyID(got[0]) != before || lastname(got[0]) != "Early" || got[0].Meta["source"] != "delta" {
		t.Fatalf("first read:%s", describe(got))
	}
	if v, _ := got[0].After.Get("creditlimit"); !v.Equal(change.MustDecimal("10.5")) && !v.Equal(change.MustDecimal("10.5000")) {
		t.Errorf("creditlimit = %s %s", v.Kind(), v)
	}
	if v, _ := got[0].After.Get("preferredcontactmethodcode"); !v.Equal(change.Int(2)) {
		t.Errorf("choice = %s %s", v.Kind(), v)
	}
	if v, _ := got[0].After.Get("modifiedby" + dvevent.LookupNameSuffix); !v.Equal(change.Text("systemuser")) {
		t.Errorf("modifiedby's table = %s", v)
	}

	a := d.create(d.client, "A")
	b := d.create(d.client, "B")
	d.update(d.client, a, "A2")
	d.remove(d.client, before)
	mine := d.create(d.app, "Mine") // dvsync's own write
	d.update(d.client, b, "B2")
	// Rounds may fall between the writes, so A may arrive once or twice;
	// what arrives is in order and ends in the rows' last state.
	got = o.readUntil("the changes", func(g map[string][]change.Record) bool {
		return hasName(g, a, "A2") && hasName(g, b, "B2") && isDelete(g, before)
	})
	o.quiet(0)
	checkOrder(t, got)
	g := byID(got)
	if g[a][0].Op != change.OpInsert || g[b][0].Op != change.OpInsert || len(g[before]) != 1 || len(g[mine]) != 0 {
		t.Errorf("changes:%s", describe(got))
	}
	if r, _ := final(g, b); len(g[b]) > 1 && (r.Op != change.OpUpdate || r.Origin.Name == "") {
		t.Errorf("update of B:%s", describe(g[b]))
	}
	o.ack()

	// Every row goes and the delta token expires; a row appears.
	d.reset()
	c := d.create(d.client, "C")
	got = o.read(4)
	g = byID(got)
	// dvsync's own row goes too: the reset was not dvsync's doing.
	if !isDelete(g, a) || !isDelete(g, b) || !isDelete(g, mine) || len(g[c]) != 1 || g[c][0].Op != change.OpRead || lastname(g[c][0]) != "C" {
		t.Fatalf("after the token expired:%s", describe(got))
	}
	// The poller carries on from the new token.
	d.update(d.client, c, "C2")
	got = o.read(1)
	if got[0].Op != change.OpUpdate || lastname(got[0]) != "C2" {
		t.Fatalf("after the repair:%s", describe(got))
	}
	o.quiet(0)
}

// TestDeltaRestart: the delta link and the marks survive a restart, so a
// new source delivers only what changed meanwhile.
func TestDeltaRestart(t *testing.T) {
	d := startDataverse(t, "")
	open, _ := openBolt(t)
	store := open()
	a := d.create(d.client, "A")
	cfg := Config{Name: "dv", Poll: pollConfig()}
	o := openSource(t, cfg, d.client, store, nil)
	o.read(1)
	o.quiet(0)
	o.ack()
	pos := o.got[0].Position
	o.close()
	store.Close()

	d.update(d.client, a, "A2")
	store = open()
	t.Cleanup(func() { store.Close() })
	again := openSource(t, cfg, d.client, store, pos)
	got := again.read(1)
	if got[0].Op != change.OpUpdate || lastname(got[0]) != "A2" {
		t.Fatalf("after restart:%s", describe(got))
	}
	again.quiet(0)
}

// TestWebhooksAndDelta: with both feeds, every change arrives once, in
// version order; dvsync's own writes arrive through neither; and a
// change whose webhook delivery failed (the receiver was down) arrives
// through the poller.
func TestWebhooksAndDelta(t *testing.T) {
	addr := freeAddr(t)
	d := startDataverse(t, hooksSection("http://"+addr+DefaultPath+"?code="+hookKey))
	open, _ := openBolt(t)
	store := open()
	t.Cleanup(func() { store.Close() })
	cfg := webhookConfig(addr)
	cfg.Poll = pollConfig()
	o := openSource(t, cfg, d.client, store, nil)
	o.quiet(0) // the first full read of the empty table is done

	a := d.create(d.client, "A")
	d.update(d.client, a, "A2")
	d.update(d.client, a, "A3")
	b := d.create(d.client, "B")
	d.remove(d.client, b)
	mine := d.create(d.app, "Mine")
	d.update(d.app, a, "Mine too")
	// Either feed may bring a change first; the other's copy is dropped,
	// and so is a webhook delivery overtaken by a newer version.
	got := o.readUntil("the changes", func(g map[string][]change.Record) bool {
		return hasName(g, a, "A3") && isDelete(g, b)
	})
	o.quiet(7)
	checkOrder(t, got)
	g := byID(got)
	if len(g[a]) > 3 || len(g[b]) > 2 || len(g[mine]) != 0 {
		t.Fatalf("records:%s", describe(got))
	}
	o.ack()
	pos := o.got[len(o.got)-1].Position
	o.close()

	// Down: the webhook delivery of this change fails for good.
	d.update(d.client, a, "While down")
	waitFor(t, "the failed webhook delivery", func() bool { return len(d.emu.Server.WebhookFailures()) > 0 })
	again := openSource(t, cfg, d.client, store, pos)
	got = again.read(1)
	if lastname(got[0]) != "While down" || got[0].Meta["source"] != "delta" {
		t.Fatalf("missed change:%s", describe(got))
	}
	// Both feeds see the next change; it is applied once.
	d.update(d.client, a, "Back")
	got = again.read(1)
	if lastname(got[0]) != "Back" {
		t.Fatalf("after restart:%s", describe(got))
	}
	again.quiet(1)
	if status, _ := post(t, addr, "?code="+hookKey, nil, hookBody("Update", a, person, 1)); status != http.StatusOK {
		t.Errorf("a stale delivery is still answered 200, got %d", status)
	}
	again.quiet(2)
	if err := again.src.Healthy(); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}

// TestPollHealth: a failing poll makes the source unhealthy, and the
// next good round makes it healthy again.
func TestPollHealth(t *testing.T) {
	d := startDataverse(t, "")
	open, _ := openBolt(t)
	store := open()
	t.Cleanup(func() { store.Close() })
	o := openSource(t, Config{Name: "dv", Poll: pollConfig()}, d.client, store, nil)
	o.quiet(0)
	if err := o.src.Healthy(); err != nil {
		t.Fatalf("Healthy before the fault: %v", err)
	}
	d.faults(`{"error_rate":1,"error_status":503,"match":"contacts"}`)
	waitFor(t, "an unhealthy report", func() bool { return o.src.Healthy() != nil })
	if err := o.src.Healthy(); !strings.Contains(err.Error(), "polling contact") {
		t.Errorf("Healthy = %v", err)
	}
	d.faults("")
	waitFor(t, "a healthy report", func() bool { return o.src.Healthy() == nil })
	a := d.create(d.client, "A")
	if got := o.read(1); keyID(got[0]) != a {
		t.Errorf("after the fault:%s", describe(got))
	}
}
