package odataclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Identity is the answer of the WhoAmI function: the user the client's
// token authenticates as.
type Identity struct {
	// UserID is the systemuserid of the caller: for an application, its
	// application user. Changes it makes carry it as modifiedby and as the
	// UserId of their change events.
	UserID string `json:"UserId"`
	// BusinessUnitID is the caller's business unit.
	BusinessUnitID string `json:"BusinessUnitId"`
	// OrganizationID is the environment's organization.
	OrganizationID string `json:"OrganizationId"`
}

// WhoAmI asks who the client authenticates as.
func (c *Client) WhoAmI(ctx context.Context) (Identity, error) {
	u := c.apiString + "WhoAmI"
	resp, err := c.do(ctx, &request{method: http.MethodGet, url: u})
	if err != nil {
		return Identity{}, err
	}
	var id Identity
	if err := json.Unmarshal(resp.body, &id); err != nil {
		return Identity{}, fmt.Errorf("odataclient: GET WhoAmI: %w", err)
	}
	if id.UserID == "" {
		return Identity{}, fmt.Errorf("odataclient: GET WhoAmI: the answer has no UserId")
	}
	return id, nil
}
