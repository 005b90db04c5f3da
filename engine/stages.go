package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms"
	"github.com/sluicehq/sluice/transforms/plugin"
	"github.com/sluicehq/sluice/transforms/rowexpr"
	"github.com/sluicehq/sluice/transforms/where"
)

// TransformStage is one stage of a pipeline's transforms list: a filter,
// a set or a plugin, applied to the records of the tables Match accepts
// (every table when Match is nil).
type TransformStage struct {
	// Kind is "filter", "set" or "plugin".
	Kind string
	// Match says which source tables the stage applies to; nil: all. A
	// partition is covered when its partitioned table is.
	Match func(record.TableName) bool
	// Scope describes Match for messages, e.g. "sales.orders, crm.*".
	Scope string
	// Filter is the filter's expression; Set the set's column →
	// expression map.
	Filter string
	Set    map[string]string
	// Plugin configures a plugin stage (Log is filled in by the engine).
	Plugin plugin.Config
	// Origin names the stage for messages, e.g.
	// "pipeline.yaml:20 (transforms[1])".
	Origin string
}

// how says what the sink does with a streamed change.
type how uint8

const (
	howApply           how = iota // as its operation says
	howUpsert                     // make the sink's row equal to the new row (Applier.Upsert)
	howDeleteIfPresent            // delete the row if the sink has it (Applier.DeleteIfPresent)
)

// item is a record on its way through the chain.
type item struct {
	rec        record.Record
	how        how
	commitTime time.Time
}

// transformChain is a pipeline's transform stages, resolved against the
// source's catalog: built once per run by newTransformChain (which
// type-checks every expression for every table it applies to and starts
// the plugins) and used by the full copy, the stream and backfills alike.
// While streaming, tables that join the pipeline and tables whose columns
// change by replicated DDL are compiled again (track, see stages_ddl.go).
// Records reach it after the objects' where conditions, with source
// names, in text format (newTransformChain makes every table with a stage
// travel in text), and leave it for the renames. It is safe for
// concurrent use; Close stops the plugins.
type transformChain struct {
	// mu guards the per-table state: the stages' covers, filters and
	// sets, tables and gen. Readers hold it while records go through the
	// stages; track and untrack change it.
	mu     sync.RWMutex
	stages []*chainStage
	// tables holds the tables at least one stage applies to, by OID.
	tables map[uint32]*chainTable
	// incremental: the pipeline streams (keyless tables have more limits).
	incremental bool
	// gen counts the changes of the per-table state since the start: a
	// streamed change staged before a change of gen was staged with
	// stages that no longer hold.
	gen int
}

type chainTable struct {
	name    record.TableName
	keyless bool // the sink finds rows by the whole old row
	// shape is the table the stages were compiled for (nil when no stage
	// needed its columns).
	shape *tableShape
}

type chainStage struct {
	cfg     *TransformStage
	covers  map[uint32]bool
	filters map[uint32]*rowexpr.Filter
	sets    map[uint32]*rowexpr.Set
	plugin  transforms.Transform
}

// tableShape is a table as the stages are compiled for it: its name (and
// its partitioned table's, which scopes match too), its copied columns
// with their expression types, and its key.
type tableShape struct {
	oid    uint32
	name   record.TableName
	parent *record.TableName
	cols   rowexpr.Table
	// key lists the key columns (source names); empty: no key.
	key []string
	// where holds every column (generated ones too) as an objects item's
	// where condition is compiled for it (base types, collations).
	where []where.Column
}

// equal reports whether two shapes compile the same.
func (s *tableShape) equal(o *tableShape) bool {
	return s != nil && o != nil && s.name == o.name && reflect.DeepEqual(s.parent, o.parent) &&
		reflect.DeepEqual(s.cols, o.cols) && slices.Equal(s.key, o.key)
}

// catalogShape reads a table's shape from the source's catalog (a domain
// column has its base type's expression type).
func catalogShape(ctx context.Context, src *pgx.Conn, t *postgres.Table) (*tableShape, error) {
	wcols, err := whereColumns(ctx, src, t)
	if err != nil {
		return nil, err
	}
	copied := map[string]bool{}
	for _, col := range t.CopyColumns() {
		copied[col.Name] = true
	}
	sh := &tableShape{oid: t.OID, name: t.Name, parent: t.Parent, key: slices.Clone(t.Key), cols: rowexpr.Table{Name: t.Name}, where: wcols}
	for _, wc := range wcols {
		if !copied[wc.Name] {
			continue // generated: neither copied nor streamed
		}
		sh.cols.Columns = append(sh.cols.Columns, rowexpr.Column{Name: wc.Name, TypeOID: wc.TypeOID, TypeName: wc.TypeName, Key: slices.Contains(t.Key, wc.Name)})
	}
	return sh, nil
}

// newTransformChain compiles the stages for the tables they apply to. A
// stage that matches no table, an expression that does not type-check on
// a table, a set of a key column, or a filter over the new row on a
// streamed table without a key fails here, every problem reported at
// once; the tables with a stage are switched to text format. With
// startPlugins false (sluice check) plugins are not started, but their
// executables and pins are checked.
func newTransformChain(ctx context.Context, src *pgx.Conn, cfg *Config, tables []*postgres.Table, startPlugins bool) (*transformChain, error) {
	c := &transformChain{tables: map[uint32]*chainTable{}, incremental: cfg.Incremental}
	if len(cfg.Transforms) == 0 {
		return c, nil
	}
	var problems []error
	shapes := map[uint32]*tableShape{}
	shape := func(t *postgres.Table) (*tableShape, error) {
		if sh, ok := shapes[t.OID]; ok {
			return sh, nil
		}
		sh, err := catalogShape(ctx, src, t)
		if err != nil {
			return nil, err
		}
		shapes[t.OID] = sh
		return sh, nil
	}
	for i := range cfg.Transforms {
		sc := &cfg.Transforms[i]
		st := &chainStage{cfg: sc, covers: map[uint32]bool{}, filters: map[uint32]*rowexpr.Filter{}, sets: map[uint32]*rowexpr.Set{}}
		c.stages = append(c.stages, st)
		for _, t := range tables {
			if t.Partitioned || !stageMatches(sc, t) {
				continue
			}
			st.covers[t.OID] = true
			if c.tables[t.OID] == nil {
				c.tables[t.OID] = &chainTable{name: t.Name, keyless: len(t.Key) == 0}
			}
			if sc.Kind != "filter" && sc.Kind != "set" {
				continue
			}
			sh, err := shape(t)
			if err != nil {
				return nil, err
			}
			c.tables[t.OID].shape = sh
			f, s, err := compileStage(sc, sh, cfg.Incremental)
			if err != nil {
				problems = append(problems, err)
				continue
			}
			if f != nil {
				st.filters[t.OID] = f
			}
			if s != nil {
				st.sets[t.OID] = s
			}
		}
		if len(st.covers) == 0 {
			problems = append(problems, fmt.Errorf("%s: tables: %s matches none of the pipeline's tables (names are case-sensitive; list them as schema.table)", sc.Origin, sc.Scope))
		}
		if sc.Kind == "plugin" {
			if err := checkPluginFile(sc); err != nil {
				problems = append(problems, err)
			}
		}
	}
	if len(problems) > 0 {
		return nil, permanent(errors.Join(problems...))
	}
	for _, t := range tables {
		if c.tables[t.OID] != nil {
			t.Binary = false // stages read and write text values
		}
	}
	if startPlugins {
		for _, st := range c.stages {
			if st.cfg.Kind != "plugin" {
				continue
			}
			pc := st.cfg.Plugin
			pc.Log = cfg.Log
			p, err := plugin.Open(ctx, pc)
			if err != nil {
				c.Close()
				err = fmt.Errorf("%s: %w", st.cfg.Origin, err)
				if transforms.IsPermanent(err) {
					return nil, permanent(err)
				}
				return nil, err
			}
			st.plugin = p
		}
	}
	return c, nil
}

// compileStage type-checks a filter or set stage for one table (nil, nil
// for a plugin stage). The error names the stage, the table and the
// problem.
func compileStage(sc *TransformStage, sh *tableShape, incremental bool) (*rowexpr.Filter, *rowexpr.Set, error) {
	keyless := len(sh.key) == 0
	switch sc.Kind {
	case "filter":
		f, err := rowexpr.CompileFilter(sc.Filter, sh.cols)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: filter on table %s: %w", sc.Origin, sh.name, err)
		}
		if incremental && f.ReadsAfter() && keyless {
			return nil, nil, fmt.Errorf("%s: filter on table %s reads the new row (after), but the table has no key: when an update moves a row out of the filter the sink could not find it to delete it; give the table a primary key, or use the objects item's where (which handles this table)", sc.Origin, sh.name)
		}
		return f, nil, nil
	case "set":
		s, err := rowexpr.CompileSet(sc.Set, sh.cols)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: on table %s: %w", sc.Origin, sh.name, err)
		}
		if names := s.ChangeNames(); incremental && keyless && len(names) > 0 {
			// The sink finds a keyless table's rows by their whole old
			// row, which must be computed again as the sink got it: from
			// the row alone.
			return nil, nil, fmt.Errorf("%s: set on table %s reads %s, but the table has no key: the sink finds its rows by the whole old row, which sluice computes again from the row alone; compute the columns from after only, or give the table a primary key", sc.Origin, sh.name, strings.Join(names, ", "))
		}
		return nil, s, nil
	}
	return nil, nil, nil
}

// track makes the stages apply to a table as it is now: one that joined
// the pipeline while streaming, or whose name, columns or key changed by
// replicated DDL. Each stage whose tables: scope matches the table's name
// (or its partitioned table's) covers it, compiled for its shape; a stage
// that no longer matches leaves it. When a stage does not compile for the
// new shape nothing changes and the error (naming each stage, the table
// and the problem) is returned: the caller stops the pipeline, never
// letting the table's rows past a stage. It reports which stages began
// and ceased to cover the table (by origin), and whether anything changed.
func (c *transformChain) track(sh *tableShape) (gained, lost []string, changed bool, err error) {
	if c.empty() {
		return nil, nil, false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cover := make([]bool, len(c.stages))
	same := true
	for i, st := range c.stages {
		cover[i] = stageMatchesName(st.cfg, sh.name, sh.parent)
		if cover[i] != st.covers[sh.oid] {
			same = false
		}
	}
	old := c.tables[sh.oid]
	if same && (old == nil || old.shape.equal(sh) || !slices.ContainsFunc(c.stages, func(st *chainStage) bool {
		return st.covers[sh.oid] && (st.cfg.Kind == "filter" || st.cfg.Kind == "set")
	})) {
		if old != nil {
			old.name, old.keyless = sh.name, len(sh.key) == 0
		}
		return nil, nil, false, nil
	}
	filters := make([]*rowexpr.Filter, len(c.stages))
	sets := make([]*rowexpr.Set, len(c.stages))
	var problems []error
	for i, st := range c.stages {
		if !cover[i] {
			continue
		}
		f, s, err := compileStage(st.cfg, sh, c.incremental)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		filters[i], sets[i] = f, s
	}
	if len(problems) > 0 {
		return nil, nil, false, errors.Join(problems...)
	}
	covered := false
	for i, st := range c.stages {
		switch {
		case cover[i] && !st.covers[sh.oid]:
			gained = append(gained, st.cfg.Origin)
		case !cover[i] && st.covers[sh.oid]:
			lost = append(lost, st.cfg.Origin)
		}
		delete(st.filters, sh.oid)
		delete(st.sets, sh.oid)
		delete(st.covers, sh.oid)
		if !cover[i] {
			continue
		}
		covered = true
		st.covers[sh.oid] = true
		if filters[i] != nil {
			st.filters[sh.oid] = filters[i]
		}
		if sets[i] != nil {
			st.sets[sh.oid] = sets[i]
		}
	}
	if covered {
		c.tables[sh.oid] = &chainTable{name: sh.name, keyless: len(sh.key) == 0, shape: sh}
	} else {
		delete(c.tables, sh.oid)
	}
	c.gen++
	return gained, lost, true, nil
}

// untrack removes a table dropped at the source from every stage.
func (c *transformChain) untrack(oid uint32) {
	if c.empty() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tables[oid] == nil {
		return
	}
	for _, st := range c.stages {
		delete(st.covers, oid)
		delete(st.filters, oid)
		delete(st.sets, oid)
	}
	delete(c.tables, oid)
	c.gen++
}

// generation returns the count of changes to the per-table state (see gen).
func (c *transformChain) generation() int {
	if c.empty() {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// checkPluginFile checks that a plugin stage's executable exists and
// matches its pin, so a check or a run fails before any data moves.
func checkPluginFile(sc *TransformStage) error {
	fi, err := os.Stat(sc.Plugin.Path)
	if err != nil {
		return fmt.Errorf("%s: plugin %s: %w (build it, e.g. go build -o %s ./examples/plugins/mask, or fix path)", sc.Origin, sc.Plugin.Path, errors.Unwrap(err), sc.Plugin.Path)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: plugin %s is not an executable file", sc.Origin, sc.Plugin.Path)
	}
	if sc.Plugin.SHA256 == "" {
		return nil
	}
	f, err := os.Open(sc.Plugin.Path)
	if err != nil {
		return fmt.Errorf("%s: plugin %s: %w", sc.Origin, sc.Plugin.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: plugin %s: %w", sc.Origin, sc.Plugin.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, sc.Plugin.SHA256) {
		return fmt.Errorf("%s: %w", sc.Origin, &plugin.ChecksumError{Path: sc.Plugin.Path, Pinned: sc.Plugin.SHA256, Actual: got})
	}
	return nil
}

func stageMatches(sc *TransformStage, t *postgres.Table) bool {
	return stageMatchesName(sc, t.Name, t.Parent)
}

// stageMatchesName reports whether a stage's tables: scope takes a table
// by its name or its partitioned table's.
func stageMatchesName(sc *TransformStage, name record.TableName, parent *record.TableName) bool {
	if sc.Match == nil {
		return true
	}
	return sc.Match(name) || (parent != nil && sc.Match(*parent))
}

// has reports whether a stage applies to the table with this OID.
func (c *transformChain) has(oid uint32) bool {
	if c == nil {
		return false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.tables[oid] != nil
}

// empty reports whether the pipeline has no stage.
func (c *transformChain) empty() bool { return c == nil || len(c.stages) == 0 }

// Close stops the chain's plugins.
func (c *transformChain) Close() {
	if c == nil {
		return
	}
	for _, st := range c.stages {
		if st.plugin != nil {
			_ = st.plugin.Close()
			st.plugin = nil
		}
	}
}

// Apply runs rows read from the source (inserts: the full copy's and a
// backfill's, after the where condition, with source names, text format
// for tables with a stage) through the stages and returns what remains,
// in order: records a filter drops are left out, sets and plugins change
// values. Plugins get one call per batch (per run of consecutive records
// of the tables they apply to). An expression error, or a permanent
// plugin error, is a permanent error naming the stage, the table, the
// row's key and the position in the expression; the batch is not
// applied.
func (c *transformChain) Apply(ctx context.Context, batch []*record.Record) ([]*record.Record, error) {
	if c.empty() {
		return batch, nil
	}
	items := make([]item, len(batch))
	for i, r := range batch {
		items[i] = item{rec: *r}
	}
	out, err := c.process(ctx, items)
	if err != nil {
		return nil, err
	}
	res := make([]*record.Record, len(out))
	for i := range out {
		res[i] = &out[i].rec
	}
	return res, nil
}

// applyBatch is Apply for the full copy's batches, in place.
func (c *transformChain) applyBatch(ctx context.Context, b *record.Batch) error {
	if c.empty() || len(b.Records) == 0 || !c.has(b.Records[0].Rel.ID) {
		return nil
	}
	items := make([]item, len(b.Records))
	for i := range b.Records {
		items[i] = item{rec: b.Records[i]}
	}
	out, err := c.process(ctx, items)
	if err != nil {
		return err
	}
	b.Records = b.Records[:0]
	for i := range out {
		b.Records = append(b.Records, out[i].rec)
	}
	return nil
}

// process runs items through every stage in order.
func (c *transformChain) process(ctx context.Context, items []item) ([]item, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var err error
	for _, st := range c.stages {
		if len(items) == 0 {
			break
		}
		if st.plugin != nil {
			items, err = st.runPlugin(ctx, items)
		} else {
			items, err = st.runExpr(items, c)
		}
		if err != nil {
			return nil, err
		}
	}
	return items, nil
}

// runExpr applies a filter or set stage to the items of its tables.
func (st *chainStage) runExpr(items []item, c *transformChain) ([]item, error) {
	out := items[:0]
	for _, it := range items {
		rel := it.rec.Rel
		if rel == nil || !st.covers[rel.ID] {
			out = append(out, it)
			continue
		}
		if f := st.filters[rel.ID]; f != nil {
			rowFilter := f.ReadsAfter()
			if rowFilter && (it.rec.Op == record.Delete || it.how == howDeleteIfPresent) {
				// A filter over the new row decides which rows the sink
				// holds; a delete removes the row if the sink has it.
				if it.how == howApply {
					it.how = howDeleteIfPresent
				}
				out = append(out, it)
				continue
			}
			keep, err := f.Keep(&it.rec, it.commitTime)
			if err != nil {
				return nil, st.fail(&it.rec, err)
			}
			switch {
			case rowFilter && it.rec.Op == record.Update && keep:
				// The old row may have been outside the filter, so not at
				// the sink: make the sink's row equal to the new one.
				it.how = howUpsert
			case rowFilter && it.rec.Op == record.Update:
				// The row leaves the filter: delete it if the sink has it.
				it.how = howDeleteIfPresent
			case !keep:
				continue
			}
			out = append(out, it)
			continue
		}
		if s := st.sets[rel.ID]; s != nil {
			keyless := c.tables[rel.ID] != nil && c.tables[rel.ID].keyless
			if it.rec.Op == record.Delete || it.how == howDeleteIfPresent {
				if keyless {
					// The sink matches the whole old row, as it was given.
					if err := s.Apply(&it.rec, true, it.commitTime); err != nil {
						return nil, st.fail(&it.rec, err)
					}
				}
				out = append(out, it)
				continue
			}
			if err := s.Apply(&it.rec, keyless, it.commitTime); err != nil {
				return nil, st.fail(&it.rec, err)
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// runPlugin sends the items of the plugin's tables to it, one call per run
// of consecutive items with the same table coverage and sink action; what
// comes back keeps the run's action and its records' commit times.
func (st *chainStage) runPlugin(ctx context.Context, items []item) ([]item, error) {
	sees := func(it *item) bool { return it.rec.Rel != nil && st.covers[it.rec.Rel.ID] }
	out := make([]item, 0, len(items))
	for i := 0; i < len(items); {
		s, h := sees(&items[i]), items[i].how
		j := i + 1
		for j < len(items) && sees(&items[j]) == s && items[j].how == h {
			j++
		}
		if !s {
			out = append(out, items[i:j]...)
			i = j
			continue
		}
		b := &record.Batch{Records: make([]record.Record, j-i)}
		times := map[record.LSN]time.Time{}
		for k := i; k < j; k++ {
			b.Records[k-i] = items[k].rec
			times[items[k].rec.Position] = items[k].commitTime
			b.Bytes += changeBytes(&items[k].rec)
		}
		if n := len(b.Records); n > 0 {
			b.End = b.Records[n-1].Position
		}
		res, err := st.plugin.Process(ctx, b)
		if err != nil {
			err = fmt.Errorf("%s: plugin on %d records of %s: %w", st.cfg.Origin, j-i, items[i].rec.Rel.Table, err)
			if transforms.IsPermanent(err) {
				return nil, permanent(err)
			}
			return nil, err
		}
		if res != nil {
			for _, r := range res.Records {
				out = append(out, item{rec: r, how: h, commitTime: times[r.Position]})
			}
		}
		i = j
	}
	return out, nil
}

// fail describes an expression error on a record: the stage, the table,
// the row's key, its position, then the expression's position and reason.
func (st *chainStage) fail(rec *record.Record, err error) error {
	at := ""
	if rec.Position != 0 {
		at = " at " + rec.Position.String()
	}
	return permanent(fmt.Errorf("%s: %s of table %s, key %s%s: %w; the pipeline stops here with nothing applied past its last commit: fix the expression (or the data) and run again", st.cfg.Origin, rec.Op, rec.Rel.Table, rowKey(rec), at, err))
}

// rowKey renders a record's key for messages: (a, b)=(1, x), its key
// columns' values as sent (at most 200 bytes each).
func rowKey(rec *record.Record) string {
	vals := rec.New
	if rec.Old != nil && (rec.Op == record.Delete || vals == nil) {
		vals = rec.Old
	}
	var names, shown []string
	for i, c := range rec.Rel.Columns {
		if !c.Key || i >= len(vals) {
			continue
		}
		names = append(names, record.QuoteIdent(c.Name))
		v := vals[i]
		switch {
		case v.Null:
			shown = append(shown, "NULL")
		case v.Unchanged:
			shown = append(shown, "(unchanged)")
		case rec.Format == record.Binary:
			shown = append(shown, fmt.Sprintf("(%d bytes)", len(v.Data)))
		case len(v.Data) > 200:
			shown = append(shown, string(v.Data[:200])+"…")
		default:
			shown = append(shown, string(v.Data))
		}
		if len(names) == 8 {
			names, shown = append(names, "…"), append(shown, "…")
			break
		}
	}
	if len(names) == 0 {
		return "(none)"
	}
	return "(" + strings.Join(names, ", ") + ")=(" + strings.Join(shown, ", ") + ")"
}
