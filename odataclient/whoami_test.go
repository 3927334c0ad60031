package odataclient

import (
	"net/http"
	"testing"
)

func TestWhoAmI(t *testing.T) {
	const body = `{"@odata.context":"x","BusinessUnitId":"6f202e6c-e471-ec11-8941-000d3a8ff0d5","UserId":"88057198-a9b1-ec11-9840-00224821d3ec","OrganizationId":"e34c95a5-f34c-430c-a05e-a23437e5b9fa"}`
	s := newServer(t, jsonReply(200, body))
	id, err := newClient(t, s).WhoAmI(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if r := s.only(t); r.Method != http.MethodGet || r.RequestURI != "/api/data/v9.2/WhoAmI" {
		t.Fatalf("request = %s %s", r.Method, r.RequestURI)
	}
	if id.UserID != "88057198-a9b1-ec11-9840-00224821d3ec" || id.BusinessUnitID == "" || id.OrganizationID == "" {
		t.Errorf("WhoAmI = %+v", id)
	}
	if _, err := newClient(t, newServer(t, jsonReply(200, `{}`))).WhoAmI(t.Context()); err == nil {
		t.Error("an answer without UserId was accepted")
	}
}
