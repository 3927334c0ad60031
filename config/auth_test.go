package config

import (
	"strings"
	"testing"
)

func TestDataverseAuthValidation(t *testing.T) {
	valid := func() Dataverse {
		d := Default().Dataverse
		d.URL = "https://contoso.crm.dynamics.com"
		return d
	}
	for _, tc := range []struct {
		name string
		auth Auth
		want []string // problems; none means valid
	}{
		{name: "token", auth: Auth{Token: "t"}},
		{name: "client secret", auth: Auth{TenantID: "contoso.onmicrosoft.com", ClientID: "app", ClientSecret: "s"}},
		{name: "certificate via token_url", auth: Auth{TokenURL: "http://127.0.0.1:5555/t/oauth2/v2.0/token", ClientID: "app", CertificateFile: "/etc/dvsync/app.pem"}},
		{name: "nothing", want: []string{"auth.token: required"}},
		{name: "both", auth: Auth{Token: "t", TenantID: "x", ClientID: "app", ClientSecret: "s"},
			want: []string{"auth.token: give either token or client_id, not both"}},
		{name: "secret without client", auth: Auth{Token: "t", ClientSecret: "s"},
			want: []string{"auth.client_secret: needs client_id"}},
		{name: "no tenant", auth: Auth{ClientID: "app", ClientSecret: "s"},
			want: []string{"auth.tenant_id: required with client_id"}},
		{name: "secret and certificate", auth: Auth{TenantID: "x", ClientID: "app", ClientSecret: "s", CertificateFile: "f"},
			want: []string{"auth.client_secret: give exactly one"}},
		{name: "no credential", auth: Auth{TenantID: "x", ClientID: "app"},
			want: []string{"auth.client_secret: give exactly one"}},
		{name: "bad authority", auth: Auth{TenantID: "x", ClientID: "app", ClientSecret: "s", Authority: "login"},
			want: []string{"auth.authority: \"login\" is not an http or https URL"}},
	} {
		d := valid()
		d.Auth = tc.auth
		err := d.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: validated", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v lacks %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "\"s\"") {
			t.Errorf("%s: error quotes the secret: %v", tc.name, err)
		}
	}
}

func TestDataverseWriteSettings(t *testing.T) {
	d := Default().Dataverse
	d.URL, d.Auth.Token = "https://contoso.crm.dynamics.com", "t"
	d.Concurrency, d.BatchSize, d.WriteMode = 53, 1001, "bulk"
	err := d.Validate()
	for _, w := range []string{"concurrency: must be between 1 and 52", "batch_size: must be between 1 and 1000", `write_mode: "bulk" is not auto, batch or single`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("%v lacks %q", err, w)
		}
	}
}
