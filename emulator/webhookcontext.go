package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cockroachdb/apd/v3"
	"github.com/google/uuid"
)

// maxContextBytes is the size above which Dataverse trims a webhook's
// RemoteExecutionContext.
const maxContextBytes = 256 << 10

// The __type hints of DataContractJsonSerializer for the SDK's types.
const (
	typeEntity    = "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"
	typeEntityRef = "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts"
	typeOptionSet = "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts"
	typeMoney     = "Money:http://schemas.microsoft.com/xrm/2011/Contracts"
)

// remoteContext is the RemoteExecutionContext a webhook receives. Fields
// are in the order Dataverse writes them (alphabetical, as
// DataContractJsonSerializer does); collections are arrays of key/value
// pairs and are never null.
type remoteContext struct {
	BusinessUnitID      string         `json:"BusinessUnitId"`
	CorrelationID       string         `json:"CorrelationId"`
	Depth               int            `json:"Depth"`
	InitiatingUserID    string         `json:"InitiatingUserId"`
	InputParameters     []kv           `json:"InputParameters"`
	IsExecutingOffline  bool           `json:"IsExecutingOffline"`
	IsInTransaction     bool           `json:"IsInTransaction"`
	IsOfflinePlayback   bool           `json:"IsOfflinePlayback"`
	IsolationMode       int            `json:"IsolationMode"`
	MessageName         string         `json:"MessageName"`
	Mode                int            `json:"Mode"`
	OperationCreatedOn  string         `json:"OperationCreatedOn"`
	OperationID         string         `json:"OperationId"`
	OrganizationID      string         `json:"OrganizationId"`
	OrganizationName    string         `json:"OrganizationName"`
	OutputParameters    []kv           `json:"OutputParameters"`
	OwningExtension     xrmRef         `json:"OwningExtension"`
	ParentContext       *remoteContext `json:"ParentContext"`
	PostEntityImages    []kv           `json:"PostEntityImages"`
	PreEntityImages     []kv           `json:"PreEntityImages"`
	PrimaryEntityID     string         `json:"PrimaryEntityId"`
	PrimaryEntityName   string         `json:"PrimaryEntityName"`
	RequestID           *string        `json:"RequestId"`
	SecondaryEntityName string         `json:"SecondaryEntityName"`
	SharedVariables     []kv           `json:"SharedVariables"`
	Stage               int            `json:"Stage"`
	UserID              string         `json:"UserId"`
}

// kv is one entry of a parameter, image or attribute collection.
type kv struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// xrmEntity is an SDK Entity. Images carry no __type.
type xrmEntity struct {
	Type            string  `json:"__type,omitempty"`
	Attributes      []kv    `json:"Attributes"`
	EntityState     *int    `json:"EntityState"`
	FormattedValues []kv    `json:"FormattedValues"`
	ID              string  `json:"Id"`
	KeyAttributes   []kv    `json:"KeyAttributes"`
	LogicalName     string  `json:"LogicalName"`
	RelatedEntities []kv    `json:"RelatedEntities"`
	RowVersion      *string `json:"RowVersion"`
}

// xrmRef is an SDK EntityReference; OwningExtension carries no __type.
type xrmRef struct {
	Type          string  `json:"__type,omitempty"`
	ID            string  `json:"Id"`
	KeyAttributes []kv    `json:"KeyAttributes"`
	LogicalName   string  `json:"LogicalName"`
	Name          *string `json:"Name"`
	RowVersion    *string `json:"RowVersion"`
}

// xrmTyped is an OptionSetValue or a Money.
type xrmTyped struct {
	Type  string `json:"__type"`
	Value any    `json:"Value"`
}

// writeEvent is one create, update or delete as the pipeline sees it.
type writeEvent struct {
	message string // Create, Update, Delete
	def     *tableDef
	// before is nil for Create, after is nil for Delete.
	before, after *row
	// sent holds the columns the request set (Create, Update).
	sent map[string]any
	st   stamp
	// correlation is shared by every step of the write.
	correlation uuid.UUID
}

func (ev *writeEvent) id() uuid.UUID {
	if ev.after != nil {
		return ev.after.id
	}
	return ev.before.id
}

// buildContext renders the context step receives for ev as JSON. When it
// exceeds maxContextBytes, ParentContext, InputParameters and the images are
// emptied, as Dataverse trims them, and trimmed is true.
func (d *dispatcher) buildContext(step *compiledStep, ev *writeEvent, operation uuid.UUID) (body []byte, trimmed bool, err error) {
	rc := remoteContext{
		BusinessUnitID:      d.businessUnit.String(),
		CorrelationID:       ev.correlation.String(),
		Depth:               1,
		InitiatingUserID:    ev.st.by.String(),
		InputParameters:     []kv{{"Target", ev.target()}},
		IsInTransaction:     step.sync && step.stage != 10,
		IsolationMode:       1,
		MessageName:         ev.message,
		Mode:                1,
		OperationCreatedOn:  fmt.Sprintf("/Date(%d-0000)/", ev.st.at.UnixMilli()),
		OperationID:         operation.String(),
		OrganizationID:      d.organization.String(),
		OrganizationName:    d.orgName,
		OutputParameters:    []kv{},
		OwningExtension:     xrmRef{ID: step.id.String(), KeyAttributes: []kv{}, LogicalName: "sdkmessageprocessingstep"},
		PostEntityImages:    []kv{},
		PreEntityImages:     []kv{},
		PrimaryEntityID:     ev.id().String(),
		PrimaryEntityName:   ev.def.logical,
		SecondaryEntityName: "none",
		SharedVariables:     []kv{},
		Stage:               step.stage,
		UserID:              ev.st.by.String(),
	}
	if step.sync {
		rc.Mode = 0
	}
	if ev.message == "Create" && step.stage == 40 {
		rc.OutputParameters = append(rc.OutputParameters, kv{"id", ev.after.id.String()})
	}
	for _, im := range step.images {
		if im.pre && ev.before != nil {
			rc.PreEntityImages = append(rc.PreEntityImages, kv{im.alias, imageEntity(ev.def, ev.before, im.cols)})
		}
		if im.post && ev.after != nil && step.stage == 40 {
			rc.PostEntityImages = append(rc.PostEntityImages, kv{im.alias, imageEntity(ev.def, ev.after, im.cols)})
		}
	}
	body, err = marshalContext(&rc)
	if err != nil || len(body) <= maxContextBytes {
		return body, false, err
	}
	rc.ParentContext = nil
	rc.InputParameters, rc.PreEntityImages, rc.PostEntityImages = []kv{}, []kv{}, []kv{}
	body, err = marshalContext(&rc)
	return body, true, err
}

// marshalContext encodes like DataContractJsonSerializer: no HTML escaping,
// and '/' escaped as "\/" (it occurs only inside strings in JSON).
func marshalContext(rc *remoteContext) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rc); err != nil {
		return nil, fmt.Errorf("encode RemoteExecutionContext: %w", err)
	}
	return bytes.ReplaceAll(bytes.TrimRight(b.Bytes(), "\n"), []byte("/"), []byte(`\/`)), nil
}

// target is the Target input parameter: the Entity the request wrote (the
// columns it set, the primary id and the columns the platform set) for
// Create and Update, an EntityReference for Delete.
func (ev *writeEvent) target() any {
	d := ev.def
	if ev.message == "Delete" {
		return xrmRef{Type: typeEntityRef, ID: ev.before.id.String(), KeyAttributes: []kv{}, LogicalName: d.logical}
	}
	platform := []string{"modifiedon", "modifiedby"}
	if ev.message == "Create" {
		platform = []string{"createdon", "createdby", "modifiedon", "modifiedby", "statecode", "statuscode"}
	}
	attrs := []kv{}
	for _, a := range d.attrs {
		_, set := ev.sent[a.name]
		if !set && !a.primaryID && !containsString(platform, a.name) {
			continue
		}
		v := ev.after.get(a)
		if v == nil && !set {
			continue
		}
		attrs = append(attrs, kv{a.name, xrmValue(a, v)})
	}
	return xrmEntity{
		Type: typeEntity, Attributes: attrs, FormattedValues: []kv{}, ID: ev.after.id.String(),
		KeyAttributes: []kv{}, LogicalName: d.logical, RelatedEntities: []kv{},
	}
}

// imageEntity is a snapshot of r with the columns in cols (all when nil);
// null columns are left out, as in Dataverse's images.
func imageEntity(d *tableDef, r *row, cols map[string]bool) xrmEntity {
	attrs := []kv{}
	for _, a := range d.attrs {
		v := r.get(a)
		if v == nil || (cols != nil && !cols[a.name]) {
			continue
		}
		attrs = append(attrs, kv{a.name, xrmValue(a, v)})
	}
	return xrmEntity{
		Attributes: attrs, FormattedValues: []kv{}, ID: r.id.String(),
		KeyAttributes: []kv{}, LogicalName: d.logical, RelatedEntities: []kv{},
	}
}

// xrmValue is the SDK form of a stored value: choices as OptionSetValue,
// money as Money, lookups as EntityReference, dates as /Date(ms)/.
func xrmValue(a *attrDef, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case lookupRef:
		ref := xrmRef{Type: typeEntityRef, ID: x.id.String(), KeyAttributes: []kv{}}
		if x.table != nil {
			ref.LogicalName = x.table.logical
		}
		return ref
	case int64:
		if a.typ == tPicklist || a.typ == tState || a.typ == tStatus {
			return xrmTyped{Type: typeOptionSet, Value: x}
		}
		return x
	case string:
		if a.typ == tMultiSelect {
			// An OptionSetValueCollection: one OptionSetValue per choice.
			var out []xrmTyped
			for _, p := range strings.Split(x, ",") {
				n, _ := strconv.ParseInt(p, 10, 64)
				out = append(out, xrmTyped{Type: typeOptionSet, Value: n})
			}
			return out
		}
		return x
	case *apd.Decimal:
		if a.typ == tMoney {
			return xrmTyped{Type: typeMoney, Value: json.RawMessage(appendValue(nil, a, x))}
		}
		return json.RawMessage(appendValue(nil, a, x))
	case time.Time:
		return fmt.Sprintf("/Date(%d)/", x.UnixMilli())
	case uuid.UUID:
		return x.String()
	}
	return v
}
