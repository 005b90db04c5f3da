// Package verify compares the source and the sink of a pipeline: row
// counts, then checksums over chunks of each table, then the exact rows
// that differ in the chunks whose checksums do not match.
//
// Each side is read at one consistent point (a snapshot exported on each
// side and imported by every worker), and every query runs with the same
// SQL text at both sides (but for the names) in sessions with the same
// settings, so a value's text form — what the checksums hash — is the same
// at both sides exactly when the value is.
//
//	per table:  key ranges (or hash buckets, without a key)
//	per chunk:  count(*) and sum(hash64(md5(row)))  at source ║ at sink
//	mismatch:   re-check at new snapshots (a streaming pipeline catches up)
//	still:      (key, md5(row)) ordered by key at both sides, merged:
//	            missing at sink, extra at sink, different
//
// A table without a key is compared as a multiset of rows: duplicates
// count, and a difference is a row one side has more copies of.
package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// Config says what to compare and how.
type Config struct {
	// Name is the pipeline's name, for progress and logs.
	Name string
	// SourceDSN and SinkDSN are connection strings (with secrets): never
	// logged.
	SourceDSN, SinkDSN string
	// Objects are the pipeline's selected schemas and tables. Partitioned
	// parents are not compared themselves: their partitions are.
	Objects []postgres.Selection
	// Only, when not empty, restricts the comparison to these source
	// tables (a partitioned parent stands for its partitions); each must be
	// among the selected ones.
	Only []record.TableName
	// Target maps a source table's name to the sink's (nil: same name).
	Target postgres.TargetName
	// Rules, when set, says per source table what the pipeline does to its
	// rows on the way (filter, renamed and skipped columns).
	Rules func(record.TableName) Rule

	// Parallel is the number of workers, each with one connection to each
	// side (default 4); ChunkRows the rows per compared chunk (default
	// 100000).
	Parallel  int
	ChunkRows int64
	// Recheck is how many times chunks that differ are compared again, at
	// new snapshots, RecheckDelay apart, before their rows are listed: a
	// streaming pipeline catches up meanwhile, and a chunk equal on any
	// re-check is equal. Zero means 3; negative means never. RecheckDelay
	// defaults to 2s.
	Recheck      int
	RecheckDelay time.Duration
	// MaxDiffRows caps the differences listed per table (default 100;
	// negative: none listed, only counted).
	MaxDiffRows int

	// Log receives structured logs; nil discards them.
	Log *slog.Logger
	// Progress, when set with Terminal, receives live progress lines,
	// redrawn; otherwise progress is logged every ProgressInterval
	// (default 10s).
	Progress         io.Writer
	Terminal         bool
	ProgressInterval time.Duration
}

// Rule adapts the comparison of one table to what the pipeline does to its
// rows. The zero Rule compares every copied column under its own name.
type Rule struct {
	// Where is the pipeline's row filter (SQL over the source table's
	// columns, validated by the source): only source rows that pass it are
	// compared.
	Where string
	// Columns maps source column names to sink column names; a column not
	// in it keeps its name.
	Columns map[string]string
	// Skip lists source columns not compared, e.g. those a transform that
	// is not deterministic sets. Key columns cannot be skipped.
	Skip []string
	// ColumnName, when set, gives the sink name of a column Columns does
	// not list (a case policy).
	ColumnName func(string) string
	// Uncomparable, when set, says why the table's rows cannot be compared
	// (a transform stage drops or rewrites rows): the table is reported
	// with it as its error, not compared.
	Uncomparable string
}

func (c *Config) validate() error {
	var errs []error
	if c.SourceDSN == "" || c.SinkDSN == "" {
		errs = append(errs, errors.New("source and sink DSNs are required"))
	}
	if c.Parallel < 1 {
		c.Parallel = 4
	}
	if c.ChunkRows < 1 {
		c.ChunkRows = 100000
	}
	switch {
	case c.Recheck == 0:
		c.Recheck = 3
	case c.Recheck < 0:
		c.Recheck = 0
	}
	if c.RecheckDelay <= 0 {
		c.RecheckDelay = 2 * time.Second
	}
	switch {
	case c.MaxDiffRows == 0:
		c.MaxDiffRows = 100
	case c.MaxDiffRows < 0:
		c.MaxDiffRows = 0
	}
	if c.Target == nil {
		c.Target = postgres.SameName
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return errors.Join(errs...)
}

// maxBuckets bounds the hash buckets of a table without a key.
const maxBuckets = 4096

// Run compares the selected tables at both sides and returns the report.
// Differences are not errors: check Report.Equal. An error means the
// comparison itself could not be done.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	src, dst, closeBoth, err := postgres.ConnectBoth(ctx, cfg.SourceDSN, cfg.SinkDSN)
	if err != nil {
		return nil, err
	}
	defer closeBoth()

	found, err := postgres.Discover(ctx, src, cfg.Objects)
	if err != nil {
		return nil, err
	}
	selected, err := only(found, cfg.Only)
	if err != nil {
		return nil, err
	}
	v := &verifier{cfg: cfg, log: cfg.Log, rep: &Report{}}
	for _, t := range selected {
		if t.Partitioned {
			continue
		}
		tb, err := v.prepare(ctx, src, dst, t)
		if err != nil {
			return nil, err
		}
		v.tables = append(v.tables, tb)
		v.rep.Tables = append(v.rep.Tables, tb.rep)
	}
	if len(v.tables) == 0 {
		return nil, errors.New("the selected objects contain no tables to compare: check the objects list (schema and table names are case-sensitive)")
	}
	v.log.Info("verifying", "pipeline", cfg.Name, "tables", len(v.tables))

	// The discovery connections now export each round's snapshots.
	p, err := openPool(ctx, &cfg, src, dst)
	if err != nil {
		return nil, err
	}
	defer p.close(ctx)
	v.prog = newProgress(&cfg, v.tables)
	pctx, stopProgress := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	pwg.Go(func() { v.prog.run(pctx, v.log) })
	err = v.compare(ctx, p)
	stopProgress()
	pwg.Wait()
	v.prog.finish()
	if err != nil {
		return nil, err
	}
	v.finish(time.Since(start))
	return v.rep, nil
}

// only keeps the tables named in names (with the partitions of a named
// partitioned table); all tables when names is empty.
func only(tables []*postgres.Table, names []record.TableName) ([]*postgres.Table, error) {
	if len(names) == 0 {
		return tables, nil
	}
	want := map[record.TableName]bool{}
	for _, n := range names {
		want[n] = true
	}
	matched := map[record.TableName]bool{}
	keep := map[uint32]bool{}
	var out []*postgres.Table
	// Tables come parents first, so a partition sees its parent's verdict.
	for _, t := range tables {
		if want[t.Name] || (t.ParentOID != 0 && keep[t.ParentOID]) {
			keep[t.OID] = true
			matched[t.Name] = true
			out = append(out, t)
		}
	}
	var missing []string
	for _, n := range names {
		if !matched[n] {
			missing = append(missing, n.String())
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: not among the pipeline's tables (names are case-sensitive; quote them as in SQL: '\"Schema\".\"Table\"')", strings.Join(missing, ", "))
	}
	return out, nil
}

type verifier struct {
	cfg    Config
	log    *slog.Logger
	rep    *Report
	tables []*table
	prog   *progress
}

// table is one table under comparison.
type table struct {
	t        *postgres.Table
	rep      *TableReport
	src, dst side
	buckets  int // hash buckets, when not split by key ranges (no key, or keys ordered differently at the sink)
	chunks   []*chunk
	prog     *tableProgress

	mu    sync.Mutex
	diffs map[int][]Diff // listed differences per chunk id
}

// chunk is one key range, or one hash bucket, and what each side holds in
// it at the current round's snapshots.
type chunk struct {
	id               int
	lo, hi           []string
	srcRows, dstRows int64
	srcSum, dstSum   string
	equal            bool
	rechecked        bool
}

func (c *chunk) settle() bool {
	c.equal = c.srcRows == c.dstRows && c.srcSum == c.dstSum
	return c.equal
}

func (tb *table) side(src bool) *side {
	if src {
		return &tb.src
	}
	return &tb.dst
}

func (w *worker) conn(src bool) *pgx.Conn {
	if src {
		return w.src
	}
	return w.dst
}

func roleOf(src bool) string {
	if src {
		return "source"
	}
	return "sink"
}

// prepare works out how one table is compared: its name and columns at
// the sink, and its chunks. A table that cannot be compared gets an Error
// in its report and no chunks.
func (v *verifier) prepare(ctx context.Context, src, dst *pgx.Conn, t *postgres.Table) (*table, error) {
	var rule Rule
	if v.cfg.Rules != nil {
		rule = v.cfg.Rules(t.Name)
		if rule.Where == "" && t.Parent != nil {
			// A partition follows its partitioned table's filter.
			rule.Where = v.cfg.Rules(*t.Parent).Where
		}
	}
	sinkName := v.cfg.Target(t.Name)
	tb := &table{t: t, diffs: map[int][]Diff{}, rep: &TableReport{
		Table: t.Name.String(), SinkTable: sinkName.String(), Key: t.Key,
	}}
	mapName := func(c string) string {
		if n, ok := rule.Columns[c]; ok && n != "" {
			return n
		}
		if rule.ColumnName != nil {
			return rule.ColumnName(c)
		}
		return c
	}
	if rule.Uncomparable != "" {
		tb.rep.Error = rule.Uncomparable
		return tb, nil
	}
	tb.src = side{name: t.Name, where: rule.Where}
	tb.dst = side{name: sinkName}
	for _, c := range t.CopyColumns() {
		if slices.Contains(rule.Skip, c.Name) {
			continue
		}
		tb.src.cols = append(tb.src.cols, c.Name)
		tb.dst.cols = append(tb.dst.cols, mapName(c.Name))
	}
	for _, k := range t.Key {
		if slices.Contains(rule.Skip, k) {
			tb.rep.Error = fmt.Sprintf("key column %s is skipped: key columns are always compared", displayName(k))
			return tb, nil
		}
		tb.src.key = append(tb.src.key, k)
		tb.dst.key = append(tb.dst.key, mapName(k))
	}

	// The sink table and its columns.
	var sinkCols []string
	err := dst.QueryRow(ctx, `SELECT ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
			WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
		FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1) AND c.relkind IN ('r', 'p')`, sinkName.Quoted()).Scan(&sinkCols)
	if errors.Is(err, pgx.ErrNoRows) {
		tb.rep.Error = "table " + sinkName.String() + " does not exist at the sink"
		return tb, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sink: look up table %s: %w", sinkName, err)
	}
	var lacking []string
	for _, c := range tb.dst.cols {
		if !slices.Contains(sinkCols, c) {
			lacking = append(lacking, displayName(c))
		}
	}
	if len(lacking) > 0 {
		tb.rep.Error = fmt.Sprintf("sink table %s lacks column(s) %s", sinkName, strings.Join(lacking, ", "))
		return tb, nil
	}

	// Key ranges split a table only when both sides order its keys alike;
	// otherwise (and without a key) its rows go to buckets by a hash of
	// the key (or of the whole row), which needs no order.
	byRange := len(t.Key) > 0
	if byRange {
		same, err := sameOrder(ctx, src, dst, &tb.src, &tb.dst)
		if err != nil {
			return nil, err
		}
		if !same {
			v.log.Info("the key's collation differs between source and sink: comparing by hash buckets of the key", "table", t.Name.String())
			byRange = false
		}
	}
	if byRange {
		plan, err := postgres.PlanChunks(ctx, src, t, v.cfg.ChunkRows)
		if err != nil {
			return nil, err
		}
		tb.rep.Method = plan.Method
		for _, c := range plan.Chunks {
			tb.chunks = append(tb.chunks, &chunk{id: c.ID, lo: c.Lo, hi: c.Hi})
		}
	} else {
		est := max(t.EstRows, t.Pages*60, 1)
		tb.buckets = int(min(max((est+v.cfg.ChunkRows-1)/v.cfg.ChunkRows, 1), maxBuckets))
		tb.rep.Method = "hash"
		for i := range tb.buckets {
			tb.chunks = append(tb.chunks, &chunk{id: i})
		}
	}
	tb.rep.Chunks = len(tb.chunks)
	return tb, nil
}

type job = func(context.Context, *worker) error

// compare runs the rounds: every chunk, then the re-checks of the chunks
// that differ, then the listing of the rows that differ.
func (v *verifier) compare(ctx context.Context, p *pool) error {
	if err := p.snapshot(ctx); err != nil {
		return err
	}
	var jobs []job
	total := 0
	for _, tb := range v.tables {
		total += len(tb.chunks)
		jobs = append(jobs, v.sumJobs(tb, tb.chunks)...)
	}
	v.prog.setPhase("compare", total)
	if err := p.run(ctx, jobs); err != nil {
		return err
	}
	pending := v.settle(false)

	for round := 1; round <= v.cfg.Recheck && len(pending) > 0; round++ {
		n := 0
		for _, cs := range pending {
			n += len(cs)
		}
		v.log.Info("chunks differ: re-checking them", "chunks", n, "round", round, "of", v.cfg.Recheck, "after", v.cfg.RecheckDelay)
		v.prog.setPhase(fmt.Sprintf("re-check %d/%d", round, v.cfg.Recheck), n)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(v.cfg.RecheckDelay):
		}
		if err := p.snapshot(ctx); err != nil {
			return err
		}
		v.rep.Rechecks = round
		jobs = jobs[:0]
		for _, tb := range v.tables {
			if cs := pending[tb]; len(cs) > 0 {
				jobs = append(jobs, v.sumJobs(tb, cs)...)
			}
		}
		if err := p.run(ctx, jobs); err != nil {
			return err
		}
		pending = v.settle(true)
	}
	if len(pending) == 0 {
		return nil
	}

	// List the rows of what still differs, at the last round's snapshots.
	n := 0
	jobs = jobs[:0]
	for _, tb := range v.tables {
		cs := pending[tb]
		if len(cs) == 0 {
			continue
		}
		n += len(cs)
		jobs = append(jobs, v.diffJobs(tb, cs)...)
	}
	v.prog.setPhase("listing differences", n)
	if err := p.run(ctx, jobs); err != nil {
		return err
	}
	jobs = jobs[:0]
	for _, tb := range v.tables {
		if len(pending[tb]) > 0 {
			v.collect(tb)
			jobs = append(jobs, v.detailJob(tb))
		}
	}
	return p.run(ctx, jobs)
}

// settle compares each chunk's two sides after a round and returns the
// chunks that differ, per table. After a re-check round only the chunks
// that differed before are looked at.
func (v *verifier) settle(recheck bool) map[*table][]*chunk {
	pending := map[*table][]*chunk{}
	for _, tb := range v.tables {
		for _, c := range tb.chunks {
			if recheck && c.equal {
				continue
			}
			if c.settle() {
				c.rechecked = recheck
				continue
			}
			pending[tb] = append(pending[tb], c)
		}
	}
	v.prog.mismatched.Store(int64(countChunks(pending)))
	return pending
}

func countChunks(m map[*table][]*chunk) int {
	n := 0
	for _, cs := range m {
		n += len(cs)
	}
	return n
}

// sumJobs counts and hashes the given chunks at both sides: one job per key
// range, or one job for all buckets of a table without a key (one scan of
// the table per side computes them all).
func (v *verifier) sumJobs(tb *table, cs []*chunk) []job {
	if tb.buckets > 0 {
		return []job{func(ctx context.Context, w *worker) error {
			byID := make(map[int]*chunk, len(cs))
			for _, c := range cs {
				byID[c.id] = c
			}
			err := both(func(isSrc bool) error {
				for _, c := range cs {
					if isSrc {
						c.srcRows, c.srcSum = 0, "0"
					} else {
						c.dstRows, c.dstSum = 0, "0"
					}
				}
				return query(ctx, w.conn(isSrc), tb.side(isSrc).bucketSums(tb.buckets), nil, func(vals [][]byte) error {
					id, err1 := strconv.Atoi(string(vals[0]))
					n, err2 := strconv.ParseInt(string(vals[1]), 10, 64)
					if err := errors.Join(err1, err2); err != nil {
						return err
					}
					c := byID[id]
					switch {
					case c == nil:
					case isSrc:
						c.srcRows, c.srcSum = n, string(vals[2])
					default:
						c.dstRows, c.dstSum = n, string(vals[2])
					}
					return nil
				})
			})
			if err != nil {
				return fmt.Errorf("compare %s: %w", tb.t.Name, err)
			}
			var rows int64
			for _, c := range cs {
				rows += c.srcRows
			}
			v.prog.done(tb.prog, len(cs), rows)
			return nil
		}}
	}
	jobs := make([]job, len(cs))
	for i, c := range cs {
		jobs[i] = func(ctx context.Context, w *worker) error {
			err := both(func(isSrc bool) error {
				sql, params, err := tb.side(isSrc).rangeSum(scope{lo: c.lo, hi: c.hi})
				if err != nil {
					return err
				}
				var n int64
				var sum string
				err = query(ctx, w.conn(isSrc), sql, params, func(vals [][]byte) error {
					var err error
					n, err = strconv.ParseInt(string(vals[0]), 10, 64)
					sum = string(vals[1])
					return err
				})
				if err != nil {
					return fmt.Errorf("%s: %w", roleOf(isSrc), err)
				}
				if isSrc {
					c.srcRows, c.srcSum = n, sum
				} else {
					c.dstRows, c.dstSum = n, sum
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("compare %s chunk %d: %w", tb.t.Name, c.id, err)
			}
			v.prog.done(tb.prog, 1, c.srcRows)
			return nil
		}
	}
	return jobs
}

// record counts a difference found in chunk id and keeps it when the
// chunk has not listed MaxDiffRows yet (the table's list is cut to
// MaxDiffRows when the chunks' lists are put together).
func (tb *table) record(id, limit int, d Diff) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	n := int64(1)
	if d.Copies > 0 {
		n = d.Copies
	}
	switch d.Kind {
	case Missing:
		tb.rep.Missing += n
	case Extra:
		tb.rep.Extra += n
	case Different:
		tb.rep.Different += n
	}
	if len(tb.diffs[id]) < limit {
		tb.diffs[id] = append(tb.diffs[id], d)
	} else {
		tb.rep.Truncated = true
	}
}

// diffJobs list the differing rows of the given chunks: one job per key
// range, or one for the buckets of a table.
func (v *verifier) diffJobs(tb *table, cs []*chunk) []job {
	limit := v.cfg.MaxDiffRows
	if tb.buckets > 0 {
		ids := make([]int, len(cs))
		for i, c := range cs {
			ids[i] = c.id
		}
		return []job{func(ctx context.Context, w *worker) error {
			emit := func(d Diff) { tb.record(0, limit, d) }
			var err error
			if len(tb.src.key) == 0 {
				err = mergeKeyless(ctx, w.src, w.dst, &tb.src, &tb.dst, tb.buckets, ids, emit)
			} else {
				err = mergeKeyed(ctx, w.src, w.dst, &tb.src, &tb.dst, scope{buckets: tb.buckets, ids: ids}, emit)
			}
			if err != nil {
				return fmt.Errorf("list differences of %s: %w", tb.t.Name, err)
			}
			v.prog.done(nil, len(cs), 0)
			return nil
		}}
	}
	jobs := make([]job, len(cs))
	for i, c := range cs {
		jobs[i] = func(ctx context.Context, w *worker) error {
			err := mergeKeyed(ctx, w.src, w.dst, &tb.src, &tb.dst, scope{lo: c.lo, hi: c.hi}, func(d Diff) { tb.record(c.id, limit, d) })
			if err != nil {
				return fmt.Errorf("list differences of %s chunk %d: %w", tb.t.Name, c.id, err)
			}
			v.prog.done(nil, 1, 0)
			return nil
		}
	}
	return jobs
}

// collect puts the chunks' lists of differences together in chunk order,
// cut to MaxDiffRows.
func (v *verifier) collect(tb *table) {
	for _, c := range tb.chunks {
		for _, d := range tb.diffs[c.id] {
			if len(tb.rep.Diffs) >= v.cfg.MaxDiffRows {
				tb.rep.Truncated = true
				return
			}
			d.Text = d.Format(tb.rep.Key)
			tb.rep.Diffs = append(tb.rep.Diffs, d)
		}
	}
}

// detailJob finds which columns differ in the listed rows that differ.
func (v *verifier) detailJob(tb *table) job {
	return func(ctx context.Context, w *worker) error {
		for i, d := range tb.rep.Diffs {
			if d.Kind != Different || len(tb.src.cols) == 0 {
				continue
			}
			cols, err := differingColumns(ctx, w.src, w.dst, &tb.src, &tb.dst, d.Key)
			if err != nil {
				return fmt.Errorf("read a differing row of %s: %w", tb.t.Name, err)
			}
			tb.rep.Diffs[i].Columns = cols
			tb.rep.Diffs[i].Text = tb.rep.Diffs[i].Format(tb.rep.Key)
		}
		return nil
	}
}

// finish fills in the counts of the report.
func (v *verifier) finish(d time.Duration) {
	r := v.rep
	for _, tb := range v.tables {
		tr := tb.rep
		for _, c := range tb.chunks {
			tr.SourceRows += c.srcRows
			tr.SinkRows += c.dstRows
			if !c.equal {
				tr.Mismatched++
			}
			if c.rechecked {
				tr.Rechecked++
			}
		}
		r.SourceRows += tr.SourceRows
		r.SinkRows += tr.SinkRows
		r.Chunks += tr.Chunks
		r.Mismatched += tr.Mismatched
	}
	r.Duration = d
	r.Seconds = d.Seconds()
}

// sameOrder reports whether both sides order the key columns' values
// alike: same collation (the database default resolved), or none.
func sameOrder(ctx context.Context, src, dst *pgx.Conn, s, d *side) (bool, error) {
	read := func(conn *pgx.Conn, sd *side, role string) (map[string]string, error) {
		rows, err := conn.Query(ctx, collationSQL, sd.name.Quoted(), sd.key)
		if err != nil {
			return nil, fmt.Errorf("%s: read the key collations of %s: %w", role, sd.name, err)
		}
		out := map[string]string{}
		for rows.Next() {
			var name, coll string
			if err := rows.Scan(&name, &coll); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%s: read the key collations of %s: %w", role, sd.name, err)
			}
			out[name] = coll
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("%s: read the key collations of %s: %w", role, sd.name, err)
		}
		return out, nil
	}
	sc, err := read(src, s, "source")
	if err != nil {
		return false, err
	}
	dc, err := read(dst, d, "sink")
	if err != nil {
		return false, err
	}
	for i, k := range s.key {
		a, ok1 := sc[k]
		b, ok2 := dc[d.key[i]]
		if !ok1 || !ok2 || a != b {
			return false, nil
		}
	}
	return true, nil
}
