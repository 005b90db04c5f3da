package verify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/engine/display"
)

// tableProgress counts one table's first comparison round.
type tableProgress struct {
	name       string
	chunks     int
	estRows    int64
	chunksDone atomic.Int64
	rows       atomic.Int64
}

// progress shows how far the comparison is, as the full copy does:
// redrawn lines on a terminal, log lines otherwise.
type progress struct {
	cfg    *Config
	start  time.Time
	tables []*tableProgress
	est    int64

	mu         sync.Mutex
	phase      string
	first      bool // the first round: counts rows and tables
	phaseTotal int
	phaseDone  atomic.Int64
	rows       atomic.Int64
	mismatched atomic.Int64
	drawn      int
}

func newProgress(cfg *Config, tables []*table) *progress {
	p := &progress{cfg: cfg, start: time.Now()}
	for _, tb := range tables {
		tp := &tableProgress{name: tb.rep.Table, chunks: len(tb.chunks), estRows: max(tb.t.EstRows, 0)}
		tb.prog = tp
		p.tables = append(p.tables, tp)
		p.est += tp.estRows
	}
	return p
}

func (p *progress) setPhase(name string, chunks int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.phaseTotal, p.first = name, chunks, name == "compare"
	p.phaseDone.Store(0)
}

// done counts chunks compared in the current phase; in the first round
// also the table's chunks and the source rows they hold.
func (p *progress) done(tp *tableProgress, chunks int, rows int64) {
	p.phaseDone.Add(int64(chunks))
	p.mu.Lock()
	first := p.first
	p.mu.Unlock()
	if first && tp != nil {
		tp.chunksDone.Add(int64(chunks))
		tp.rows.Add(rows)
		p.rows.Add(rows)
	}
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

func (p *progress) tablesDone() int {
	n := 0
	for _, t := range p.tables {
		if t.chunksDone.Load() >= int64(t.chunks) {
			n++
		}
	}
	return n
}

func (p *progress) log(log *slog.Logger) {
	p.mu.Lock()
	phase, total := p.phase, p.phaseTotal
	p.mu.Unlock()
	rows := p.rows.Load()
	rate := float64(rows) / time.Since(p.start).Seconds()
	log.Info("verify progress", "phase", phase, "chunks_done", p.phaseDone.Load(), "chunks", total,
		"tables_done", p.tablesDone(), "tables", len(p.tables), "rows", rows, "rows_per_sec", int64(rate),
		"mismatched_chunks", p.mismatched.Load())
}

// draw redraws the progress block: a total line, then the tables being
// compared (at most 10).
func (p *progress) draw(w io.Writer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	elapsed := time.Since(p.start)
	rows := p.rows.Load()
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
	if p.first {
		left := time.Duration(0)
		if rate > 0 && p.est > rows {
			left = time.Duration(float64(p.est-rows) / rate * float64(time.Second)).Round(time.Second)
		}
		line("verify %s: %d/%d tables, %d/%d chunks, %s/~%s rows, %s rows/s, %d chunks differ, elapsed %s, eta %s",
			p.cfg.Name, p.tablesDone(), len(p.tables), p.phaseDone.Load(), p.phaseTotal, display.Count(rows), display.Count(max(p.est, rows)),
			display.Count(int64(rate)), p.mismatched.Load(), elapsed.Round(time.Second), left)
		shown := 0
		for _, t := range p.tables {
			d := t.chunksDone.Load()
			if d == 0 || d >= int64(t.chunks) || shown == 10 {
				continue
			}
			shown++
			line("  %-40s %10s / ~%-10s chunks %d/%d", display.Truncate(t.name, 40), display.Count(t.rows.Load()), display.Count(t.estRows), d, t.chunks)
		}
	} else {
		line("verify %s: %s: %d/%d chunks, elapsed %s", p.cfg.Name, p.phase, p.phaseDone.Load(), p.phaseTotal, elapsed.Round(time.Second))
	}
	for i := lines; i < p.drawn; i++ {
		b.WriteString("\x1b[2K\n")
		lines++
	}
	p.drawn = lines
	_, _ = io.WriteString(w, b.String())
}
