// Package dvevent decodes the RemoteExecutionContext that Dataverse posts to
// webhooks, Service Bus queues and Event Hubs when a registered step runs,
// and turns it into a change.Record.
//
// The context is the JSON that .NET's DataContractJsonSerializer writes:
// members in alphabetical order, collections as arrays of {"key", "value"}
// pairs, SDK types tagged with a "__type" hint, dates as "\/Date(ms)\/".
// Decoding is strict where it matters for correctness: the members that
// identify the change must be present and well formed, and every typed
// attribute value must be one this package understands. Members it does not
// use are ignored, so a context with members added by a newer Dataverse
// still decodes.
package dvevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dvsync/dvsync/change"
)

// LookupNameSuffix is appended to a lookup attribute's name to form the
// column that carries the logical name of the table the lookup points at.
// It is the annotation the Web API puts on a lookup's value, so rows from
// webhooks and from delta queries name it the same way.
const LookupNameSuffix = "@Microsoft.Dynamics.CRM.lookuplogicalname"

// Event is one decoded RemoteExecutionContext. It is a plain value: safe to
// read from several goroutines, not to mutate concurrently.
type Event struct {
	// MessageName is the SDK message that ran: Create, Update, Delete,
	// Assign, SetState, Merge, …
	MessageName string
	// PrimaryEntityName is the logical name of the table written.
	PrimaryEntityName string
	// PrimaryEntityID is the row's id in canonical lower-case form.
	PrimaryEntityID string
	// SecondaryEntityName is "none" except for relationship messages.
	SecondaryEntityName string
	// UserID is the user the step ran as; InitiatingUserID the user who
	// made the request (they differ under impersonation).
	UserID, InitiatingUserID string
	BusinessUnitID           string
	OrganizationID           string
	OrganizationName         string
	// RequestID identifies the request; empty when Dataverse sent null,
	// which it does for most asynchronous steps.
	RequestID     string
	CorrelationID string
	// OperationID identifies the system job of an asynchronous step; a
	// retried delivery of the same job carries the same OperationID.
	OperationID string
	// OperationCreatedOn is when the operation was created, in UTC.
	OperationCreatedOn time.Time
	// Depth is the plug-in depth: 1 for a request from outside, more when
	// a plug-in or workflow wrote the row.
	Depth int
	// Stage is 10 (pre-validation), 20 (pre-operation), 30 (main) or 40
	// (post-operation); Mode is 0 synchronous, 1 asynchronous.
	Stage, Mode int
	// InputParameters, OutputParameters and SharedVariables are the
	// context's collections, values kept as raw JSON.
	InputParameters  Parameters
	OutputParameters Parameters
	SharedVariables  Parameters
	// PreEntityImages and PostEntityImages are the registered images, in
	// the order sent, keyed by their alias.
	PreEntityImages  []Image
	PostEntityImages []Image
	// Target is the InputParameters' Target (for SetState the
	// EntityMoniker) when it is an Entity or an EntityReference; nil when
	// the message has none.
	Target *Entity
	// ParentContext is the context of the operation that caused this one
	// (stage 30 steps, plug-in chains); nil when Dataverse sent null.
	ParentContext *Event
	// SizeExceeded is set by the caller (from the
	// x-ms-dynamics-msg-size-exceeded header) when Dataverse trimmed the
	// parameters and images; Record then has only the key to go on.
	SizeExceeded bool
}

// Entity is an SDK Entity or EntityReference with decoded attributes.
type Entity struct {
	LogicalName string
	// ID is the row id in canonical lower-case form; empty for an Entity
	// that does not carry one (a Create target before the platform set it
	// is sent with the all-zero id, which is kept).
	ID string
	// Attributes are the decoded values in the order sent; nil for an
	// EntityReference. A lookup attribute is its target's id, followed by
	// a column named attribute+LookupNameSuffix holding the target table.
	Attributes change.Row
	// Reference is true when the value was an EntityReference.
	Reference bool
}

// Image is one pre- or post-image.
type Image struct {
	Alias  string
	Entity Entity
}

// Parameter is one entry of a parameter collection.
type Parameter struct {
	Key   string
	Value json.RawMessage
}

// Parameters is a parameter collection in the order sent.
type Parameters []Parameter

// Get returns the raw value of the named parameter, and whether it is
// present.
func (p Parameters) Get(key string) (json.RawMessage, bool) {
	for _, kv := range p {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// String returns the named parameter's value when it is a JSON string.
func (p Parameters) String(key string) (string, bool) {
	raw, ok := p.Get(key)
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// wireContext is the context as serialized. Pointers tell absent or null
// members from zero values where Decode insists on them.
type wireContext struct {
	BusinessUnitID      string          `json:"BusinessUnitId"`
	CorrelationID       string          `json:"CorrelationId"`
	Depth               int             `json:"Depth"`
	InitiatingUserID    string          `json:"InitiatingUserId"`
	InputParameters     []wireKV        `json:"InputParameters"`
	MessageName         string          `json:"MessageName"`
	Mode                int             `json:"Mode"`
	OperationCreatedOn  string          `json:"OperationCreatedOn"`
	OperationID         string          `json:"OperationId"`
	OrganizationID      string          `json:"OrganizationId"`
	OrganizationName    string          `json:"OrganizationName"`
	OutputParameters    []wireKV        `json:"OutputParameters"`
	ParentContext       json.RawMessage `json:"ParentContext"`
	PostEntityImages    []wireKV        `json:"PostEntityImages"`
	PreEntityImages     []wireKV        `json:"PreEntityImages"`
	PrimaryEntityID     string          `json:"PrimaryEntityId"`
	PrimaryEntityName   string          `json:"PrimaryEntityName"`
	RequestID           *string         `json:"RequestId"`
	SecondaryEntityName string          `json:"SecondaryEntityName"`
	SharedVariables     []wireKV        `json:"SharedVariables"`
	Stage               int             `json:"Stage"`
	UserID              string          `json:"UserId"`
}

type wireKV struct {
	Key   *string         `json:"key"`
	Value json.RawMessage `json:"value"`
}

// maxParentDepth bounds ParentContext nesting, which Dataverse keeps
// shallow; a deeper chain is not something it sends.
const maxParentDepth = 8

// Decode parses body as a RemoteExecutionContext. It fails, naming the
// member, when the body is not one JSON object, when MessageName,
// PrimaryEntityName, PrimaryEntityId, UserId or OperationCreatedOn is
// missing or malformed, or when an attribute of the target or an image has
// a value this package cannot decode. Error strings never include
// attribute values.
func Decode(body []byte) (*Event, error) {
	return decode(body, 0)
}

func decode(body []byte, depth int) (*Event, error) {
	var w wireContext
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("dvevent: not a RemoteExecutionContext: %w", err)
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("dvevent: data after the RemoteExecutionContext object")
	}
	ev := &Event{
		MessageName:         w.MessageName,
		PrimaryEntityName:   w.PrimaryEntityName,
		SecondaryEntityName: w.SecondaryEntityName,
		BusinessUnitID:      strings.ToLower(w.BusinessUnitID),
		OrganizationID:      strings.ToLower(w.OrganizationID),
		OrganizationName:    w.OrganizationName,
		CorrelationID:       strings.ToLower(w.CorrelationID),
		OperationID:         strings.ToLower(w.OperationID),
		Depth:               w.Depth,
		Stage:               w.Stage,
		Mode:                w.Mode,
	}
	if ev.MessageName == "" {
		return nil, errors.New("dvevent: MessageName is missing")
	}
	if ev.PrimaryEntityName == "" {
		return nil, errors.New("dvevent: PrimaryEntityName is missing")
	}
	var err error
	if ev.PrimaryEntityID, err = canonicalGUID(w.PrimaryEntityID); err != nil {
		return nil, fmt.Errorf("dvevent: PrimaryEntityId: %w", err)
	}
	if ev.UserID, err = canonicalGUID(w.UserID); err != nil {
		return nil, fmt.Errorf("dvevent: UserId: %w", err)
	}
	if w.InitiatingUserID != "" {
		if ev.InitiatingUserID, err = canonicalGUID(w.InitiatingUserID); err != nil {
			return nil, fmt.Errorf("dvevent: InitiatingUserId: %w", err)
		}
	}
	if w.RequestID != nil {
		if ev.RequestID, err = canonicalGUID(*w.RequestID); err != nil {
			return nil, fmt.Errorf("dvevent: RequestId: %w", err)
		}
	}
	if w.OperationCreatedOn == "" {
		return nil, errors.New("dvevent: OperationCreatedOn is missing")
	}
	if ev.OperationCreatedOn, err = ParseDate(w.OperationCreatedOn); err != nil {
		return nil, fmt.Errorf("dvevent: OperationCreatedOn: %w", err)
	}
	if w.InputParameters == nil {
		return nil, errors.New("dvevent: InputParameters is missing")
	}
	for _, c := range []struct {
		name string
		in   []wireKV
		out  *Parameters
	}{
		{"InputParameters", w.InputParameters, &ev.InputParameters},
		{"OutputParameters", w.OutputParameters, &ev.OutputParameters},
		{"SharedVariables", w.SharedVariables, &ev.SharedVariables},
	} {
		if *c.out, err = parameters(c.in); err != nil {
			return nil, fmt.Errorf("dvevent: %s: %w", c.name, err)
		}
	}
	if ev.PreEntityImages, err = images(w.PreEntityImages); err != nil {
		return nil, fmt.Errorf("dvevent: PreEntityImages: %w", err)
	}
	if ev.PostEntityImages, err = images(w.PostEntityImages); err != nil {
		return nil, fmt.Errorf("dvevent: PostEntityImages: %w", err)
	}
	targetName := "Target"
	if ev.MessageName == "SetState" || ev.MessageName == "SetStateDynamicEntity" {
		targetName = "EntityMoniker"
	}
	if raw, ok := ev.InputParameters.Get(targetName); ok && !isNull(raw) {
		t, err := decodeEntity(raw)
		if err != nil {
			return nil, fmt.Errorf("dvevent: InputParameters %s: %w", targetName, err)
		}
		ev.Target = &t
	}
	if len(w.ParentContext) > 0 && !isNull(w.ParentContext) {
		if depth >= maxParentDepth {
			return nil, errors.New("dvevent: ParentContext nested too deeply")
		}
		if ev.ParentContext, err = decode(w.ParentContext, depth+1); err != nil {
			return nil, fmt.Errorf("ParentContext: %w", err)
		}
	}
	return ev, nil
}

func parameters(in []wireKV) (Parameters, error) {
	out := make(Parameters, 0, len(in))
	for i, kv := range in {
		if kv.Key == nil {
			return nil, fmt.Errorf("entry %d has no key", i)
		}
		out = append(out, Parameter{Key: *kv.Key, Value: kv.Value})
	}
	return out, nil
}

func images(in []wireKV) ([]Image, error) {
	out := make([]Image, 0, len(in))
	for i, kv := range in {
		if kv.Key == nil {
			return nil, fmt.Errorf("entry %d has no key", i)
		}
		e, err := decodeEntity(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", *kv.Key, err)
		}
		out = append(out, Image{Alias: *kv.Key, Entity: e})
	}
	return out, nil
}

// Tag returns the "tag" shared variable, which a caller sets with the Web
// API's tag query parameter (or the SDK's tag parameter) to mark its own
// writes; empty when absent.
func (ev *Event) Tag() string {
	s, _ := ev.SharedVariables.String("tag")
	return s
}

// Version returns the row's versionnumber after the change, from the
// post-images or the target, or for a delete from the pre-images; ok is
// false when none of them carries it.
func (ev *Event) Version() (v int64, ok bool) {
	find := func(r change.Row) bool {
		if x, has := r.Get("versionnumber"); has && x.Kind() == change.KindInt {
			v, ok = x.Int(), true
		}
		return ok
	}
	if ev.MessageName == "Delete" {
		for _, im := range ev.PreEntityImages {
			if find(im.Entity.Attributes) {
				return v, ok
			}
		}
		return 0, false
	}
	for _, im := range ev.PostEntityImages {
		if find(im.Entity.Attributes) {
			return v, ok
		}
	}
	if ev.Target != nil {
		find(ev.Target.Attributes)
	}
	return v, ok
}

// ParseDate parses DataContractJsonSerializer's "/Date(ms)/" or
// "/Date(ms+hhmm)/" (the escaped "\/" form decodes to the same string).
// The milliseconds count from the Unix epoch in UTC whatever the offset,
// which only records the writer's zone; the time returned is in UTC.
func ParseDate(s string) (time.Time, error) {
	if !strings.HasPrefix(s, "/Date(") || !strings.HasSuffix(s, ")/") {
		return time.Time{}, errors.New(`not a "/Date(ms)/" value`)
	}
	body := s[len("/Date(") : len(s)-len(")/")]
	end := len(body)
	if i := strings.LastIndexAny(body, "+-"); i > 0 {
		zone := body[i+1:]
		if len(zone) != 4 || strings.Trim(zone, "0123456789") != "" {
			return time.Time{}, errors.New(`malformed offset in a "/Date(ms)/" value`)
		}
		end = i
	}
	var ms int64
	if _, err := fmt.Sscan(body[:end], &ms); err != nil || strings.Trim(body[:end], "-0123456789") != "" {
		return time.Time{}, errors.New(`malformed milliseconds in a "/Date(ms)/" value`)
	}
	return time.UnixMilli(ms).UTC(), nil
}

// canonicalGUID checks s is a hyphenated GUID (braces allowed) and returns
// it in lower case.
func canonicalGUID(s string) (string, error) {
	if s == "" {
		return "", errors.New("missing")
	}
	v, err := change.ParseUUID(s)
	if err != nil || len(strings.Trim(s, "{}")) != 36 {
		return "", errors.New("not a GUID")
	}
	return v.String(), nil
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
