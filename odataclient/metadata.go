package odataclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
)

// Attribute is a column's metadata, from EntityDefinitions(…)/Attributes.
type Attribute struct {
	// LogicalName is the column's logical name, e.g. "accountnumber".
	LogicalName string
	// Type is the AttributeType: "String", "Memo", "Integer", "BigInt",
	// "Decimal", "Double", "Money", "Boolean", "DateTime",
	// "Uniqueidentifier", "Picklist", "Lookup", …
	Type string
	// MaxLength bounds String and Memo values; zero when the service did
	// not say.
	MaxLength int
	// Precision is the number of decimal places of Decimal, Double and
	// Money values; nil when the service did not say.
	Precision *int
	// MinValue and MaxValue bound numeric values; nil when not sent.
	MinValue, MaxValue *float64
	// Options are the values a Picklist accepts, when the service sent the
	// column's OptionSet; nil otherwise.
	Options []int
	// Targets are the tables a Lookup may point at.
	Targets []string
	// PrimaryID marks the table's primary key column.
	PrimaryID bool
	// ValidForCreate and ValidForUpdate say whether writes may set it.
	ValidForCreate, ValidForUpdate bool
}

// AlternateKey is an alternate key's metadata, from
// EntityDefinitions(…)/Keys.
type AlternateKey struct {
	// Name is the key's logical name.
	Name string
	// Attributes are the key's columns, in the key's order.
	Attributes []string
	// Status is EntityKeyIndexStatus: only an "Active" key addresses rows.
	Status string
}

// attributeJSON is AttributeMetadata as sent; type-specific properties
// (MaxLength, Precision, OptionSet, …) appear on the derived types.
type attributeJSON struct {
	LogicalName      string
	AttributeType    string
	MaxLength        *int
	Precision        *int
	MinValue         *float64
	MaxValue         *float64
	Targets          []string
	IsPrimaryID      bool `json:"IsPrimaryId"`
	IsValidForCreate *bool
	IsValidForUpdate *bool
	OptionSet        *struct {
		Options []struct{ Value int }
	}
}

// Attributes reads the columns of a table by logical name. An unknown
// table is an *Error with StatusCode 404.
func (c *Client) Attributes(ctx context.Context, table string) ([]Attribute, error) {
	var doc struct{ Value []attributeJSON }
	if err := c.getMetadata(ctx, table, "Attributes", &doc); err != nil {
		return nil, err
	}
	out := make([]Attribute, 0, len(doc.Value))
	for _, a := range doc.Value {
		attr := Attribute{
			LogicalName: a.LogicalName, Type: a.AttributeType, Precision: a.Precision,
			MinValue: a.MinValue, MaxValue: a.MaxValue, Targets: a.Targets, PrimaryID: a.IsPrimaryID,
			ValidForCreate: a.IsValidForCreate == nil || *a.IsValidForCreate,
			ValidForUpdate: a.IsValidForUpdate == nil || *a.IsValidForUpdate,
		}
		if a.MaxLength != nil {
			attr.MaxLength = *a.MaxLength
		}
		if a.OptionSet != nil {
			attr.Options = make([]int, len(a.OptionSet.Options))
			for i, o := range a.OptionSet.Options {
				attr.Options[i] = o.Value
			}
		}
		out = append(out, attr)
	}
	return out, nil
}

// AlternateKeys reads the alternate keys of a table by logical name. An
// unknown table is an *Error with StatusCode 404.
func (c *Client) AlternateKeys(ctx context.Context, table string) ([]AlternateKey, error) {
	var doc struct {
		Value []struct {
			LogicalName          string
			KeyAttributes        []string
			EntityKeyIndexStatus string
		}
	}
	if err := c.getMetadata(ctx, table, "Keys", &doc); err != nil {
		return nil, err
	}
	out := make([]AlternateKey, len(doc.Value))
	for i, k := range doc.Value {
		out[i] = AlternateKey{Name: k.LogicalName, Attributes: k.KeyAttributes, Status: k.EntityKeyIndexStatus}
	}
	return out, nil
}

func (c *Client) getMetadata(ctx context.Context, table, collection string, into any) error {
	key := Key{Alternate: []KeyPart{{Name: "LogicalName", Value: table}}}
	u, err := c.resourceURL("EntityDefinitions", &key, "")
	if err != nil {
		return err
	}
	u += "/" + collection
	resp, err := c.do(ctx, &request{method: http.MethodGet, url: u})
	if err != nil {
		return err
	}
	if err := json.Unmarshal(resp.body, into); err != nil {
		return fmt.Errorf("odataclient: GET %s: decoding %s: %w", pathOf(u), collection, err)
	}
	return nil
}

// TableMetadata is what a MetadataCache knows of one table.
type TableMetadata struct {
	EntityDefinition
	// Attributes maps each column's logical name to its metadata.
	Attributes map[string]Attribute
	// Keys are the table's alternate keys.
	Keys []AlternateKey
}

// MetadataCache reads each table's metadata once (its definition, columns
// and alternate keys: three requests) and keeps it for the life of the
// cache. It is safe for concurrent use: callers asking for the same table
// at the same time share one set of requests. A failed read is not kept,
// so the next call asks again. Returned values are shared: do not modify
// them.
type MetadataCache struct {
	client *Client

	mu     sync.Mutex
	tables map[string]*metadataLoad
}

type metadataLoad struct {
	done chan struct{}
	md   *TableMetadata
	err  error
}

// NewMetadataCache returns an empty cache reading through c.
func NewMetadataCache(c *Client) *MetadataCache {
	return &MetadataCache{client: c, tables: make(map[string]*metadataLoad)}
}

// Table returns table's metadata, reading it on first use. A caller whose
// ctx ends while another caller's read is under way returns ctx's error.
func (m *MetadataCache) Table(ctx context.Context, table string) (*TableMetadata, error) {
	m.mu.Lock()
	l, waiting := m.tables[table]
	if !waiting {
		l = &metadataLoad{done: make(chan struct{})}
		m.tables[table] = l
	}
	m.mu.Unlock()
	if waiting {
		select {
		case <-l.done:
			return l.md, l.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l.md, l.err = m.load(ctx, table)
	if l.err != nil {
		m.mu.Lock()
		delete(m.tables, table)
		m.mu.Unlock()
	}
	close(l.done)
	return l.md, l.err
}

// Forget drops table's cached metadata, e.g. after a schema change, so the
// next Table call reads it again.
func (m *MetadataCache) Forget(table string) {
	m.mu.Lock()
	if l, ok := m.tables[table]; ok {
		select {
		case <-l.done:
			delete(m.tables, table)
		default: // a read is under way; its result stands
		}
	}
	m.mu.Unlock()
}

func (m *MetadataCache) load(ctx context.Context, table string) (*TableMetadata, error) {
	def, err := m.client.EntityDefinition(ctx, table)
	if err != nil {
		return nil, err
	}
	attrs, err := m.client.Attributes(ctx, table)
	if err != nil {
		return nil, err
	}
	keys, err := m.client.AlternateKeys(ctx, table)
	if err != nil {
		return nil, err
	}
	md := &TableMetadata{EntityDefinition: def, Attributes: make(map[string]Attribute, len(attrs)), Keys: keys}
	for _, a := range attrs {
		md.Attributes[a.LogicalName] = a
	}
	return md, nil
}
