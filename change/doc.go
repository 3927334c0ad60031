// Package change is dvsync's shared vocabulary: the Record that every source
// emits, the engine maps and every sink writes, together with its typed
// values, composite keys, opaque positions and error classes.
//
// It imports nothing else of dvsync, so every other package may depend on it.
package change
