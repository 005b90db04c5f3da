package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/display"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// tableProgress counts one table's full copy.
type tableProgress struct {
	name        record.TableName
	estRows     int64
	chunks      int
	chunksDone  atomic.Int64
	rows, bytes atomic.Int64
	started     atomic.Int64 // unix nanos of the first row
	// prevRows and prevBytes are what chunks finished by earlier runs
	// hold (for status; rows and bytes count this run).
	prevRows, prevBytes int64
}

func (t *tableProgress) addRows(rows, bytes int64) {
	if t.started.Load() == 0 {
		t.started.CompareAndSwap(0, time.Now().UnixNano())
	}
	t.rows.Add(rows)
	t.bytes.Add(bytes)
}

func (t *tableProgress) chunkDone() { t.chunksDone.Add(1) }

func (t *tableProgress) done() bool { return t.chunksDone.Load() >= int64(t.chunks) }

// progress shows the full copy's progress: redrawn per-table lines on a
// terminal, structured log lines otherwise.
type progress struct {
	cfg    Config
	mu     sync.Mutex
	tables []*tableProgress
	start  time.Time
	drawn  int // lines drawn last time on the terminal
}

func newProgress(cfg Config) *progress {
	return &progress{cfg: cfg, start: time.Now()}
}

func (p *progress) add(name record.TableName, plan *postgres.Plan, done map[int]checkpoint.ChunkDone) *tableProgress {
	tp := &tableProgress{name: name, chunks: len(plan.Chunks)}
	for _, c := range plan.Chunks {
		tp.estRows += c.EstRows
	}
	tp.chunksDone.Store(int64(len(done)))
	for _, d := range done {
		tp.prevRows += d.Rows
		tp.prevBytes += d.Bytes
	}
	p.mu.Lock()
	p.tables = append(p.tables, tp)
	p.mu.Unlock()
	return tp
}

// tableStatus lists every table's progress, for status.
func (p *progress) tableStatus() []TableStatus {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]TableStatus, 0, len(p.tables))
	for _, t := range p.tables {
		out = append(out, TableStatus{
			Table:      t.name.String(),
			Chunks:     t.chunks,
			ChunksDone: int(t.chunksDone.Load()),
			Rows:       t.prevRows + t.rows.Load(),
			Bytes:      t.prevBytes + t.bytes.Load(),
			EstRows:    t.estRows,
		})
	}
	return out
}

func (p *progress) totals() (rows, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.tables {
		rows += t.rows.Load()
		bytes += t.bytes.Load()
	}
	return rows, bytes
}

func (p *progress) run(ctx context.Context, log *slog.Logger) {
	display.Loop(ctx, p.cfg.Terminal && p.cfg.Progress != nil, p.cfg.ProgressInterval,
		func() { p.draw(p.cfg.Progress) }, func() { p.log(log) })
}

func (p *progress) finish() {
	if p.cfg.Terminal && p.cfg.Progress != nil {
		p.draw(p.cfg.Progress)
	}
}

func (p *progress) log(log *slog.Logger) {
	rows, bytes := p.totals()
	var est int64
	var done, total int
	p.mu.Lock()
	for _, t := range p.tables {
		est += max(t.estRows, t.rows.Load())
		total++
		if t.done() {
			done++
		}
	}
	p.mu.Unlock()
	elapsed := time.Since(p.start)
	rate := float64(rows) / elapsed.Seconds()
	log.Info("copy progress", "rows", rows, "bytes", bytes, "rows_per_sec", int64(rate),
		"tables_done", done, "tables", total, "eta", display.ETA(est-rows, rate).String())
}

// draw redraws the progress block: a total line, then the tables still
// copying (at most 10) and a count of the finished ones.
func (p *progress) draw(w io.Writer) {
	rows, bytes := p.totals()
	elapsed := time.Since(p.start)
	p.mu.Lock()
	tables := append([]*tableProgress(nil), p.tables...)
	p.mu.Unlock()
	var active []*tableProgress
	var est int64
	done := 0
	for _, t := range tables {
		est += max(t.estRows, t.rows.Load())
		if t.done() {
			done++
		} else if t.rows.Load() > 0 {
			active = append(active, t)
		}
	}
	sort.Slice(active, func(i, j int) bool { return active[i].rows.Load() > active[j].rows.Load() })
	if len(active) > 10 {
		active = active[:10]
	}
	rate := float64(rows) / elapsed.Seconds()
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	lines := 0
	line := func(format string, args ...any) {
		b.WriteString("\x1b[2K")
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
		lines++
	}
	line("copy %s: %d/%d tables, %s rows, %s, %s rows/s, elapsed %s, eta %s",
		p.cfg.Name, done, len(tables), display.Count(rows), display.Bytes(bytes), display.Count(int64(rate)),
		elapsed.Round(time.Second), display.ETA(est-rows, rate))
	for _, t := range active {
		r := t.rows.Load()
		trate := 0.0
		if s := t.started.Load(); s > 0 {
			trate = float64(r) / time.Since(time.Unix(0, s)).Seconds()
		}
		line("  %-40s %10s / ~%-10s %10s rows/s  chunks %d/%d  eta %s", display.Truncate(t.name.String(), 40),
			display.Count(r), display.Count(t.estRows), display.Count(int64(trate)), t.chunksDone.Load(), t.chunks,
			display.ETA(t.estRows-r, trate))
	}
	for i := lines; i < p.drawn; i++ {
		b.WriteString("\x1b[2K\n")
		lines++
	}
	p.drawn = lines
	_, _ = io.WriteString(w, b.String())
}

// storedProgress rebuilds the tables' copy progress from the state dir,
// for status when this run does not copy.
func (r *runner) storedProgress(tables []*postgres.Table) (*progress, error) {
	p := newProgress(r.cfg)
	for _, t := range tables {
		if t.Partitioned {
			continue
		}
		key := tableKey(t.Name)
		saved, found, err := r.store.TablePlan(key)
		if err != nil {
			return nil, err
		}
		if !found {
			continue
		}
		done, err := r.store.DoneChunks(key)
		if err != nil {
			return nil, err
		}
		p.add(t.Name, fromSavedPlan(saved), done)
	}
	return p, nil
}
