package state

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/dvsync/dvsync/change"
)

// bucketIDs holds one bucket per IDIndex space.
var bucketIDs = []byte("dataverse_ids")

// PutIDKeys stores or forgets the entries' ids in one transaction.
func (s *Bolt) PutIDKeys(ctx context.Context, space string, entries []IDKey) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		top, err := tx.CreateBucketIfNotExists(bucketIDs)
		if err != nil {
			return err
		}
		b, err := top.CreateBucketIfNotExists([]byte(space))
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Key == nil {
				err = b.Delete([]byte(e.ID))
			} else {
				err = b.Put([]byte(e.ID), encodeIDKey(e.Key))
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: store row ids of %s: %w", space, err)
	}
	return nil
}

// IDKey returns the key attributes stored under id in space.
func (s *Bolt) IDKey(ctx context.Context, space, id string) (change.Row, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	var key change.Row
	var found bool
	err := s.db.View(func(tx *bbolt.Tx) error {
		top := tx.Bucket(bucketIDs)
		if top == nil {
			return nil
		}
		b := top.Bucket([]byte(space))
		if b == nil {
			return nil
		}
		v := b.Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		var err error
		key, err = decodeIDKey(v) // decoding copies out of bbolt's page
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("state: read row id %s of %s: %w", id, space, err)
	}
	return key, found, nil
}
