// Package conflict holds the pure decisions of bidirectional sync: when an
// incoming change is only an echo of what dvsync itself wrote, and which
// version of a row wins when both sides changed it since the last sync.
//
// Everything here works in one canonical space, the source table's column
// names and value kinds. Pipeline A (source → Dataverse) reads its rows in
// that space before mapping, and pipeline B (Dataverse → source) produces
// them in that space after mapping back, so both pipelines compare the
// same rows without any mapping of their own, and the last synced values
// kept per key are stored once, in the form the source table holds them.
//
// Values are compared by their canonical form (see Canonical), which
// forgets the differences a round trip through Dataverse introduces: the
// kind of a number, trailing zeros of a decimal, a timestamp's zone and
// sub-second digits, the key order of a JSON document.
//
// The package does no I/O and keeps no state; every function is safe for
// concurrent use.
package conflict
