package kafka

import (
	"errors"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/dvsync/dvsync/change"
	"github.com/dvsync/dvsync/internal/dvevent"
)

// decodeDataverseEvent reads a RemoteExecutionContext, the JSON body
// Dataverse sends to an Event Hubs service endpoint, exactly as the
// webhook receiver reads it. Its record is the webhook receiver's: Table
// is the Dataverse table's logical name (not the topic, since one endpoint
// carries the events of every table registered on it), so the same
// from-dataverse mappings apply to both routes.
//
// Events made by one of Config.SkipUserIDs (dvsync's application user)
// are skipped, as are messages that change no row (Associate, for
// instance).
func (s *Source) decodeDataverseEvent(m *kafka.Message) (rec change.Record, skip bool, err error) {
	if m.Value == nil {
		return rec, true, nil // nothing Dataverse sends; a compaction tombstone
	}
	ev, err := dvevent.Decode(m.Value)
	if err != nil {
		return rec, false, err
	}
	if s.skipUsers[strings.ToLower(ev.UserID)] || s.skipUsers[strings.ToLower(ev.InitiatingUserID)] {
		return rec, true, nil
	}
	rec, err = ev.Record()
	if errors.Is(err, dvevent.ErrUnsupportedMessage) {
		return rec, true, nil
	}
	return rec, false, err
}
