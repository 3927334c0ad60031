package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// Inbox buckets: one top-level bucket, in it one bucket per inbox name,
// in each the four kinds of data an inbox holds.
var (
	bucketInboxes      = []byte("inboxes")
	bucketInboxEntries = []byte("entries")
	bucketInboxMarks   = []byte("marks")
	bucketInboxCursors = []byte("cursors")
	bucketInboxKept    = []byte("kept")
)

// inboxBucket returns the named inbox's sub-bucket, creating the buckets
// on the way when tx is writable; nil when a read-only tx finds none.
func inboxBucket(tx *bbolt.Tx, inbox string, sub []byte) (*bbolt.Bucket, error) {
	if inbox == "" {
		return nil, errors.New("empty inbox name")
	}
	if !tx.Writable() {
		top := tx.Bucket(bucketInboxes)
		if top == nil {
			return nil, nil
		}
		b := top.Bucket([]byte(inbox))
		if b == nil {
			return nil, nil
		}
		return b.Bucket(sub), nil
	}
	top, err := tx.CreateBucketIfNotExists(bucketInboxes)
	if err != nil {
		return nil, err
	}
	b, err := top.CreateBucketIfNotExists([]byte(inbox))
	if err != nil {
		return nil, err
	}
	return b.CreateBucketIfNotExists(sub)
}

func markKey(table, id string) []byte {
	k := make([]byte, 0, len(table)+1+len(id))
	k = append(k, table...)
	k = append(k, 0)
	return append(k, id...)
}

// markValue encodes a mark as its version and deleted flag, followed by
// its foreign version when that differs from the version: most marks
// keep the 9 bytes they had before marks had a foreign version.
func markValue(m *InboxMark) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 17), uint64(m.Version))
	if m.Deleted {
		v = append(v, 1)
	} else {
		v = append(v, 0)
	}
	if m.Foreign != m.Version {
		v = binary.BigEndian.AppendUint64(v, uint64(m.Foreign))
	}
	return v
}

// parseMark decodes a markValue into m.
func parseMark(v []byte, m *InboxMark) bool {
	if len(v) != 9 && len(v) != 17 {
		return false
	}
	m.Version, m.Deleted = int64(binary.BigEndian.Uint64(v)), v[8] == 1
	m.Foreign = m.Version
	if len(v) == 17 {
		m.Foreign = int64(binary.BigEndian.Uint64(v[9:]))
	}
	return true
}

// InboxAppend writes w to the named inbox in one transaction and returns
// the sequence number of its first entry (zero when w has none).
func (s *Bolt) InboxAppend(ctx context.Context, inbox string, w InboxWrite) (first uint64, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	err = s.db.Update(func(tx *bbolt.Tx) error {
		entries, err := inboxBucket(tx, inbox, bucketInboxEntries)
		if err != nil {
			return err
		}
		for i, e := range w.Entries {
			seq, err := entries.NextSequence()
			if err != nil {
				return err
			}
			if i == 0 {
				first = seq
			}
			if err := entries.Put(binary.BigEndian.AppendUint64(nil, seq), e); err != nil {
				return err
			}
		}
		if len(w.Marks) > 0 {
			marks, err := inboxBucket(tx, inbox, bucketInboxMarks)
			if err != nil {
				return err
			}
			for i := range w.Marks {
				m := &w.Marks[i]
				if err := marks.Put(markKey(m.Table, m.ID), markValue(m)); err != nil {
					return err
				}
			}
		}
		if len(w.Cursors) > 0 {
			cursors, err := inboxBucket(tx, inbox, bucketInboxCursors)
			if err != nil {
				return err
			}
			for name, v := range w.Cursors {
				if v == nil {
					err = cursors.Delete([]byte(name))
				} else {
					err = cursors.Put([]byte(name), v)
				}
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("state: append to inbox %s: %w", inbox, err)
	}
	return first, nil
}

// InboxEntries returns up to limit entries (all when limit <= 0) of the
// named inbox with a sequence number above after, in order.
func (s *Bolt) InboxEntries(ctx context.Context, inbox string, after uint64, limit int) ([]InboxEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []InboxEntry
	err := s.db.View(func(tx *bbolt.Tx) error {
		b, err := inboxBucket(tx, inbox, bucketInboxEntries)
		if b == nil || err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.Seek(binary.BigEndian.AppendUint64(nil, after+1)); k != nil; k, v = c.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			out = append(out, InboxEntry{Seq: binary.BigEndian.Uint64(k), Data: slices.Clone(v)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read inbox %s: %w", inbox, err)
	}
	return out, nil
}

// InboxAck removes the named inbox's entries up to and including through.
func (s *Bolt) InboxAck(ctx context.Context, inbox string, through uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := inboxBucket(tx, inbox, bucketInboxEntries)
		if err != nil {
			return err
		}
		end := binary.BigEndian.AppendUint64(nil, through)
		c := b.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, end) <= 0; k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: ack inbox %s through %d: %w", inbox, through, err)
	}
	return nil
}

// InboxMarks returns every mark of the named inbox, ordered by table and
// id.
func (s *Bolt) InboxMarks(ctx context.Context, inbox string) ([]InboxMark, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []InboxMark
	err := s.db.View(func(tx *bbolt.Tx) error {
		b, err := inboxBucket(tx, inbox, bucketInboxMarks)
		if b == nil || err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			table, id, ok := bytes.Cut(k, []byte{0})
			m := InboxMark{Table: string(table), ID: string(id)}
			if !ok || !parseMark(v, &m) {
				return fmt.Errorf("malformed mark %q", k)
			}
			out = append(out, m)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: read marks of inbox %s: %w", inbox, err)
	}
	return out, nil
}

// InboxPruneMarks removes the named inbox's marks of table whose version
// is below below.
func (s *Bolt) InboxPruneMarks(ctx context.Context, inbox, table string, below int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	prefix := markKey(table, "")
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := inboxBucket(tx, inbox, bucketInboxMarks)
		if err != nil {
			return err
		}
		var doomed [][]byte
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) >= 8 && int64(binary.BigEndian.Uint64(v)) < below {
				doomed = append(doomed, slices.Clone(k))
			}
		}
		for _, k := range doomed {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: prune marks of inbox %s: %w", inbox, err)
	}
	return nil
}

// InboxCursor returns the named inbox's cursor, or nil if it is not set.
func (s *Bolt) InboxCursor(ctx context.Context, inbox, name string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := s.db.View(func(tx *bbolt.Tx) error {
		b, err := inboxBucket(tx, inbox, bucketInboxCursors)
		if b == nil || err != nil {
			return err
		}
		if v := b.Get([]byte(name)); v != nil {
			out = append([]byte{}, v...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read cursor %s of inbox %s: %w", name, inbox, err)
	}
	return out, nil
}

// InboxKeep stores a refused body for inspection; its ID and, when zero,
// its Time are set by the store.
func (s *Bolt) InboxKeep(ctx context.Context, inbox string, k KeptBody) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if k.Time.IsZero() {
		k.Time = time.Now()
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := inboxBucket(tx, inbox, bucketInboxKept)
		if err != nil {
			return err
		}
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(nil, uint64(k.Time.UnixNano()))
		v = binary.AppendUvarint(v, uint64(len(k.Reason)))
		v = append(v, k.Reason...)
		v = append(v, k.Body...)
		return b.Put(binary.BigEndian.AppendUint64(nil, id), v)
	})
	if err != nil {
		return fmt.Errorf("state: keep a body in inbox %s: %w", inbox, err)
	}
	return nil
}

// InboxKept returns up to limit kept bodies (all when limit <= 0) of the
// named inbox, oldest first.
func (s *Bolt) InboxKept(ctx context.Context, inbox string, limit int) ([]KeptBody, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []KeptBody
	err := s.db.View(func(tx *bbolt.Tx) error {
		b, err := inboxBucket(tx, inbox, bucketInboxKept)
		if b == nil || err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			if len(v) < 8 {
				return fmt.Errorf("malformed kept body %x", k)
			}
			n, w := binary.Uvarint(v[8:])
			if w <= 0 || uint64(len(v)-8-w) < n {
				return fmt.Errorf("malformed kept body %x", k)
			}
			rest := v[8+w:]
			out = append(out, KeptBody{
				ID:     binary.BigEndian.Uint64(k),
				Time:   time.Unix(0, int64(binary.BigEndian.Uint64(v))),
				Reason: string(rest[:n]),
				Body:   slices.Clone(rest[n:]),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read kept bodies of inbox %s: %w", inbox, err)
	}
	return out, nil
}
