// Package engine runs a pipeline: it reads change records from a source,
// maps them, writes them to a sink in batches and acks the source once they
// are durable.
//
// One goroutine reads. It numbers every record in the order the source
// emitted it, maps it, and routes it by destination table and key to one of
// several workers, so that all changes to one key go to one worker and stay
// in order while different keys are written in parallel. Each worker
// gathers a batch, folds the changes to one key into a single record, and
// writes the batch; it writes one batch at a time, so no two batches that
// hold the same key are ever in flight together.
//
// A record is done when the sink has made it durable, when it was
// dead-lettered, or when the mapper chose not to map it. An ack tracker
// keeps a contiguous watermark over the emission sequence: a source
// position is persisted and acked only once every record emitted before it
// is done, so a crash anywhere replays changes and never loses one.
//
// Errors are acted on here, as the adapters classified them: retryable
// failures wait (as long as the sink asked, or with exponential backoff)
// and are tried again; a record that fails permanently goes to the
// dead-letter store and the pipeline carries on. A dead letter holds the
// source record when mapping failed; when writing failed, it holds the
// mapped, folded record the sink refused and the source records folded
// into it, so that RetryDeadLetter can map them again once the mapping is
// fixed.
//
// A write the sink defers (change.DeferredError: the record refers to a
// row, such as a lookup's parent, that is not there yet) is parked by its
// worker, which goes on with other keys; later changes to the parked key
// wait behind it, and the key is tried again after a backoff, up to
// MaxDeferrals times, before it is dead-lettered. A parked record is not
// done, so the watermark holds back behind it and a restart replays it.
//
// A bidirectional mapping runs as two pipelines, one each way, joined by a
// Sync: its Resolvers sit between folding and writing, drop the echoes of
// dvsync's own writes, make writes conditional on the version last synced
// (change.MetaExpectedVersion), decide conflicts the sinks report
// (change.ConflictError) by the mapping's policy (package conflict), and
// record what was synced before the source is acked.
//
// While it runs, a pipeline can be changed without a restart: SetMapper
// swaps the mapper between two reads (a reload of the mapping files), and
// Pause and Resume hold back one source table's records, unmapped and not
// acked, while the others flow on. The pipeline pauses a table itself when
// its source reports that columns the mapper reads were dropped or changed
// type (MetaDroppedColumns, MetaRetypedColumns), and says why in Stats and
// Ready until an operator resumes it. Ready tells a health check whether the
// pipeline runs and its source, if it reports its health, is connected.
package engine
