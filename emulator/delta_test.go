package emulator_test

import (
	"net/http"
	"strings"
	"testing"
)

// deltaPage is one page of a change-tracking answer.
type deltaPage struct {
	context, deltaLink, nextLink string
	changed                      []map[string]any
	deleted                      []string
}

func (a *api) deltaGet(link string, headers ...string) deltaPage {
	a.t.Helper()
	r := a.do("GET", link, nil, headers...).must(a.t, http.StatusOK)
	body := r.obj(a.t)
	p := deltaPage{}
	p.context, _ = body["@odata.context"].(string)
	p.deltaLink, _ = body["@odata.deltaLink"].(string)
	p.nextLink, _ = body["@odata.nextLink"].(string)
	for _, v := range body["value"].([]any) {
		m := v.(map[string]any)
		if ctx, _ := m["@odata.context"].(string); strings.HasSuffix(ctx, "#accounts/$deletedEntity") {
			if m["reason"] != "deleted" {
				a.t.Errorf("deleted entry %v", m)
			}
			p.deleted = append(p.deleted, m["id"].(string))
			continue
		}
		p.changed = append(p.changed, m)
	}
	return p
}

func TestDeltaAfterCreateUpdateDelete(t *testing.T) {
	a := startAPI(t)
	a1 := a.create("accounts", map[string]any{"name": "one"})
	a2 := a.create("accounts", map[string]any{"name": "two"})

	r := a.do("GET", "accounts?$select=name", nil, "Prefer", "odata.track-changes").must(t, http.StatusOK)
	if got := r.header.Get("Preference-Applied"); got != "odata.track-changes" {
		t.Errorf("Preference-Applied %q", got)
	}
	first := a.deltaGet("accounts?$select=name", "Prefer", "odata.track-changes")
	if len(first.changed) != 2 || first.deltaLink == "" || !strings.HasPrefix(first.deltaLink, a.base+"/accounts?$select=name&$deltatoken=") {
		t.Fatalf("initial page %+v", first)
	}
	if first.changed[0]["numberofemployees"] != nil || first.changed[0]["name"] == nil {
		t.Errorf("$select not applied: %v", first.changed[0])
	}

	idle := a.deltaGet(first.deltaLink)
	if len(idle.changed)+len(idle.deleted) != 0 || !strings.HasSuffix(idle.context, "#accounts(name)/$delta") {
		t.Fatalf("delta without changes %+v", idle)
	}

	a3 := a.create("accounts", map[string]any{"name": "three"})
	a.do("PATCH", "accounts("+a1+")", map[string]any{"name": "one'"}).must(t, http.StatusNoContent)
	a.do("DELETE", "accounts("+a2+")", nil).must(t, http.StatusNoContent)
	transient := a.create("accounts", map[string]any{"name": "short-lived"})
	a.do("DELETE", "accounts("+transient+")", nil).must(t, http.StatusNoContent)

	changes := a.deltaGet(idle.deltaLink)
	if got := names(changes.changed, "name"); strings.Join(got, ",") != "three,one'" {
		t.Errorf("changed rows %v, want three then one'", got)
	}
	if got := names(changes.changed, "accountid"); got[0] != a3 || got[1] != a1 {
		t.Errorf("changed ids %v", got)
	}
	if strings.Join(changes.deleted, ",") != a2+","+transient {
		t.Errorf("deleted %v, want %s and %s", changes.deleted, a2, transient)
	}
	if after := a.deltaGet(changes.deltaLink); len(after.changed)+len(after.deleted) != 0 {
		t.Errorf("second delta not empty: %+v", after)
	}
	// An old link still works and returns the same changes.
	if again := a.deltaGet(idle.deltaLink); len(again.changed) != 2 || len(again.deleted) != 2 {
		t.Errorf("replayed delta %+v", again)
	}
}

func TestDeltaSkipsRolledBackChanges(t *testing.T) {
	a := startAPI(t)
	id := a.create("accounts", map[string]any{"name": "stays", "accountnumber": "S-1"})
	link := a.deltaGet("accounts?$select=name", "Prefer", "odata.track-changes").deltaLink
	_, parts := a.batch(batchBody("\r\n", []batchReq{
		{method: "PATCH", target: "accounts(" + id + ")", contentID: "1", body: `{"name":"changed"}`},
		{method: "DELETE", target: "accounts(" + id + ")", contentID: "2"},
		{method: "POST", target: "accounts", contentID: "3", body: `{"name":"dup","accountnumber":"X"}`},
		{method: "POST", target: "accounts", contentID: "4", body: `{"name":"dup","accountnumber":"X"}`},
	}))
	if len(parts) != 1 || parts[0].status != http.StatusPreconditionFailed {
		t.Fatalf("parts %+v", parts)
	}
	if p := a.deltaGet(link); len(p.changed)+len(p.deleted) != 0 {
		t.Errorf("rolled-back change set shows in the delta: %+v", p)
	}
}

func TestDeltaPaging(t *testing.T) {
	a := startAPI(t)
	link := a.deltaGet("accounts", "Prefer", "odata.track-changes").deltaLink
	var ids []string
	for range 5 {
		ids = append(ids, a.create("accounts", map[string]any{"name": "x"}))
	}
	a.do("DELETE", "accounts("+ids[0]+")", nil).must(t, http.StatusNoContent)

	var changed, deleted []string
	pages := 0
	for next := link; ; pages++ {
		p := a.deltaGet(next, "Prefer", "odata.maxpagesize=2")
		changed = append(changed, names(p.changed, "accountid")...)
		deleted = append(deleted, p.deleted...)
		if p.nextLink == "" {
			if p.deltaLink == "" {
				t.Fatal("last page has no delta link")
			}
			if more := a.deltaGet(p.deltaLink); len(more.changed)+len(more.deleted) != 0 {
				t.Errorf("delta after paging not empty: %+v", more)
			}
			break
		}
		if p.deltaLink != "" {
			t.Error("a page with a next link also has a delta link")
		}
		next = p.nextLink
	}
	if pages != 2 || strings.Join(changed, ",") != strings.Join(ids[1:], ",") || len(deleted) != 1 || deleted[0] != ids[0] {
		t.Errorf("pages %d, changed %v, deleted %v", pages+1, changed, deleted)
	}
}

func TestDeltaErrors(t *testing.T) {
	a := startAPI(t)
	wantErr(t, a.do("GET", "accounts?$filter=name%20eq%20'x'", nil, "Prefer", "odata.track-changes"),
		http.StatusBadRequest, "0x80060888", `The "$filter" query parameter isn't supported when Change Tracking is enabled.`)
	wantErr(t, a.do("GET", "accounts?$top=1", nil, "Prefer", "odata.track-changes"),
		http.StatusBadRequest, "0x80060888", `"$top"`)
	wantErr(t, a.do("GET", "contacts", nil, "Prefer", "odata.track-changes"),
		http.StatusBadRequest, "0x80040216", "not enabled for the entity 'contact'")
	for _, tok := range []string{"garbage", "99999!11/25/2026%2010:00:00", "1!01/01/2001%2000:00:00"} {
		wantErr(t, a.do("GET", "accounts?$deltatoken="+tok, nil), http.StatusBadRequest, "0x80044352", "Please perform a full sync.")
	}

	// A reset forgets deletions, so earlier tokens expire.
	a.create("accounts", map[string]any{"name": "x"})
	link := a.deltaGet("accounts", "Prefer", "odata.track-changes").deltaLink
	a.do("POST", "/_emulator/reset", nil).must(t, http.StatusNoContent)
	a.create("accounts", map[string]any{"name": "y"})
	wantErr(t, a.do("GET", link, nil), http.StatusBadRequest, "0x80044352", "expired")
}
