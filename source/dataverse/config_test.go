package dataverse

import (
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/dvevent"
	"github.com/dvsync/dvsync/odataclient"
)

func TestConfigValidation(t *testing.T) {
	ok := Config{Name: "dv", Webhook: &WebhookConfig{Listen: ":0", Auth: WebhookAuth{WebhookKey: "k"}}}
	if err := ok.withDefaults().validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no name", Config{Webhook: ok.Webhook}, "name is required"},
		{"no feed", Config{Name: "dv"}, "set webhook, poll or both"},
		{"open endpoint", Config{Name: "dv", Webhook: &WebhookConfig{Listen: ":0"}}, "an open endpoint"},
		{"no listen", Config{Name: "dv", Webhook: &WebhookConfig{Auth: WebhookAuth{WebhookKey: "k"}}}, "webhook.listen is required"},
		{"relative path", Config{Name: "dv", Webhook: &WebhookConfig{Listen: ":0", Path: "hook", Auth: WebhookAuth{WebhookKey: "k"}}}, "must start with /"},
		{"half TLS", Config{Name: "dv", Webhook: &WebhookConfig{Listen: ":0", TLSCertFile: "c.pem", Auth: WebhookAuth{WebhookKey: "k"}}}, "go together"},
		{"empty header", Config{Name: "dv", Webhook: &WebhookConfig{Listen: ":0", Auth: WebhookAuth{Headers: map[string]string{"x": ""}}}}, "empty name or value"},
		{"no tables", Config{Name: "dv", Poll: &PollConfig{}}, "poll.tables is empty"},
		{"table twice", Config{Name: "dv", Poll: &PollConfig{Tables: []PollTable{{Table: "a"}, {Table: "a"}}}}, "listed twice"},
		{"intervals", Config{Name: "dv", Poll: &PollConfig{Tables: []PollTable{{Table: "a"}}, MinInterval: time.Hour, MaxInterval: time.Minute}}, "exceeds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.withDefaults().validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(Config{Name: "dv", Poll: &PollConfig{Tables: []PollTable{{Table: "a"}}}}, nil, nil, nil); err == nil {
		t.Error("New accepted a poller without a client or store")
	}
	if err := (Config{Name: "dv", Webhook: &WebhookConfig{Listen: ":0", Auth: WebhookAuth{WebhookKey: "s3cret"}}}).withDefaults().validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	u, _ := change.ParseUUID("6f9619ff-8b86-4011-b42d-00c04fc964ff")
	ts := time.Date(2024, 3, 1, 12, 30, 0, 123456789, time.UTC)
	rec := change.Record{
		Op: change.OpUpdate, Table: "contact", Key: change.Key{{Name: "contactid", Value: u}},
		Before: change.Row{{Name: "n", Value: change.Null()}},
		After: change.Row{
			{Name: "t", Value: change.Text("héllo \"x\"")}, {Name: "i", Value: change.Int(-7)},
			{Name: "f", Value: change.Float(1.25)}, {Name: "d", Value: change.MustDecimal("12345678901234567890.1200")},
			{Name: "b", Value: change.Bool(true)}, {Name: "ts", Value: change.Timestamp(ts)},
			{Name: "dt", Value: change.Date(ts)}, {Name: "u", Value: u}, {Name: "y", Value: change.Bytes([]byte{0, 1})},
			{Name: "j", Value: change.JSON([]byte(`{"a":1}`))}, {Name: "x", Value: change.Unchanged()},
		},
		CommitTime: ts, Origin: change.Origin{System: "dataverse", Name: "me"},
		Meta: map[string]string{"versionnumber": "5"},
	}
	data, err := encodeRecord(&rec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Op != rec.Op || got.Table != rec.Table || !got.Key.Equal(rec.Key) || !got.CommitTime.Equal(ts) ||
		got.Origin != rec.Origin || got.Meta["versionnumber"] != "5" {
		t.Errorf("decoded %+v", got)
	}
	for _, pair := range [][2]change.Row{{got.Before, rec.Before}, {got.After, rec.After}} {
		if len(pair[0]) != len(pair[1]) {
			t.Fatalf("row %v, want %v", pair[0], pair[1])
		}
		for i := range pair[1] {
			if pair[0][i].Name != pair[1][i].Name || !pair[0][i].Value.Equal(pair[1][i].Value) {
				t.Errorf("column %s = %s %s, want %s", pair[1][i].Name, pair[0][i].Value.Kind(), pair[0][i].Value, pair[1][i].Value)
			}
		}
	}
	del := change.Record{Op: change.OpDelete, Table: "contact", Key: rec.Key}
	data, _ = encodeRecord(&del)
	if got, err := decodeRecord(data); err != nil || got.After != nil || got.Before != nil || got.Op != change.OpDelete {
		t.Errorf("delete decoded as %+v, %v", got, err)
	}
}

func TestDecodeDeltaRow(t *testing.T) {
	attrs := map[string]odataclient.Attribute{
		"contactid":         {Type: "Uniqueidentifier"},
		"parentcustomerid":  {Type: "Customer", Targets: []string{"account", "contact"}},
		"ownerid":           {Type: "Owner", Targets: []string{"systemuser"}},
		"birthdate":         {Type: "DateTime"},
		"anniversary":       {Type: "DateTime"},
		"creditlimit":       {Type: "Money"},
		"numberofchildren":  {Type: "Integer"},
		"donotemail":        {Type: "Boolean"},
		"interests":         {Type: "Virtual"},
		"preferredcontactm": {Type: "Picklist"},
	}
	raw := `{"@odata.etag":"W/\"5\"","contactid":"6F9619FF-8B86-4011-B42D-00C04FC964FF",
		"_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":"account",
		"_parentcustomerid_value@OData.Community.Display.V1.FormattedValue":"Contoso",
		"_parentcustomerid_value":"11111111-2222-4333-8444-555555555555",
		"_ownerid_value":"99999999-2222-4333-8444-555555555555",
		"birthdate":"1990-05-01","anniversary":"2020-01-02T03:04:05Z","creditlimit":100.50,
		"numberofchildren":2,"donotemail":false,"interests":"1,2","preferredcontactm":3,
		"unknowntext":"x","unknownnumber":1.5,"unknownnull":null}`
	row, err := decodeDeltaRow([]byte(raw), attrs)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := change.ParseUUID("6f9619ff-8b86-4011-b42d-00c04fc964ff")
	parent, _ := change.ParseUUID("11111111-2222-4333-8444-555555555555")
	owner, _ := change.ParseUUID("99999999-2222-4333-8444-555555555555")
	want := change.Row{
		{Name: "contactid", Value: id},
		{Name: "parentcustomerid" + dvevent.LookupNameSuffix, Value: change.Text("account")},
		{Name: "parentcustomerid", Value: parent},
		{Name: "ownerid", Value: owner},
		{Name: "ownerid" + dvevent.LookupNameSuffix, Value: change.Text("systemuser")},
		{Name: "birthdate", Value: change.Date(time.Date(1990, 5, 1, 0, 0, 0, 0, time.UTC))},
		{Name: "anniversary", Value: change.Timestamp(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))},
		{Name: "creditlimit", Value: change.MustDecimal("100.50")},
		{Name: "numberofchildren", Value: change.Int(2)},
		{Name: "donotemail", Value: change.Bool(false)},
		{Name: "interests", Value: change.Text("1,2")},
		{Name: "preferredcontactm", Value: change.Int(3)},
		{Name: "unknowntext", Value: change.Text("x")},
		{Name: "unknownnumber", Value: change.MustDecimal("1.5")},
		{Name: "unknownnull", Value: change.Null()},
	}
	if len(row) != len(want) {
		t.Fatalf("row = %v", row)
	}
	for i := range want {
		if row[i].Name != want[i].Name || !row[i].Value.Equal(want[i].Value) {
			t.Errorf("column %d = %s %s %s, want %s %s", i, row[i].Name, row[i].Value.Kind(), row[i].Value, want[i].Name, want[i].Value)
		}
	}
	for _, bad := range []string{`[]`, `{"contactid":12}`, `{"numberofchildren":"x"}`, `{"birthdate":"yesterday"}`} {
		if _, err := decodeDeltaRow([]byte(bad), attrs); err == nil {
			t.Errorf("decodeDeltaRow(%s) accepted", bad)
		}
	}
}

func TestTokenVersion(t *testing.T) {
	v, ok := tokenVersion("https://org/api/data/v9.2/accounts?$select=name&$deltatoken=919042%2108%2f22%2f2017%2008%3a10%3a44")
	if !ok || v != 919042 {
		t.Errorf("tokenVersion = %d, %v", v, ok)
	}
	for _, link := range []string{"https://org/api/data/v9.2/accounts", "https://org/x?$deltatoken=abc!1", "https://org/x?$deltatoken=12"} {
		if _, ok := tokenVersion(link); ok {
			t.Errorf("tokenVersion(%q) found one", link)
		}
	}
}
