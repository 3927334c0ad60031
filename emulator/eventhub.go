package emulator

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
)

// Kafka headers carrying the brokered-message properties Dataverse sets on
// messages to Azure endpoints, as plain UTF-8 text.
const (
	claimEntity         = "http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName"
	claimRequest        = "http://schemas.microsoft.com/xrm/2011/Claims/RequestName"
	claimOrganization   = "http://schemas.microsoft.com/xrm/2011/Claims/Organization"
	claimUser           = "http://schemas.microsoft.com/xrm/2011/Claims/User"
	claimInitiatingUser = "http://schemas.microsoft.com/xrm/2011/Claims/InitiatingUser"
)

// hubBatch bounds the runs one produce call publishes.
const hubBatch = 500

// eventHub publishes contexts to one EventHub endpoint's topic. Its runs
// have their own queue and a single loop, rather than the webhook
// workers, so that they are published in the order the writes committed
// and the events of one row reach its partition in order.
type eventHub struct {
	name      string
	topic     string
	queue     *runQueue // closed by dispatcher.shutdown
	w         *kafka.Writer
	closeOnce sync.Once
}

func newEventHub(e EventHub, queueLimit int) *eventHub {
	return &eventHub{
		name:  e.Name,
		topic: e.Topic,
		queue: newRunQueue(queueLimit),
		w: &kafka.Writer{
			Addr:  kafka.TCP(e.Brokers...),
			Topic: e.Topic,
			// Keyed by the row id, so that a row's events stay in order
			// on one partition.
			Balancer:     &kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll,
			// Each batch is one synchronous write; without a short
			// linger it would wait out kafka-go's default second.
			BatchTimeout: 2 * time.Millisecond,
			BatchSize:    hubBatch,
			WriteTimeout: defaultWebhookTimeout,
			MaxAttempts:  3,
		},
	}
}

// publishLoop publishes the hub's runs in queue order, each time taking
// every run already waiting (up to hubBatch) into one produce call.
func (d *dispatcher) publishLoop(h *eventHub) {
	defer d.wg.Done()
	batch := make([]*delivery, 0, hubBatch)
	for {
		var ok bool
		if batch, ok = h.queue.take(batch[:0], hubBatch); !ok {
			return
		}
		d.publish(h, batch)
	}
}

// publish sends the contexts of runs, keyed by their primary entity ids,
// and records a failure for each run whose message the brokers did not
// acknowledge.
func (d *dispatcher) publish(h *eventHub, runs []*delivery) {
	if d.ctx.Err() != nil {
		for _, r := range runs {
			d.record(r.step, r.ev, 0, 0, "the emulator was closed before the step ran")
		}
		return
	}
	msgs := make([]kafka.Message, 0, len(runs))
	sent := make([]*delivery, 0, len(runs))
	for _, r := range runs {
		body, trimmed, err := d.buildContext(r.step, r.ev, uuid.New())
		if err != nil {
			d.record(r.step, r.ev, 0, 0, err.Error())
			continue
		}
		msgs = append(msgs, d.eventMessage(r.ev, body, trimmed))
		sent = append(sent, r)
	}
	if len(msgs) == 0 {
		return
	}
	err := h.w.WriteMessages(d.ctx, msgs...)
	if err == nil {
		return
	}
	var werrs kafka.WriteErrors
	for i, r := range sent {
		e := err
		if errors.As(err, &werrs) && len(werrs) == len(sent) {
			if e = werrs[i]; e == nil {
				continue
			}
		}
		d.record(r.step, r.ev, 0, 1, fmt.Sprintf("publish to event hub %s (topic %s): %v", h.name, h.topic, e))
	}
}

// eventMessage is the Kafka message of one context, with the properties
// Dataverse sets on messages to Azure endpoints as headers.
func (d *dispatcher) eventMessage(ev *writeEvent, body []byte, trimmed bool) kafka.Message {
	by := []byte(ev.st.by.String())
	m := kafka.Message{
		Key:   []byte(ev.id().String()),
		Value: body,
		Headers: []kafka.Header{
			{Key: "Content-Type", Value: []byte("application/json")},
			{Key: claimEntity, Value: []byte(ev.def.logical)},
			{Key: claimRequest, Value: []byte(ev.message)},
			{Key: claimOrganization, Value: []byte(d.orgName)},
			{Key: claimUser, Value: by},
			{Key: claimInitiatingUser, Value: by},
		},
	}
	if trimmed {
		m.Headers = append(m.Headers, kafka.Header{Key: "MessageMaxSizeExceeded", Value: []byte("true")})
	}
	return m
}

// close releases the hub's connections; later calls do nothing.
func (h *eventHub) close() {
	h.closeOnce.Do(func() { _ = h.w.Close() })
}
