// Package checkpoint is a pipeline's local state: a small badger database
// in the pipeline's state dir.
//
// It holds what the pipeline must remember across restarts and that does not
// live in the sink: the pipeline's identity (slot, publication, source
// system id), its lifecycle phase, the per-table and per-chunk progress of the
// full copy, and the stream position the engine last saw the sink make
// durable. Other parts of the engine (relation history, spilled
// transactions, counters) use the generic API ([Store.Get], [Store.Put],
// [Store.Scan], [Store.Update], ...) under their own key areas.
//
// # Durability
//
// The store is opened with synchronous writes: when [Store.Put],
// [Store.Update] or any other write returns nil, the change is on disk and
// survives a crash of the process or the machine. Values are JSON-encoded.
//
// # Keys
//
// Every key starts with a version segment, "v1/", followed by an area and
// then area-specific segments, separated by "/":
//
//	v1/identity                     Identity of the pipeline (JSON object)
//	v1/phase                        Phase (JSON string)
//	v1/plan/<table>                 TablePlan of one table (JSON object)
//	v1/done/<table>/<chunk>         ChunkDone of one chunk of one table
//	v1/position                     last source commit LSN durably applied by the sink (JSON number)
//	v1/post_data_done               true once the post-data schema is built at the sink (JSON bool)
//
// <table> is the table's quoted, qualified source name (for example
// "public"."orders") escaped with [KeyPart]: every byte other than an ASCII
// letter, digit, '_', '.' or '-' becomes %XX (upper-case hex). The escaped
// form never contains '/', and the escaping is one-to-one, so the prefix
// "v1/done/<table>/" of one table never matches the keys of another table
// (a table "a" and a table "ab" stay apart) whatever characters the names
// hold: quotes, slashes, percent signs or any unicode.
//
// <chunk> is the chunk id in decimal, zero-padded to ten digits so that
// chunk keys of a table sort in chunk order.
//
// Other areas should follow the same scheme: "v1/<area>/" followed by
// segments escaped with [KeyPart] when they hold free-form names.
//
// # Concurrency
//
// A Store is safe for use by several goroutines. Only one process may have a
// state dir open at a time: badger's lock file enforces it, and [Open]
// reports an [InUseError] when another process holds it.
package checkpoint
