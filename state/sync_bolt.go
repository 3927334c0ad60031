package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// The buckets of bidirectional sync, created by the first write to them:
// a store that never syncs both ways never has them.
var (
	bucketSyncEntries = []byte("sync_entries")
	bucketConflicts   = []byte("sync_conflicts")
)

// syncKey is the length-prefixed mapping name and the row key, so that no
// mapping's keys start with another's.
func syncKey(mapping string, key []byte) []byte {
	return append(deadLetterPrefix(mapping), key...)
}

// SyncEntries returns mapping's entries under keys, in one read
// transaction.
func (s *Bolt) SyncEntries(ctx context.Context, mapping string, keys [][]byte) ([]SyncEntry, []bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	entries := make([]SyncEntry, len(keys))
	found := make([]bool, len(keys))
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSyncEntries)
		if b == nil {
			return nil
		}
		for i, k := range keys {
			v := b.Get(syncKey(mapping, k))
			if v == nil {
				continue
			}
			e, err := decodeSyncEntry(v) // copies: v is valid only in tx
			if err != nil {
				return fmt.Errorf("entry %x: %w", k, err)
			}
			entries[i], found[i] = e, true
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("state: read sync entries of %s: %w", mapping, err)
	}
	return entries, found, nil
}

// PutSyncEntries stores entries in one transaction.
func (s *Bolt) PutSyncEntries(ctx context.Context, mapping string, keys [][]byte, entries []SyncEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(keys) != len(entries) {
		return fmt.Errorf("state: put sync entries: %d keys for %d entries", len(keys), len(entries))
	}
	if len(keys) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketSyncEntries)
		if err != nil {
			return err
		}
		for i := range keys {
			if err := b.Put(syncKey(mapping, keys[i]), appendSyncEntry(nil, &entries[i])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: put %d sync entries of %s: %w", len(keys), mapping, err)
	}
	return nil
}

// ParkConflict stores c under the store's next conflict sequence number.
func (s *Bolt) ParkConflict(ctx context.Context, c ParkedConflict) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if c.Detected.IsZero() {
		c.Detected = time.Now()
	}
	var id uint64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketConflicts)
		if err != nil {
			return err
		}
		if id, err = b.NextSequence(); err != nil {
			return err
		}
		return b.Put(deadLetterKey(c.Mapping, id), appendParked(nil, &c))
	})
	if err != nil {
		return 0, fmt.Errorf("state: park conflict of %s: %w", c.Mapping, err)
	}
	return id, nil
}

// ParkedConflicts returns mapping's parked conflicts, oldest first.
func (s *Bolt) ParkedConflicts(ctx context.Context, mapping string, limit int) ([]ParkedConflict, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := deadLetterPrefix(mapping)
	var out []ParkedConflict
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketConflicts)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			pc, err := decodeParked(binary.BigEndian.Uint64(k[len(prefix):]), v)
			if err != nil {
				return fmt.Errorf("conflict %x: %w", k[len(prefix):], err)
			}
			out = append(out, pc)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read parked conflicts of %s: %w", mapping, err)
	}
	return out, nil
}

// ParkedConflict returns mapping's parked conflict id.
func (s *Bolt) ParkedConflict(ctx context.Context, mapping string, id uint64) (ParkedConflict, error) {
	if err := ctx.Err(); err != nil {
		return ParkedConflict{}, err
	}
	var pc ParkedConflict
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketConflicts)
		if b == nil {
			return ErrNotFound
		}
		v := b.Get(deadLetterKey(mapping, id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		pc, err = decodeParked(id, v)
		return err
	})
	if err != nil {
		return ParkedConflict{}, fmt.Errorf("state: parked conflict %d of %s: %w", id, mapping, err)
	}
	return pc, nil
}

// DeleteParkedConflict removes mapping's parked conflict id, durably.
func (s *Bolt) DeleteParkedConflict(ctx context.Context, mapping string, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketConflicts)
		k := deadLetterKey(mapping, id)
		if b == nil || b.Get(k) == nil {
			return ErrNotFound
		}
		return b.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("state: delete parked conflict %d of %s: %w", id, mapping, err)
	}
	return nil
}
