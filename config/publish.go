package config

import (
	"strconv"
	"strings"

	"github.com/dvsync/dvsync/internal/yamlfile"
)

// Publish streams a database's changes to Kafka topics as they are, without
// mappings, as Debezium does: the first half of the scale-out topology,
// where one dvsync reads PostgreSQL and publishes to partitioned topics and
// N dvsync processes in one consumer group apply them to Dataverse.
type Publish struct {
	// From is a connection of type postgres or sqlserver. Its tables are
	// read for publishing only: no mapping may read the same connection,
	// since a replication slot has one reader.
	From string `yaml:"from"`
	// To is a connection of type kafka.
	To string `yaml:"to"`
	// Tables are the schema-qualified tables to publish. Required.
	Tables []string `yaml:"tables"`
	// TopicPrefix names the topics: <topic_prefix>.<schema>.<table>, as
	// Debezium names them. Default: the from connection's name.
	TopicPrefix string `yaml:"topic_prefix"`
	// Format is debezium (change events with before, after, op and
	// source) or json (the row; a delete is a tombstone). Default:
	// debezium.
	Format string `yaml:"format"`
	// Tombstones follows each Debezium delete event with a tombstone, so
	// a compacted topic forgets the row. Default: true.
	Tombstones *bool `yaml:"tombstones"`
}

// Topic returns the topic a table is published to.
func (p *Publish) Topic(table string) string {
	prefix := p.TopicPrefix
	if prefix == "" {
		prefix = p.From
	}
	return prefix + "." + table
}

// TombstonesOn reports whether deletes are followed by tombstones.
func (p *Publish) TombstonesOn() bool { return p.Tombstones == nil || *p.Tombstones }

func (c *Config) validatePublish(ps *yamlfile.Problems) {
	from := map[string]bool{}
	for i := range c.Publish {
		p := &c.Publish[i]
		path := "publish[" + strconv.Itoa(i) + "]"
		switch conn, ok := c.Connections[p.From]; {
		case p.From == "":
			ps.Add(path+".from", "required: a connection of type postgres or sqlserver")
		case !ok:
			ps.Add(path+".from", "%q is not under connections:", p.From)
		case conn.Type != "postgres" && conn.Type != "sqlserver":
			ps.Add(path+".from", "%q is a %s connection; publish reads postgres or sqlserver", p.From, conn.Type)
		case from[p.From]:
			ps.Add(path+".from", "%q is published twice; list all its tables in one entry", p.From)
		}
		from[p.From] = true
		switch conn, ok := c.Connections[p.To]; {
		case p.To == "":
			ps.Add(path+".to", "required: a connection of type kafka")
		case !ok:
			ps.Add(path+".to", "%q is not under connections:", p.To)
		case conn.Type != "kafka":
			ps.Add(path+".to", "%q is a %s connection, not kafka", p.To, conn.Type)
		}
		if len(p.Tables) == 0 {
			ps.Add(path+".tables", "required: the schema-qualified tables to publish")
		}
		for j, t := range p.Tables {
			if s, n, ok := strings.Cut(t, "."); !ok || s == "" || n == "" {
				ps.Add(path+".tables["+strconv.Itoa(j)+"]", "%q is not schema-qualified; write it as schema.table", t)
			}
		}
		if p.Format != "" {
			oneOf(ps, path+".format", p.Format, "debezium", "json")
		}
	}
}
