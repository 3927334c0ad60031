package mapping

import (
	"testing"

	"github.com/dvsync/dvsync/change"
)

// BenchmarkMap measures Map per record: a plain mapping of renames and
// conversions, and one using every feature that runs per record.
func BenchmarkMap(b *testing.B) {
	rec := change.Record{
		Op: change.OpUpdate, Table: "public.t",
		Key: change.Key(row("id", change.Int(42))),
		After: row("id", change.Int(42), "name", change.Text("Contoso"), "email", change.Text("info@contoso.com"),
			"phone", change.Null(), "limit", change.MustDecimal("5000.00"), "employees", change.Int(120),
			"tier", change.Text("gold"), "parent_id", change.Int(7), "active", change.Bool(true), "region", change.Text("EU")),
	}
	plain := byAccountNumber + `columns:
  - {source: id, target: accountnumber, type: string}
  - {source: name, target: name}
  - {source: email, target: emailaddress1}
  - {source: phone, target: telephone1}
  - {source: limit, target: creditlimit, type: money}
  - {source: employees, target: numberofemployees, type: integer}
`
	full := plain + `  - {source: tier, target: customertypecode, choices: {values: {gold: 1, silver: 2}}}
  - {source: parent_id, target: parentaccountid, type: string, lookup: {table: account, key: accountnumber}}
  - {constant: dvsync, target: description}
  - {expr: 'name + " (" + region + ")"', target: cr1_label}
filter: 'active && region == "EU"'
`
	for _, bm := range []struct{ name, mapping string }{{"plain", plain}, {"every-feature", full}} {
		b.Run(bm.name, func(b *testing.B) {
			mp := compile(b, head+bm.mapping).Mapper("app")
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, err := mp.Map(&rec); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
