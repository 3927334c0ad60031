package emulator

import (
	"fmt"
	"strings"
)

// EventHub is a service endpoint with contract EventHub (7) and message
// format JSON, reached through Event Hubs' Kafka endpoint: after a
// matching create, update or delete the emulator publishes the same
// RemoteExecutionContext it posts to webhooks as one message on Topic.
type EventHub struct {
	// Name is the service endpoint's name; unique among webhooks and
	// event hubs.
	Name string `yaml:"name"`
	// Brokers are the bootstrap addresses (host:port) of the Kafka
	// endpoint: <namespace>.servicebus.windows.net:9093 in Azure, a
	// local broker here.
	Brokers []string `yaml:"brokers"`
	// Topic is the event hub's name, which its Kafka endpoint serves as
	// a topic. It must exist: the emulator does not create it.
	Topic string `yaml:"topic"`
	// MessageFormat is "json", the default and the only format the
	// emulator produces (Dataverse also offers XML).
	MessageFormat string `yaml:"message_format,omitempty"`
	// Steps are the sdkmessageprocessingstep rows bound to the endpoint.
	// They are asynchronous and post-operation: Azure endpoints take
	// asynchronous steps only.
	Steps []WebhookStep `yaml:"steps"`
}

func validateEventHubs(s *Schema) []problem {
	var probs []problem
	add := func(path, format string, args ...any) {
		probs = append(probs, problem{path, fmt.Sprintf(format, args...)})
	}
	tables := map[string]*Table{}
	for i := range s.Tables {
		tables[s.Tables[i].LogicalName] = &s.Tables[i]
	}
	names := map[string]string{}
	for i, w := range s.Webhooks {
		names[w.Name] = fmt.Sprintf("webhooks[%d]", i)
	}
	for i, e := range s.EventHubs {
		path := fmt.Sprintf("eventhubs[%d]", i)
		if e.Name == "" {
			add(path+".name", "is required")
		} else if other, dup := names[e.Name]; dup {
			add(path+".name", "duplicate service endpoint name %q (also %s)", e.Name, other)
		}
		names[e.Name] = path
		if len(e.Brokers) == 0 {
			add(path+".brokers", "at least one bootstrap address is required")
		}
		for j, b := range e.Brokers {
			if k := strings.LastIndexByte(b, ':'); k <= 0 || k == len(b)-1 {
				add(fmt.Sprintf("%s.brokers[%d]", path, j), "%q is not host:port", b)
			}
		}
		if e.Topic == "" {
			add(path+".topic", "is required")
		}
		if e.MessageFormat != "" && e.MessageFormat != "json" {
			add(path+".message_format", "%q is not supported (want json)", e.MessageFormat)
		}
		if len(e.Steps) == 0 {
			add(path+".steps", "at least one step is required")
		}
		for j, st := range e.Steps {
			sp := fmt.Sprintf("%s.steps[%d]", path, j)
			probs = append(probs, validateStep(&st, sp, tables)...)
			if st.Mode == "sync" {
				add(sp+".mode", "event hub steps are asynchronous only")
			}
		}
	}
	return probs
}
