package emulator_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dvsync/dvsync/emulator"
)

const (
	appClientID = "5f0e2a4c-1b3d-4e5f-8a9b-0c1d2e3f4a5b"
	appSecret   = "app-s3cret"
)

// token asks the token endpoint for a token; it returns the status and the
// decoded body.
func (a *api) token(form url.Values) (int, map[string]any) {
	a.t.Helper()
	resp, err := http.PostForm(a.root+"/contoso.onmicrosoft.com/oauth2/v2.0/token", form)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, body
}

func clientCredentials(id, secret string) url.Values {
	return url.Values{
		"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret},
		"scope": {"https://contoso.crm.dynamics.com/.default"},
	}
}

func TestClientCredentials(t *testing.T) {
	a := startWith(t, emulator.Options{Applications: []emulator.Application{
		{ClientID: appClientID, ClientSecret: appSecret, Name: "Sync App"},
	}})
	status, body := a.token(clientCredentials(appClientID, appSecret))
	if status != http.StatusOK || body["token_type"] != "Bearer" || body["expires_in"] != float64(3599) {
		t.Fatalf("token response %d %v", status, body)
	}
	bearer := "Bearer " + body["access_token"].(string)

	who := a.do("GET", "WhoAmI", nil, "Authorization", bearer).must(t, http.StatusOK).obj(t)
	appUser := who["UserId"].(string)
	staticUser := a.get("WhoAmI")["UserId"].(string)
	if appUser == staticUser {
		t.Fatalf("the application and the static token share user %s", appUser)
	}
	if u := a.get("systemusers(" + appUser + ")"); u["fullname"] != "Sync App" || u["applicationid"] != appClientID {
		t.Errorf("application user %v", u)
	}

	r := a.do("POST", "accounts", map[string]any{"name": "by app"}, "Authorization", bearer).must(t, http.StatusNoContent)
	id := strings.TrimPrefix(r.header.Get("OData-EntityId"), a.base+"/")
	row := a.do("GET", id, nil, "Prefer", `odata.include-annotations="*"`).must(t, http.StatusOK).obj(t)
	if row["_createdby_value"] != appUser || row["_modifiedby_value"] != appUser {
		t.Errorf("created by %v, modified by %v; want %s", row["_createdby_value"], row["_modifiedby_value"], appUser)
	}
	if row["_createdby_value@Microsoft.Dynamics.CRM.lookuplogicalname"] != "systemuser" {
		t.Errorf("createdby annotations: %v", row)
	}
	a.do("PATCH", id, map[string]any{"name": "by static token", "createdby@odata.bind": "systemusers(" + staticUser + ")"}).must(t, http.StatusNoContent)
	row = a.get(id)
	if row["_createdby_value"] != appUser || row["_modifiedby_value"] != staticUser {
		t.Errorf("after update: created by %v, modified by %v", row["_createdby_value"], row["_modifiedby_value"])
	}
	if n := len(a.do("GET", "accounts?$filter=_createdby_value%20eq%20"+appUser, nil).must(t, http.StatusOK).rows(t)); n != 1 {
		t.Errorf("%d rows created by the application", n)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	a := startWith(t, emulator.Options{Applications: []emulator.Application{{ClientID: appClientID, ClientSecret: appSecret}}})
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"wrong secret", clientCredentials(appClientID, "guess"), 401, "invalid_client"},
		{"unknown client", clientCredentials("00000000-0000-0000-0000-000000000000", appSecret), 400, "unauthorized_client"},
		{"wrong grant", func() url.Values {
			f := clientCredentials(appClientID, appSecret)
			f.Set("grant_type", "password")
			return f
		}(), 400, "unsupported_grant_type"},
		{"scope without /.default", func() url.Values {
			f := clientCredentials(appClientID, appSecret)
			f.Set("scope", "https://contoso.crm.dynamics.com/user_impersonation")
			return f
		}(), 400, "invalid_scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := a.token(tc.form)
			if status != tc.status || body["error"] != tc.code {
				t.Fatalf("%d %v", status, body)
			}
			desc, _ := body["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS") || strings.Contains(desc, appSecret) || strings.Contains(desc, "guess") {
				t.Errorf("error_description %q", desc)
			}
		})
	}
}

func TestUnauthenticated(t *testing.T) {
	a := startWith(t, emulator.Options{
		Applications:  []emulator.Application{{ClientID: appClientID, ClientSecret: appSecret}},
		TokenLifetime: time.Nanosecond,
	})
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + testToken} {
		r := a.do("GET", "accounts", nil, "Authorization", auth)
		wantErr(t, r, http.StatusUnauthorized, "0x80044302", "Request is not authenticated.")
		if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer authorization_uri="+a.root+"/") {
			t.Errorf("WWW-Authenticate %q", ch)
		}
	}
	// A token that outlived its lifetime is refused as expired.
	_, body := a.token(clientCredentials(appClientID, appSecret))
	r := a.do("GET", "accounts", nil, "Authorization", "Bearer "+body["access_token"].(string))
	wantErr(t, r, http.StatusUnauthorized, "0x80041d52", "The OAuth token has expired.")
	if ch := r.header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
		t.Errorf("WWW-Authenticate %q", ch)
	}
}

func TestApplicationsInSchema(t *testing.T) {
	s, err := emulator.ParseSchema([]byte(testSchema+`
applications:
  - {client_id: app-one, client_secret: one, user_id: 8d7c6b5a-4e3f-4a2b-9c1d-0e1f2a3b4c5d}
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Applications) != 1 || s.Applications[0].ClientSecret != "one" {
		t.Fatalf("applications %+v", s.Applications)
	}
	_, err = emulator.ParseSchema([]byte(testSchema+`
applications:
  - {client_id: app-one, client_secret: one}
  - {client_id: APP-ONE, user_id: nope}
`), "test.yaml")
	for _, want := range []string{"applications[1].client_id: duplicate client id", "applications[1].client_secret: is required", `applications[1].user_id: "nope" is not a GUID`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}
