package odataclient

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/dvsync/dvsync/internal/testenv"
)

const trackedSchema = `
tables:
  - logical_name: account
    entity_set: accounts
    primary_id: accountid
    primary_name: name
    change_tracking: true
    attributes:
      - {name: name, type: string}
      - {name: accountnumber, type: string}
      - {name: numberofemployees, type: integer}
    keys:
      - {name: accountnumber_key, attributes: [accountnumber]}
`

func emulatorClient(t *testing.T, schema string) (*testenv.Emulator, *Client) {
	t.Helper()
	emu := testenv.StartEmulator(t, schema)
	c, err := New(Options{BaseURL: emu.URL, Tokens: StaticToken(emu.Token)})
	if err != nil {
		t.Fatal(err)
	}
	return emu, c
}

// deltaRound reads every page of one delta round from first (a started
// query when link is empty) and returns its changes and the next round's
// delta link.
func deltaRound(t *testing.T, c *Client, link string) ([]DeltaChange, string) {
	t.Helper()
	var (
		p   DeltaPage
		err error
	)
	if link == "" {
		p, err = c.TrackChanges(t.Context(), "accounts", DeltaQuery{Select: []string{"name"}, MaxPageSize: 2})
	} else {
		p, err = c.NextDelta(t.Context(), link, 2)
	}
	var all []DeltaChange
	for {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, p.Changes...)
		if p.NextLink == "" {
			break
		}
		if p.DeltaLink != "" {
			t.Fatalf("page has both a next link and a delta link")
		}
		p, err = c.NextDelta(t.Context(), p.NextLink, 2)
	}
	if p.DeltaLink == "" {
		t.Fatal("last page has no delta link")
	}
	return all, p.DeltaLink
}

type deltaSummary struct{ changed, deleted []string }

func summarize(t *testing.T, changes []DeltaChange) deltaSummary {
	t.Helper()
	var s deltaSummary
	for _, ch := range changes {
		if ch.Deleted {
			if ch.Row != nil || ch.Reason != "deleted" {
				t.Errorf("deletion %+v", ch)
			}
			s.deleted = append(s.deleted, ch.ID)
			continue
		}
		var row struct{ AccountID, Name string }
		if err := json.Unmarshal(ch.Row, &row); err != nil || row.AccountID == "" {
			t.Fatalf("changed row %s: %v", ch.Row, err)
		}
		s.changed = append(s.changed, row.AccountID)
	}
	slices.Sort(s.changed)
	slices.Sort(s.deleted)
	return s
}

func TestEmulatorDeltaCreateUpdateDelete(t *testing.T) {
	emu, c := emulatorClient(t, trackedSchema)
	ctx := t.Context()
	ids := make(map[string]string)
	for _, n := range []string{"A", "B", "C"} {
		res, err := c.Create(ctx, "accounts", []byte(`{"name":"`+n+`","accountnumber":"`+n+`"}`), WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = res.EntityID
	}

	first, link := deltaRound(t, c, "")
	if got := summarize(t, first); len(got.changed) != 3 || len(got.deleted) != 0 {
		t.Fatalf("first round: %+v, want the 3 rows", got)
	}
	if again, next := deltaRound(t, c, link); len(again) != 0 {
		t.Fatalf("no change, yet %d entries", len(again))
	} else {
		link = next
	}

	res, err := c.Create(ctx, "accounts", []byte(`{"name":"D","accountnumber":"D"}`), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids["D"] = res.EntityID
	if _, err := c.Update(ctx, "accounts", Key{ID: ids["A"]}, []byte(`{"name":"A2"}`), WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, "accounts", Key{ID: ids["B"]}, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	changes, next := deltaRound(t, c, link)
	got := summarize(t, changes)
	want := deltaSummary{changed: []string{ids["A"], ids["D"]}, deleted: []string{ids["B"]}}
	slices.Sort(want.changed)
	if !slices.Equal(got.changed, want.changed) || !slices.Equal(got.deleted, want.deleted) {
		t.Fatalf("delta = %+v, want %+v", got, want)
	}
	if rest, _ := deltaRound(t, c, next); len(rest) != 0 {
		t.Fatalf("changes seen twice: %+v", rest)
	}

	// A reset forgets the deletions the token would need: it expires.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, emu.URL+"/_emulator/reset", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+emu.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("reset: %s", resp.Status)
	}
	_, err = c.NextDelta(ctx, next, 2)
	if !IsDeltaTokenExpired(err) || !errors.Is(err, ErrDeltaTokenExpired) {
		t.Fatalf("after reset: %v, want an expired delta token", err)
	}
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusBadRequest {
		t.Fatalf("expired token error %v does not carry the service's answer", err)
	}
	if IsDeltaTokenExpired(&Error{StatusCode: 400, Code: "0x80060888"}) {
		t.Fatal("another 400 taken for an expired token")
	}
}

func TestDecodeDeltaEntry(t *testing.T) {
	for raw, want := range map[string]DeltaChange{
		`{"@odata.context":"https://x/api/data/v9.2/$metadata#accounts/$deletedEntity","id":"2e451703-c686-e711-80f1-00155d2a68c9","reason":"deleted"}`: {
			Deleted: true, ID: "2e451703-c686-e711-80f1-00155d2a68c9", Reason: "deleted"},
		`{"@removed":{"reason":"changed"},"id":"accounts(2e451703-c686-e711-80f1-00155d2a68c9)"}`: {
			Deleted: true, ID: "2e451703-c686-e711-80f1-00155d2a68c9", Reason: "changed"},
	} {
		got, err := decodeDeltaEntry(json.RawMessage(raw))
		if err != nil || got.Row != nil || got.Deleted != want.Deleted || got.ID != want.ID || got.Reason != want.Reason {
			t.Errorf("decode %s = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	row := `{"accountid":"2e451703-c686-e711-80f1-00155d2a68c9","name":"about $deletedEntity"}`
	if got, err := decodeDeltaEntry(json.RawMessage(row)); err != nil || got.Deleted || string(got.Row) != row {
		t.Errorf("row mentioning $deletedEntity decoded as %+v, %v", got, err)
	}
}
