package dataverse

import (
	"bytes"
	"errors"
	"testing"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/testenv"
	"github.com/dvsync/dvsync/odataclient"
)

// lookupSchema has a child table (account) whose lookup binds to a parent
// (contact) by the parent's alternate key.
const lookupSchema = `
tables:
  - logical_name: contact
    entity_set: contacts
    primary_id: contactid
    primary_name: fullname
    attributes:
      - {name: fullname, type: string}
      - {name: emailaddress1, type: string}
    keys:
      - {name: email_key, attributes: [emailaddress1]}
  - logical_name: account
    entity_set: accounts
    primary_id: accountid
    primary_name: name
    attributes:
      - {name: name, type: string}
      - {name: accountnumber, type: string}
      - {name: primarycontactid, type: lookup, targets: [contact]}
    keys:
      - {name: accountnumber_key, attributes: [accountnumber]}
`

// TestEmulatorMissingParentIsDeferred writes a child whose parent row is
// not there yet: the child must come back deferred, not permanent, so the
// engine retries it later; once the parent exists the same record lands.
func TestEmulatorMissingParentIsDeferred(t *testing.T) {
	for _, mode := range []string{ModeAuto, ModeBatch, ModeSingle} {
		t.Run(mode, func(t *testing.T) {
			emu := testenv.StartEmulator(t, lookupSchema)
			c, err := odataclient.New(odataclient.Options{BaseURL: emu.URL, Tokens: odataclient.StaticToken(emu.Token)})
			if err != nil {
				t.Fatal(err)
			}
			s := New(c, Config{Mode: mode, Retries: -1})
			t.Cleanup(func() { s.Close(t.Context()) })

			child := change.Record{Op: change.OpInsert, Table: "account",
				Key: change.Key{col("accountnumber", change.Text("A1"))},
				After: change.Row{
					col("accountnumber", change.Text("A1")),
					col("name", change.Text("Child")),
					col("primarycontactid@odata.bind", change.Text("/contacts(emailaddress1='p@example.com')")),
				}}
			other := accountOnly("A2")
			err = s.Write(t.Context(), []change.Record{child, other})
			var be *change.BatchError
			if !errors.As(err, &be) || len(be.Failed) != 1 || !change.IsDeferred(be.Failed[0]) {
				t.Fatalf("child before parent: %v; want only record 0 deferred", err)
			}
			if change.IsPermanent(be.Failed[0]) {
				t.Fatalf("deferred error is also permanent: %v", be.Failed[0])
			}

			parent := change.Record{Op: change.OpInsert, Table: "contact",
				Key:   change.Key{col("emailaddress1", change.Text("p@example.com"))},
				After: change.Row{col("emailaddress1", change.Text("p@example.com")), col("fullname", change.Text("Parent"))}}
			if err := s.Write(t.Context(), []change.Record{parent}); err != nil {
				t.Fatalf("parent: %v", err)
			}
			if err := s.Write(t.Context(), []change.Record{child}); err != nil {
				t.Fatalf("child after parent: %v", err)
			}
			raw, _, err := c.Retrieve(t.Context(), "accounts",
				odataclient.Key{Alternate: []odataclient.KeyPart{{Name: "accountnumber", Value: "A1"}}},
				odataclient.Query{Select: []string{"_primarycontactid_value"}})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(raw, []byte(`"_primarycontactid_value":"`)) {
				t.Fatalf("child row has no parent: %s", raw)
			}
		})
	}
}

func accountOnly(number string) change.Record {
	return change.Record{Op: change.OpInsert, Table: "account",
		Key:   change.Key{col("accountnumber", change.Text(number))},
		After: change.Row{col("accountnumber", change.Text(number)), col("name", change.Text("n-"+number))}}
}

// TestEmulatorUnknownTableIsFatal: a table the organization does not have
// stops the pipeline instead of dead-lettering each of its records.
func TestEmulatorUnknownTableIsFatal(t *testing.T) {
	emu := testenv.StartEmulator(t, lookupSchema)
	c, err := odataclient.New(odataclient.Options{BaseURL: emu.URL, Tokens: odataclient.StaticToken(emu.Token)})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"by metadata":         {},
		"configured set name": {EntitySets: map[string]string{"account": "acounts"}},
	} {
		s := New(c, cfg)
		rec := accountOnly("A1")
		if name == "by metadata" {
			rec.Table = "acount"
		}
		err := s.Write(t.Context(), []change.Record{accountOnly("A0"), rec})
		if !change.IsFatal(err) {
			t.Errorf("%s: %v; want fatal", name, err)
		}
		_ = s.Close(t.Context())
	}
	bad, err := odataclient.New(odataclient.Options{BaseURL: emu.URL, Tokens: odataclient.StaticToken("wrong")})
	if err != nil {
		t.Fatal(err)
	}
	s := New(bad, Config{EntitySets: map[string]string{"account": "accounts"}})
	t.Cleanup(func() { s.Close(t.Context()) })
	if err := s.Write(t.Context(), []change.Record{accountOnly("A1")}); !change.IsFatal(err) {
		t.Errorf("refused token: %v; want fatal", err)
	}
}
