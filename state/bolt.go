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
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/dvsync/dvsync/change"
)

// Bolt is the default Store: one bbolt file on local disk. Every write is
// a bbolt transaction that returns after fsync.
//
// bbolt serialises writers and lets readers run alongside them, so Bolt is
// safe for concurrent use. The file is locked while open: a second process
// (or a second OpenBolt in this one) fails instead of corrupting it.
type Bolt struct {
	db *bbolt.DB
}

var _ Store = (*Bolt)(nil)

// Bucket names. The meta bucket records the layout version, so that a
// future layout can migrate or refuse a file it does not understand.
var (
	bucketMeta        = []byte("meta")
	bucketPositions   = []byte("positions")
	bucketDeadLetters = []byte("dead_letters")
	keyLayout         = []byte("layout")
)

const layoutV1 = 1

// lockTimeout bounds the wait for another process to release the file. A
// running daemon holds it for its lifetime, so waiting longer would only
// hide the misconfiguration.
const lockTimeout = time.Second

// OpenBolt opens the state file at path, creating it (mode 0600) and its
// buckets if needed. If another process has the file open, OpenBolt returns
// an error saying so after a short wait.
func OpenBolt(path string) (*Bolt, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state: %s is in use by another dvsync process (or another program); "+
			"each process needs its own state file", path)
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := meta.Get(keyLayout); {
		case v == nil:
			if err := meta.Put(keyLayout, []byte{layoutV1}); err != nil {
				return err
			}
		case len(v) != 1 || v[0] != layoutV1:
			return fmt.Errorf("the file has layout %x, which this dvsync does not know; it was written by a newer dvsync", v)
		}
		for _, b := range [][]byte{bucketPositions, bucketDeadLetters} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	return &Bolt{db: db}, nil
}

// Position returns the last position saved for pipeline, or nil.
func (s *Bolt) Position(ctx context.Context, pipeline string) (change.Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var pos change.Position
	err := s.db.View(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketPositions).Get([]byte(pipeline)); v != nil {
			// bbolt's slices are valid only inside the transaction.
			pos = change.Position(slices.Clone(v))
			if pos == nil {
				pos = change.Position{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read position of %s: %w", pipeline, err)
	}
	return pos, nil
}

// SavePosition replaces pipeline's saved position with pos, durably.
func (s *Bolt) SavePosition(ctx context.Context, pipeline string, pos change.Position) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if pipeline == "" {
		return errors.New("state: save position: empty pipeline name")
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketPositions).Put([]byte(pipeline), pos)
	})
	if err != nil {
		return fmt.Errorf("state: save position of %s: %w", pipeline, err)
	}
	return nil
}

// PutDeadLetters stores letters in one transaction: all or none. Each gets
// the next sequence number of the store, so DeadLetters returns a
// pipeline's letters in the order they were put, across restarts.
func (s *Bolt) PutDeadLetters(ctx context.Context, letters []DeadLetter) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(letters) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDeadLetters)
		for i := range letters {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			dl := &letters[i]
			if err := b.Put(deadLetterKey(dl.Pipeline, seq), appendDeadLetter(nil, dl)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: put %d dead letters: %w", len(letters), err)
	}
	return nil
}

// DeadLetters returns pipeline's dead letters, oldest first: at most limit
// of them, or all when limit <= 0.
func (s *Bolt) DeadLetters(ctx context.Context, pipeline string, limit int) ([]DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	prefix := deadLetterPrefix(pipeline)
	var out []DeadLetter
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketDeadLetters).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if limit > 0 && len(out) == limit {
				break
			}
			dl, err := decodeDeadLetter(k[len(prefix):], v)
			if err != nil {
				return fmt.Errorf("dead letter %x: %w", k[len(prefix):], err)
			}
			out = append(out, dl)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read dead letters of %s: %w", pipeline, err)
	}
	return out, nil
}

// DeadLetter returns pipeline's dead letter id.
func (s *Bolt) DeadLetter(ctx context.Context, pipeline string, id uint64) (DeadLetter, error) {
	if err := ctx.Err(); err != nil {
		return DeadLetter{}, err
	}
	var dl DeadLetter
	err := s.db.View(func(tx *bbolt.Tx) error {
		k := deadLetterKey(pipeline, id)
		v := tx.Bucket(bucketDeadLetters).Get(k)
		if v == nil {
			return ErrNotFound
		}
		var err error
		dl, err = decodeDeadLetter(k[len(k)-8:], v)
		return err
	})
	if err != nil {
		return DeadLetter{}, fmt.Errorf("state: dead letter %d of %s: %w", id, pipeline, err)
	}
	return dl, nil
}

// DeleteDeadLetter removes pipeline's dead letter id, durably.
func (s *Bolt) DeleteDeadLetter(ctx context.Context, pipeline string, id uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketDeadLetters)
		k := deadLetterKey(pipeline, id)
		if b.Get(k) == nil {
			return ErrNotFound
		}
		return b.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("state: delete dead letter %d of %s: %w", id, pipeline, err)
	}
	return nil
}

// Close closes the file, waiting for running transactions to finish.
func (s *Bolt) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return nil
}

// deadLetterPrefix is the length-prefixed pipeline name. The length makes
// the prefix unambiguous: no pipeline's keys start with another's, whatever
// bytes the names hold.
func deadLetterPrefix(pipeline string) []byte {
	p := binary.AppendUvarint(nil, uint64(len(pipeline)))
	return append(p, pipeline...)
}

// deadLetterKey is the prefix and a big-endian sequence, so keys sort by
// pipeline, then by age.
func deadLetterKey(pipeline string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(deadLetterPrefix(pipeline), seq)
}

// A dead letter is stored as: version:byte pipeline:string stage:string
// reason:string time record, and from version 2 on also
// uvarint(n) record... for its sources, with the encodings of codec.go.
// Its ID is not stored in the value: it is the key's sequence number.
const (
	deadLetterV1 = 1
	deadLetterV2 = 2
)

func appendDeadLetter(dst []byte, dl *DeadLetter) []byte {
	dst = append(dst, deadLetterV2)
	dst = appendString(dst, dl.Pipeline)
	dst = appendString(dst, dl.Stage)
	dst = appendString(dst, dl.Reason)
	dst = appendTime(dst, dl.Time)
	dst = appendLenPrefixed(dst, &dl.Record)
	dst = binary.AppendUvarint(dst, uint64(len(dl.Sources)))
	for i := range dl.Sources {
		dst = appendLenPrefixed(dst, &dl.Sources[i])
	}
	return dst
}

// appendLenPrefixed appends r's encoding preceded by its length, since
// DecodeRecord wants exactly one record's bytes.
func appendLenPrefixed(dst []byte, r *change.Record) []byte {
	enc := AppendRecord(nil, r)
	dst = binary.AppendUvarint(dst, uint64(len(enc)))
	return append(dst, enc...)
}

// decodeDeadLetter decodes v, the value stored under a key whose last
// eight bytes are seq.
func decodeDeadLetter(seq, v []byte) (DeadLetter, error) {
	d := decoder{b: v}
	var dl DeadLetter
	if len(seq) != 8 {
		return dl, fmt.Errorf("malformed key sequence %x", seq)
	}
	dl.ID = binary.BigEndian.Uint64(seq)
	version := d.byte()
	if d.err == nil && version != deadLetterV1 && version != deadLetterV2 {
		return dl, fmt.Errorf("unknown encoding version %d", version)
	}
	dl.Pipeline = d.string()
	dl.Stage = d.string()
	dl.Reason = d.string()
	dl.Time = d.time()
	if d.err != nil {
		return DeadLetter{}, d.err
	}
	if version == deadLetterV1 {
		// Version 1 ends with the one record, unprefixed.
		rec, err := DecodeRecord(d.b)
		if err != nil {
			return DeadLetter{}, err
		}
		dl.Record = rec
		return dl, nil
	}
	var err error
	if dl.Record, err = decodeLenPrefixed(&d); err != nil {
		return DeadLetter{}, err
	}
	n := d.count()
	if d.err != nil {
		return DeadLetter{}, d.err
	}
	if n > 0 {
		dl.Sources = make([]change.Record, n)
	}
	for i := range dl.Sources {
		if dl.Sources[i], err = decodeLenPrefixed(&d); err != nil {
			return DeadLetter{}, fmt.Errorf("source %d: %w", i, err)
		}
	}
	if len(d.b) != 0 {
		return DeadLetter{}, fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return dl, nil
}

func decodeLenPrefixed(d *decoder) (change.Record, error) {
	b := d.take(d.count())
	if d.err != nil {
		return change.Record{}, d.err
	}
	return DecodeRecord(b)
}
