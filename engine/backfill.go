package engine

// Backfills while the pipeline streams, after Netflix's DBLog: for each
// chunk the backfill worker writes a low watermark row at the source,
// reads the chunk (the next rows in key order after the last chunk's, that
// satisfy the object's and the request's conditions), then writes a high
// watermark row. Both marks travel through the change stream in commit
// order with the application's changes. The stream loop notes every key
// of the table changed between the two marks; at the high mark it drops
// those keys from the chunk (the stream carries their newer values) and
// upserts the rest inside the open sink transaction, with the chunk's row
// in sluice.backfill_progress. So a chunk's rows land at the sink exactly
// at the high mark's place in the source's commit order: every change
// committed before it is already applied, every later one follows.
//
// One more case closes the window: a transaction whose commit record
// precedes the low mark but that was not yet visible when the chunk was
// read (PostgreSQL makes commits visible a moment after writing their
// record, and much later when a synchronous standby does not answer).
// The stream loop remembers the recent transactions of every table that a
// chunk's snapshot might not see yet (recentXids, bounded); if one of
// those that changed the chunk's table before its low mark was running for
// the chunk's snapshot, the chunk is read again.
//
// The table is looked up in the source's catalog as it is when a request
// starts, and again whenever the stream has applied DDL since: a chunk
// reads the columns the sink has at its high mark. A chunk whose table saw
// DDL between its read and its high mark is read again.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/engine/throttle"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/where"
)

// Crash points of backfills (see package failpoint).
const (
	// fpBackfillChunk is reached when a chunk's rows and progress row are
	// queued in the open sink transaction, before it commits.
	fpBackfillChunk = "backfill.chunk"
	// fpBackfillRead is reached when a chunk has been read, before its
	// high watermark is written (tests widen the window with a sleep).
	fpBackfillRead = "backfill.read"
)

// DefaultBackfillChunkRows is the rows per backfill chunk unless the
// request says otherwise: a chunk is held in memory and written inside one
// sink transaction of the stream, so it stays small.
const DefaultBackfillChunkRows = 10000

// backfillPoll is how often the streaming process looks for new requests.
const backfillPoll = time.Second

// errChunkRetry says a chunk must be read again (see the package comment
// of this file); it is wrapped with the reason.
var errChunkRetry = errors.New("the chunk must be read again")

// Waits before a chunk is read again: doubling from the first to the
// last, so that a transaction that stays in progress (waiting for a
// synchronous standby) is not raced by a stream of reads.
const (
	chunkRetryFirst = 10 * time.Millisecond
	chunkRetryMax   = time.Second
)

// backfiller runs the pipeline's backfill requests inside a streaming
// session: a worker goroutine reads chunks and writes watermarks; the
// stream loop calls change, truncate and committed.
type backfiller struct {
	r *runner
	// initial holds the OIDs of the tables the run started with (tables
	// renamed since stay the pipeline's).
	initial map[uint32]bool
	nonce   string
	seq     int64
	cur     atomic.Pointer[bfChunk]
	// queued are the chunks applied in the open sink transaction (stream
	// loop only).
	queued []*bfChunk
	// recent are the transactions a chunk's snapshot may miss (stream
	// loop only); horizon is the latest source snapshot the worker read,
	// which the stream loop applies to recent.
	recent  *recentXids
	horizon atomic.Pointer[postgres.XidSnapshot]
	// ddlGen counts the DDL events on tables the stream loop has seen: a
	// chunk reads with the table's definition as of the count it saw.
	ddlGen atomic.Int64
	// lack: the relations of unfinished requests (backfill_lack.go).
	lack lacking

	src, read, sink *pgx.Conn // worker only
}

// bfChunk is one chunk on its way from the worker to the stream loop.
type bfChunk struct {
	low, high string
	oid       uint32
	key       []string

	// ancestors are the OIDs of the partitioned tables above the table,
	// filter the object's condition the chunk was read with (both set
	// before the chunk is published in cur).
	ancestors []uint32
	filter    string

	mu       sync.Mutex
	ready    bool
	rows     []record.Record
	snap     postgres.XidSnapshot
	progress postgres.BackfillProgress // what the sink records with the rows

	// The stream loop's own: whether the low mark passed, the keys
	// changed since, the transactions that changed the table before it
	// and that its snapshot might have missed (and whether some of those
	// were forgotten, up to which id), whether DDL changed the table.
	inWindow   bool
	allChanged bool
	changed    map[string]struct{}
	before     []uint32
	lost       bool
	lostHi     uint32
	ddl        bool
	keyIdx     map[*record.Relation][]int
	// result receives nil once the rows are committed at the sink, or
	// the reason they are not.
	result chan error
	kept   int
	// For the log: how long the read took, and from the high mark's
	// write until the sink committed the chunk.
	readTime, applyWait time.Duration
}

func newChunk(token string, oid uint32, key []string) *bfChunk {
	return &bfChunk{low: token + "/low", high: token + "/high", oid: oid, key: key,
		changed: map[string]struct{}{}, keyIdx: map[*record.Relation][]int{},
		result: make(chan error, 1)}
}

func newBackfiller(r *runner, tables []*postgres.Table) *backfiller {
	b := &backfiller{r: r, initial: map[uint32]bool{}, recent: newRecentXids(0)}
	for _, t := range tables {
		b.initial[t.OID] = true
	}
	var n [8]byte
	_, _ = rand.Read(n[:])
	b.nonce = hex.EncodeToString(n[:])
	return b
}

// start runs the worker until ctx ends; the returned function stops it
// and waits for it.
func (b *backfiller) start(ctx context.Context) (stop func()) {
	if b == nil {
		return func() {}
	}
	b.queued = nil
	b.cur.Store(nil)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.run(ctx)
	}()
	return func() { cancel(); <-done }
}

// change observes one streamed change, in stream order, and reports
// whether it is the backfill's own (a watermark), not to be applied.
func (b *backfiller) change(ctx context.Context, applier *postgres.Applier, ev *postgres.Event) (bool, error) {
	rec := &ev.Record
	if b == nil || rec.Rel == nil {
		return false, nil
	}
	if rec.Rel.Table == postgres.WatermarkTable {
		c := b.cur.Load()
		mark, ok := postgres.WatermarkMark(rec, b.r.cfg.Name)
		if !ok || c == nil {
			return true, nil
		}
		switch mark {
		case c.low:
			c.inWindow = true
			c.before, c.lost, c.lostHi = b.recent.of(c.oid)
		case c.high:
			return true, b.atHigh(ctx, applier, c, ev.CommitLSN)
		}
		return true, nil
	}
	if rec.Rel.Table == postgres.DDLLogTable {
		b.ddlEvent(rec)
		return false, nil
	}
	b.seen(ev)
	c := b.cur.Load()
	if c == nil || rec.Rel.ID != c.oid || !c.inWindow {
		return false, nil
	}
	for _, vals := range [][]record.Value{rec.Old, rec.New} {
		if vals == nil {
			continue
		}
		k, ok := c.keyOf(rec.Rel, vals)
		if !ok {
			c.allChanged = true
			continue
		}
		c.changed[k] = struct{}{}
	}
	return false, nil
}

// truncate observes a streamed TRUNCATE: inside a chunk's window it
// voids the chunk.
func (b *backfiller) truncate(ev *postgres.Event) {
	if b == nil {
		return
	}
	b.seen(ev)
	c := b.cur.Load()
	if c == nil {
		return
	}
	for _, rel := range ev.Truncated {
		if rel.ID == c.oid && c.inWindow {
			c.allChanged = true
		}
	}
}

// seen notes the table(s) a streamed change or TRUNCATE touched, for the
// chunks read later (see recentXids). The stream loop calls it for the
// changes it skips as already applied, too.
func (b *backfiller) seen(ev *postgres.Event) {
	if b == nil {
		return
	}
	b.recent.advance(b.horizon.Load())
	switch ev.Kind {
	case postgres.EventChange:
		if rel := ev.Record.Rel; rel != nil && rel.Table.Schema != postgres.ProgressSchema {
			b.recent.add(ev.Xid, rel.ID)
		}
	case postgres.EventTruncate:
		for _, rel := range ev.Truncated {
			b.recent.add(ev.Xid, rel.ID)
		}
	}
}

// ddlEvent notes a streamed DDL event: chunks read before it was applied
// may have read the table with its former definition.
func (b *backfiller) ddlEvent(rec *record.Record) {
	if rec.Op != record.Insert {
		return
	}
	ev, err := postgres.DecodeDDLEvent(rec)
	if err != nil || ev.RelID == 0 {
		return // the DDL run reports what it cannot read
	}
	// The count first, then the chunk: a worker that publishes a chunk
	// and then reads the count sees one or the other (see part).
	b.ddlGen.Add(1)
	if c := b.cur.Load(); c != nil && (ev.RelID == c.oid || slices.Contains(c.ancestors, ev.RelID)) {
		c.ddl = true
	}
}

// committed tells the workers of the chunks applied in the sink
// transaction just committed.
func (b *backfiller) committed() {
	if b == nil {
		return
	}
	for _, c := range b.queued {
		c.result <- nil
	}
	b.queued = nil
}

// keyOf renders a row's key for the changed-key set; false when a key
// value is missing.
func (c *bfChunk) keyOf(rel *record.Relation, vals []record.Value) (string, bool) {
	idx, ok := c.keyIdx[rel]
	if !ok {
		idx = make([]int, len(c.key))
		for i, k := range c.key {
			idx[i] = rel.ColumnIndex(k)
		}
		c.keyIdx[rel] = idx
	}
	var buf []byte
	for _, i := range idx {
		if i < 0 || i >= len(vals) || vals[i].Unchanged || vals[i].Null {
			return "", false
		}
		// Length-prefixed, so that composite keys cannot run together.
		buf = strconv.AppendInt(buf, int64(len(vals[i].Data)), 10)
		buf = append(buf, ':')
		buf = append(buf, vals[i].Data...)
	}
	return string(buf), true
}

// atHigh applies a chunk at its high watermark: the rows whose keys did
// not change in the window are upserted in the open sink transaction with
// the chunk's progress row.
func (b *backfiller) atHigh(ctx context.Context, applier *postgres.Applier, c *bfChunk, commitLSN record.LSN) error {
	b.cur.CompareAndSwap(c, nil)
	if err := b.current(c); err != nil {
		c.result <- err
		return nil
	}
	keep, err := c.keep()
	if err != nil {
		c.result <- err
		return nil
	}
	if err := b.r.backfillApply(ctx, applier, keep, commitLSN); err != nil {
		return err
	}
	c.mu.Lock()
	c.kept = len(keep)
	c.progress.Rows += int64(len(keep))
	prog := c.progress
	c.mu.Unlock()
	if err := applier.QueueBackfillProgress(ctx, prog); err != nil {
		return err
	}
	b.queued = append(b.queued, c)
	return b.r.hit(fpBackfillChunk)
}

// current checks, at a chunk's high mark, that the chunk was read as the
// stream stands there: no DDL on its table since it was read, the table
// replicated, with the object's condition the stream applies.
func (b *backfiller) current(c *bfChunk) error {
	if c.ddl {
		return fmt.Errorf("%w: the table's definition changed (DDL) while it was read", errChunkRetry)
	}
	// Without DDL capture the run replicates only the tables it started
	// with; with it, those the DDL has brought since.
	if d := b.r.ddl; (d != nil && d.tables[c.oid] == nil) || (d == nil && !b.initial[c.oid]) {
		name := fmt.Sprintf("with OID %d", c.oid)
		c.mu.Lock()
		if len(c.rows) > 0 {
			name = c.rows[0].Rel.Table.String()
		}
		c.mu.Unlock()
		return permanent(fmt.Errorf("backfill: table %s is not replicated by the pipeline's run at this point of the stream (not selected by its objects, or created at the source while DDL capture is off: restart the pipeline to take it in)", name))
	}
	if m := b.r.mapping; m != nil && m.filterSQL(c.oid) != c.filter {
		return fmt.Errorf("%w: the object's where for the table changed", errChunkRetry)
	}
	return nil
}

// keep returns the chunk's rows whose keys did not change between its
// watermarks, or errChunkRetry when its snapshot may have missed a change
// committed before the low watermark.
func (c *bfChunk) keep() ([]*record.Record, error) {
	c.mu.Lock()
	ready, rows, snap := c.ready, c.rows, c.snap
	c.mu.Unlock()
	if !ready {
		return nil, errors.New("the high watermark arrived before the chunk was read")
	}
	for _, x := range c.before {
		if !snap.Sees(x) {
			return nil, fmt.Errorf("%w: its snapshot missed transaction %d, which changed the table before the low watermark", errChunkRetry, x)
		}
	}
	if c.lost && snap.MayRunAtOrBefore(c.lostHi) {
		return nil, fmt.Errorf("%w: its snapshot may have missed a transaction up to %d that changed a table before the low watermark (too many to remember)", errChunkRetry, c.lostHi)
	}
	keep := make([]*record.Record, 0, len(rows))
	if c.allChanged {
		return keep, nil
	}
	for i := range rows {
		k, ok := c.keyOf(rows[i].Rel, rows[i].New)
		if !ok {
			continue
		}
		if _, changed := c.changed[k]; changed {
			continue
		}
		keep = append(keep, &rows[i])
	}
	return keep, nil
}

// backfillApply writes backfilled rows through the pipeline's per-record
// mapping, the path streamed changes take in applyChange (the rows already
// satisfy the object's where: the chunk's query carries it), after the
// pipeline's transform stages.
func (r *runner) backfillApply(ctx context.Context, applier *postgres.Applier, rows []*record.Record, commitLSN record.LSN) error {
	// source → where (in the chunk's query) → transforms → rename → sink,
	// as for the full copy. Rows a filter stage drops are not written.
	rows, err := r.chain.Apply(ctx, rows)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		return nil
	}
	mode := r.mapping.upsertMode(rows[0].Rel.ID)
	out := make([]*record.Record, len(rows))
	for i, rec := range rows {
		out[i] = r.mapping.mapRecord(rec)
	}
	return applier.UpsertRows(ctx, out, commitLSN, mode)
}

// run looks for pending requests every backfillPoll and runs them, until
// ctx ends. Errors are logged and the request retried on the next look;
// a request that cannot succeed (its table or condition is wrong) is
// marked failed.
func (b *backfiller) run(ctx context.Context) {
	defer b.closeConns()
	for {
		if err := b.pass(ctx); err != nil && ctx.Err() == nil {
			b.r.log.Warn("backfill: will retry", "error", err)
			b.closeConns()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backfillPoll):
		}
	}
}

func (b *backfiller) closeConns() {
	for _, c := range []**pgx.Conn{&b.src, &b.read, &b.sink} {
		if *c != nil {
			(*c).Close(context.Background())
			*c = nil
		}
	}
}

func (b *backfiller) connect(ctx context.Context) error {
	var err error
	if b.src == nil {
		if b.src, err = postgres.Connect(ctx, b.r.cfg.SourceDSN, "source"); err != nil {
			return err
		}
	}
	if b.read == nil {
		if b.read, err = postgres.Connect(ctx, b.r.cfg.SourceDSN, "source"); err != nil {
			return err
		}
	}
	if b.sink == nil {
		if b.sink, err = postgres.Connect(ctx, b.r.cfg.SinkDSN, "sink"); err != nil {
			return err
		}
	}
	return nil
}

func (b *backfiller) pass(ctx context.Context) error {
	if err := b.connect(ctx); err != nil {
		return err
	}
	// A fresh horizon lets the stream loop forget the transactions every
	// chunk read from now on sees.
	h, err := postgres.CurrentXidSnapshot(ctx, b.src)
	if err != nil {
		return err
	}
	b.horizon.Store(h)
	reqs, err := postgres.PendingBackfills(ctx, b.src, b.r.cfg.Name)
	if err != nil {
		return err
	}
	for _, req := range reqs {
		err := b.request(ctx, req)
		if isPermanent(err) {
			b.r.log.Error("backfill failed", "request", req.ID, "table", req.Table, "error", err)
			if ferr := postgres.FinishBackfill(ctx, b.src, req.ID, postgres.BackfillFailed, err.Error()); ferr != nil {
				return ferr
			}
		} else if err != nil {
			return err
		}
		// The request ended: its tables may lack rows no longer (unless
		// another pending request reads them), so an update that finds
		// its row missing parks the pipeline again.
		if err := b.lack.load(ctx, b.src, b.r.cfg.Name); err != nil {
			return err
		}
	}
	return nil
}

// request runs one request to its end, resuming from the sink's progress.
func (b *backfiller) request(ctx context.Context, req postgres.BackfillRequest) error {
	parts, err := b.liveParts(ctx, req)
	if err != nil {
		return err
	}
	b.lack.addParts(parts)
	for _, p := range parts {
		if err := b.part(ctx, req, p); err != nil {
			return err
		}
	}
	if err := postgres.FinishBackfill(ctx, b.src, req.ID, postgres.BackfillDone, ""); err != nil {
		return err
	}
	b.r.log.Info("backfill done", "request", req.ID, "table", req.Table)
	return nil
}

// liveParts looks the requested table up in the source's catalog as it
// is now, not as it was when the run started: a table created, renamed or
// altered since is backfilled as it is. It must be one the run
// replicates: one it started with, or one its objects select.
func (b *backfiller) liveParts(ctx context.Context, req postgres.BackfillRequest) ([]backfillPart, error) {
	schema, name, ok := splitIdentity(req.Table)
	if !ok {
		return nil, permanent(fmt.Errorf("backfill %d: cannot read the table name %s", req.ID, req.Table))
	}
	tn := record.TableName{Schema: schema, Name: name}
	exists, err := postgres.TableExists(ctx, b.src, tn)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, permanent(fmt.Errorf("backfill: table %s does not exist at the source (renamed or dropped since the request? names are case-sensitive)", tn))
	}
	tables, err := postgres.Discover(ctx, b.src, []postgres.Selection{{Table: tn, Where: fmt.Sprintf("backfill request %d", req.ID)}})
	if err != nil {
		return nil, err
	}
	byName := map[string]*postgres.Table{}
	for _, t := range tables {
		byName[t.Name.Quoted()] = t
	}
	if root := byName[tn.Quoted()]; root == nil || !(b.initial[root.OID] || b.selects(root)) {
		return nil, permanent(fmt.Errorf("backfill: table %s is not among the pipeline's tables (check its objects list; names are case-sensitive)", tn))
	}
	return b.r.backfillParts(ctx, b.src, byName, tn.Quoted(), req.Where)
}

// selects reports whether the pipeline's objects select a table by its
// name (or its partitioned table's).
func (b *backfiller) selects(t *postgres.Table) bool {
	for _, n := range []*record.TableName{&t.Name, t.Parent} {
		if n == nil || n.Schema == postgres.ProgressSchema {
			continue
		}
		for _, s := range b.r.cfg.Objects {
			if (s.Schema != "" && s.Schema == n.Schema) || (s.Schema == "" && s.Table == *n) {
				return true
			}
		}
	}
	return false
}

// bfTable is a table as a chunk reads it: its definition in the source's
// catalog, and what follows from it.
type bfTable struct {
	t   *postgres.Table
	rel *record.Relation
	// ancestors are the partitioned tables above it; objFilter is the
	// object's condition the stream applies to it, filter the chunk's
	// (with the request's).
	ancestors []uint32
	objFilter string
	filter    string
}

// look reads a table's definition from the source's catalog. The
// relation of prev is kept while the columns are the same (the mapping
// caches by relation).
func (b *backfiller) look(ctx context.Context, oid uint32, name string, prev *bfTable, cond string) (*bfTable, error) {
	loaded, err := postgres.LoadTables(ctx, b.src, []uint32{oid})
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	bt := &bfTable{}
	for _, t := range loaded {
		if t.OID == oid {
			bt.t = t
		}
	}
	if bt.t == nil {
		return nil, permanent(fmt.Errorf("backfill: table %s was dropped at the source during the backfill", name))
	}
	if bt.ancestors, err = postgres.PartitionAncestors(ctx, b.src, oid); err != nil {
		return nil, err
	}
	bt.objFilter = b.r.mapping.filterSQL(oid)
	if bt.filter, err = b.r.backfillFilter(ctx, b.src, bt.t, bt.objFilter, cond); err != nil {
		return nil, err
	}
	bt.rel = bt.t.Relation()
	if prev != nil {
		if reflect.DeepEqual(prev.rel, bt.rel) {
			bt.rel = prev.rel
		} else {
			b.r.mapping.forget(prev.rel)
		}
	}
	return bt, nil
}

// part backfills one table of a request, chunk by chunk, from where the
// sink's progress row says it stopped.
func (b *backfiller) part(ctx context.Context, req postgres.BackfillRequest, p backfillPart) error {
	// Progress is kept under the name the table had when the request
	// started.
	name := p.table.Name.Quoted()
	prog, err := postgres.ReadBackfillProgress(ctx, b.sink, b.r.cfg.Name, req.ID, name)
	if err != nil {
		return err
	}
	lim := b.r.cfg.Throttle.Phase(throttle.PhaseFull)
	log := b.r.log.With("request", req.ID, "table", name)
	if prog.Chunks == 0 {
		log.Info("backfill starting", "where", req.Where, "chunk_rows", req.ChunkRows)
	} else if !prog.Done {
		log.Info("backfill resuming", "chunks_done", prog.Chunks, "rows_done", prog.Rows)
	}
	start := time.Now()
	var (
		bt      *bfTable
		fresh   bool // bt was read after the DDL count gen
		gen     int64
		backoff time.Duration
	)
	for !prog.Done {
		if err := lim.Query(ctx); err != nil {
			return err
		}
		// The table's definition is read again after any DDL the stream
		// applied since it was read.
		if !fresh || b.ddlGen.Load() != gen {
			gen = b.ddlGen.Load()
			if bt, err = b.look(ctx, p.table.OID, name, bt, req.Where); err != nil {
				return err
			}
			fresh = true
		}
		b.seq++
		token := fmt.Sprintf("%d/%d/%s/%d", req.ID, prog.Chunks, b.nonce, b.seq)
		c := newChunk(token, bt.t.OID, bt.t.Key)
		c.ancestors, c.filter = bt.ancestors, bt.objFilter
		b.cur.Store(c)
		// DDL the stream applied before it saw the chunk raised the count;
		// after, it marks the chunk (see ddlEvent).
		if b.ddlGen.Load() != gen {
			b.cur.CompareAndSwap(c, nil)
			continue
		}
		next, err := b.chunk(ctx, c, bt, req, prog, lim)
		b.cur.CompareAndSwap(c, nil)
		if errors.Is(err, errChunkRetry) {
			fresh = false
			backoff = min(max(2*backoff, chunkRetryFirst), chunkRetryMax)
			log.Info("backfill chunk read again", "chunk", prog.Chunks+1, "reason", err, "after", backoff)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			continue
		}
		if err != nil {
			return err
		}
		backoff = 0
		prog = next
		rate := float64(prog.Rows) / max(time.Since(start).Seconds(), 1e-3)
		log.Info("backfill chunk done", "chunk", prog.Chunks, "read", len(c.rows), "written", c.kept, "rows", prog.Rows, "rows_per_sec", fmt.Sprintf("%.0f", rate),
			"read_ms", c.readTime.Milliseconds(), "applied_after_ms", c.applyWait.Milliseconds())
	}
	log.Info("backfill of table done", "chunks", prog.Chunks, "rows", prog.Rows)
	return nil
}

// chunk runs one chunk through the watermarks and waits until the stream
// loop has committed it (or says why not).
func (b *backfiller) chunk(ctx context.Context, c *bfChunk, bt *bfTable, req postgres.BackfillRequest, prog postgres.BackfillProgress, lim *throttle.Limiter) (postgres.BackfillProgress, error) {
	if err := postgres.WriteWatermark(ctx, b.src, b.r.cfg.Name, c.low); err != nil {
		return prog, err
	}
	if req.ChunkRows <= 0 {
		// A request written at the source by other means: LIMIT 0 would
		// read nothing and call the backfill done.
		req.ChunkRows = DefaultBackfillChunkRows
	}
	readStart := time.Now()
	kc, err := postgres.ReadKeyset(ctx, b.read, bt.t, bt.rel, bt.filter, prog.LastKey, req.ChunkRows)
	if err != nil {
		return prog, err
	}
	c.readTime = time.Since(readStart)
	// Every chunk read later sees what this one saw.
	snap := kc.Snap
	b.horizon.Store(&snap)
	if err := lim.Wait(ctx, int64(len(kc.Rows)), kc.Bytes); err != nil {
		return prog, err
	}
	next := prog
	next.Chunks++
	if kc.Last != nil {
		next.LastKey = kc.Last
	}
	next.Done = len(kc.Rows) < req.ChunkRows
	c.mu.Lock()
	c.rows, c.snap, c.progress, c.ready = kc.Rows, kc.Snap, next, true
	c.mu.Unlock()
	if err := b.r.hit(fpBackfillRead); err != nil {
		return prog, err
	}
	if err := postgres.WriteWatermark(ctx, b.src, b.r.cfg.Name, c.high); err != nil {
		return prog, err
	}
	high := time.Now()
	defer func() { c.applyWait = time.Since(high) }()
	select {
	case err := <-c.result:
		if err != nil {
			return prog, err
		}
	case <-ctx.Done():
		return prog, ctx.Err()
	}
	next.Rows = c.progress.Rows
	return next, nil
}

// backfillPart is one table a backfill reads: the requested table, or
// one leaf partition of a requested partitioned table.
type backfillPart struct {
	table *postgres.Table
	// filter is the SQL condition of its chunks: the object's where and
	// the request's.
	filter string
}

// backfillParts finds the requested table among tables and returns what
// to read: the table, or the leaf partitions of a partitioned table, each
// with the SQL condition of its chunks (the object's where and the
// request's, both checked against the source's catalog).
func (r *runner) backfillParts(ctx context.Context, src *pgx.Conn, tables map[string]*postgres.Table, name, cond string) ([]backfillPart, error) {
	t := tables[name]
	if t == nil {
		return nil, permanent(fmt.Errorf("backfill: table %s is not among the pipeline's tables (check its objects list; names are case-sensitive)", name))
	}
	leaves := []*postgres.Table{t}
	if t.Partitioned {
		leaves = leafPartitions(tables, t)
	}
	var parts []backfillPart
	for _, leaf := range leaves {
		filter, err := r.backfillFilter(ctx, src, leaf, r.mapping.filterSQL(leaf.OID), cond)
		if err != nil {
			return nil, err
		}
		parts = append(parts, backfillPart{table: leaf, filter: filter})
	}
	return parts, nil
}

// leafPartitions lists the leaf partitions of a partitioned table among
// tables, at any depth, by name.
func leafPartitions(tables map[string]*postgres.Table, root *postgres.Table) []*postgres.Table {
	byOID := map[uint32]*postgres.Table{}
	for _, t := range tables {
		byOID[t.OID] = t
	}
	var out []*postgres.Table
	for _, t := range tables {
		if t.Partitioned {
			continue
		}
		for p := byOID[t.ParentOID]; p != nil; p = byOID[p.ParentOID] {
			if p == root {
				out = append(out, t)
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name.Quoted() < out[j].Name.Quoted() })
	return out
}

// backfillFilter checks that a table can be backfilled and returns the
// SQL condition of its chunks: the object's (objFilter, as the pipeline
// applies it to the table) and the request's (cond).
func (r *runner) backfillFilter(ctx context.Context, src *pgx.Conn, t *postgres.Table, objFilter, cond string) (string, error) {
	if len(t.Key) == 0 {
		return "", permanent(fmt.Errorf("backfill: table %s has no primary key or unique index, so its rows cannot be upserted at the sink: add a primary key, or copy it again with a new pipeline", t.Name))
	}
	if err := r.mapping.backfillable(t); err != nil {
		return "", err
	}
	if r.mapping.deferred[t.OID] { // set at the run's start only
		return "", permanent(fmt.Errorf("backfill: table %s: its objects item's where condition did not fit the table as the source's catalog had it when this run began (the stream was behind DDL), so this run has no SQL form of it to read the source with; run the backfill again once the pipeline has been restarted past that DDL", t.Name))
	}
	if cond == "" {
		return objFilter, nil
	}
	cols, err := whereColumns(ctx, src, t)
	if err != nil {
		return "", err
	}
	f, err := where.Compile(cond, cols)
	if err != nil {
		return "", permanent(fmt.Errorf("backfill: --where on table %s: %w", t.Name, err))
	}
	if err := postgres.ValidateFilter(ctx, src, t, f.SQL()); err != nil {
		return "", permanent(fmt.Errorf("backfill: --where on table %s: the source refuses it: %w", t.Name, err))
	}
	if objFilter != "" {
		return "(" + objFilter + ") AND (" + f.SQL() + ")", nil
	}
	return f.SQL(), nil
}

// filterSQL returns the object's condition the pipeline applies to a
// table's rows, as SQL ("" for none). The backfill worker reads it while
// the stream loop may add tables (setOptions), hence the lock.
func (m *mapping) filterSQL(oid uint32) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.opts[oid]; o != nil && o.filter != nil {
		return o.filter.SQL()
	}
	return ""
}

// upsertMode says what a backfill writes to a table's sink rows, after the
// object's operations: without update it only inserts the rows the sink
// lacks, without insert it only replaces the rows the sink has.
func (m *mapping) upsertMode(oid uint32) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	o := m.opts[oid]
	switch {
	case o == nil || o.ops&(opInsert|opUpdate) == opInsert|opUpdate:
		return postgres.UpsertAll
	case o.ops&opInsert != 0:
		return postgres.UpsertInsertOnly
	default:
		return postgres.UpsertUpdateOnly
	}
}

// backfillable refuses a backfill of a table whose object's operations
// list holds neither insert nor update: it could write nothing.
func (m *mapping) backfillable(t *postgres.Table) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.opts[t.OID]; o != nil && o.ops&(opInsert|opUpdate) == 0 {
		return permanent(fmt.Errorf("backfill: the operations of table %s's object list neither insert nor update: a backfill could write nothing", t.Name))
	}
	return nil
}

// setOptions sets a table's options while streaming (see filterSQL).
func (m *mapping) setOptions(oid uint32, o *tableOptions) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.opts[oid] = o
}
