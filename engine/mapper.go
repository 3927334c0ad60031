package engine

import (
	"errors"

	"github.com/dvsync/dvsync/change"
)

// Mapper turns a source record into a destination record.
//
// ok=false means the record is not for this pipeline (an unmapped table, a
// delete the mapping ignores): it is acked without a write. An error is a
// mapping failure: the record is dead-lettered with stage "map" and the
// pipeline goes on.
//
// The engine calls Map from one goroutine, in emission order. Map must not
// modify *rec or keep it after returning; out may share rows and keys with
// it, since nothing downstream modifies them.
type Mapper interface {
	Map(rec *change.Record) (out change.Record, ok bool, err error)
}

// MapperFunc adapts a function to Mapper.
type MapperFunc func(rec *change.Record) (change.Record, bool, error)

// Map calls f(rec).
func (f MapperFunc) Map(rec *change.Record) (change.Record, bool, error) { return f(rec) }

// checkMapped rejects a mapped record that no sink could write, so that
// the mapper's bug becomes a dead letter rather than a sink failure.
func checkMapped(r *change.Record) error {
	switch {
	case r.Op < change.OpInsert || r.Op > change.OpRead:
		return errors.New("mapper returned a record with an invalid operation")
	case r.Table == "":
		return errors.New("mapper returned a record with no table")
	case len(r.Key) == 0:
		return errors.New("mapper returned a record with no key")
	}
	return nil
}
