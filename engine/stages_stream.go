package engine

import (
	"context"
	"fmt"
	"slices"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/where"
)

// whereChange decides a streamed change by its table's options: dropped
// (ok false) when its operations leave it out or its where condition says
// so (where.Filter.Change, PostgreSQL's rule for updates crossing the
// condition), else the record to go on with and what the sink does with
// it. The result keeps source names. A where condition compiled for
// other columns than rec's relation is compiled again first (whereFor).
func (r *runner) whereChange(ctx context.Context, rec *record.Record, commitLSN record.LSN) (it item, ok bool, err error) {
	action := where.Update // as it is
	if o := r.mapping.opts[rec.Rel.ID]; o != nil {
		if o.ops&opBit(rec.Op) == 0 {
			return item{}, false, nil
		}
		if o, err = r.whereFor(ctx, o, rec.Rel, commitLSN); err != nil {
			return item{}, false, err
		}
		if o.filter != nil {
			a, err := o.filter.Change(rec)
			if err != nil {
				return item{}, false, permanent(fmt.Errorf("table %s: %s at %s: %w", rec.Rel.Table, rec.Op, commitLSN, err))
			}
			action = a
		}
	}
	it = item{rec: *rec}
	switch action {
	case where.Skip:
		return item{}, false, nil
	case where.Update:
	case where.Insert:
		it.rec.Op, it.rec.New, it.rec.Old = record.Insert, filledNew(rec), nil
	case where.Delete:
		if rec.Op == record.Update {
			it.rec.Op, it.rec.Old, it.rec.New = record.Delete, rec.Old, nil
			if it.rec.Old == nil {
				it.rec.Old = rec.New // the key did not change
			}
		}
	case where.Upsert:
		it.rec.New, it.how = filledNew(rec), howUpsert
	case where.DeleteIfPresent:
		it.how = howDeleteIfPresent
	default:
		return item{}, false, fmt.Errorf("table %s: unexpected filter action %s", rec.Rel.Table, action)
	}
	return it, true, nil
}

// applyItem maps a decided change to the sink's names and applies it.
func (r *runner) applyItem(ctx context.Context, applier *postgres.Applier, rec *record.Record, h how, commitLSN record.LSN) error {
	if rec.Rel == nil || rec.Rel.Table == postgres.HeartbeatTable {
		return applier.Apply(ctx, rec, commitLSN)
	}
	mapped := r.mapping.mapRecord(rec)
	switch h {
	case howUpsert:
		return applier.Upsert(ctx, mapped, commitLSN)
	case howDeleteIfPresent:
		return applier.DeleteIfPresent(ctx, mapped, commitLSN)
	}
	return applier.Apply(ctx, mapped, commitLSN)
}

// stageEvents runs the row changes of one slice of streamed events
// through the where conditions and the transform stages, so that a plugin
// gets the slice's changes in one call (one per run of its tables' changes
// with the same sink action) rather than one per change. It returns the
// events to apply, in order, and for each change event what the sink does
// with it (hows[i] for evs[i]). Changes of transactions already applied
// (skipping, as the stream loop decides it from Begin events; skipping is
// its state at the slice's start) and of the heartbeat pass as they are.
// A TRUNCATE ends a batch, so that it stays between the changes around
// it; otherwise the results are put back into their transactions by their
// position (a transform keeps each record's Position).
//
// Staging stops after a change that may change what the stages and the
// options do with the changes after it (a DDL event; the first change of
// a relation the stream has not seen, whose table may join the pipeline:
// ddlRun.stageBarrier): n is the number of events of evs staged, the
// stream loop applies them and then stages the rest.
//
// On an error (an expression failing on a row, a plugin error) it returns
// the error with the events of the transactions before the failing one,
// worked out by running the batch again transaction by transaction: the
// caller applies and commits those, then stops, so the pipeline parks at
// the failing transaction with everything before it at the sink.
func (r *runner) stageEvents(ctx context.Context, evs []postgres.Event, skipping bool, applied record.LSN) (out []postgres.Event, hows []how, n int, err error) {
	out = make([]postgres.Event, 0, len(evs))
	hows = make([]how, 0, len(evs))
	var (
		items  []item
		held   []postgres.Event
		staged []bool // per held event: a change that went into items
	)
	// flush processes the held items and emits the held events; with stop
	// set, only those of the transactions before the one committed at
	// stop.
	var flush func(stop record.LSN) error
	flush = func(stop record.LSN) error {
		batch, nheld := items, len(held)
		if stop != 0 {
			n := 0
			for n < len(batch) && batch[n].rec.Position < stop {
				n++
			}
			batch = batch[:n]
			for nheld = 0; nheld < len(held) && held[nheld].CommitLSN < stop; nheld++ {
			}
		}
		var res []item
		if len(batch) > 0 {
			multi := batch[0].rec.Position != batch[len(batch)-1].rec.Position
			in := batch
			if multi {
				in = slices.Clone(batch) // the stages work in place; keep batch for a retry by transaction
			}
			var err error
			if res, err = r.chain.process(ctx, in); err != nil {
				if !multi {
					if ferr := flush(batch[0].rec.Position); ferr != nil {
						return ferr
					}
					return err
				}
				// Find the failing transaction; emit those before it.
				for j := 0; j < len(batch); {
					k := j
					for k < len(batch) && batch[k].rec.Position == batch[j].rec.Position {
						k++
					}
					if _, terr := r.chain.process(ctx, slices.Clone(batch[j:k])); terr != nil {
						if ferr := flush(batch[j].rec.Position); ferr != nil {
							return ferr
						}
						return terr
					}
					j = k
				}
				return err // the transactions pass one by one but not together
			}
		}
		k := 0
		for i := range held[:nheld] {
			ev := &held[i]
			if !staged[i] {
				out = append(out, *ev)
				hows = append(hows, howApply)
				continue
			}
			if i > 0 && staged[i-1] && held[i-1].CommitLSN == ev.CommitLSN {
				continue // the transaction's results are out already
			}
			for k < len(res) && res[k].rec.Position == ev.CommitLSN {
				out = append(out, postgres.Event{Kind: postgres.EventChange, CommitLSN: ev.CommitLSN, CommitTime: ev.CommitTime, Xid: ev.Xid, Record: res[k].rec})
				hows = append(hows, res[k].how)
				k++
			}
		}
		if k != len(res) {
			return permanent(fmt.Errorf("transforms: %d records came back out of their transactions' order (a plugin changed their position?); stopping with nothing applied past the last commit", len(res)-k))
		}
		items, held, staged = items[:0], held[:0], staged[:0]
		return nil
	}
	n = len(evs)
events:
	for i := range evs {
		ev := &evs[i]
		switch ev.Kind {
		case postgres.EventBegin:
			skipping = ev.CommitLSN <= applied
		case postgres.EventTruncate:
			if err := flush(0); err != nil {
				return out, hows, 0, err
			}
			out = append(out, *ev)
			hows = append(hows, howApply)
			if !skipping && r.ddl.truncateBarrier(ev.Truncated) {
				n = i + 1
				break events
			}
			continue
		case postgres.EventChange:
			rec := &ev.Record
			if skipping || rec.Rel == nil || rec.Rel.Table == postgres.HeartbeatTable {
				break
			}
			it, ok, err := r.whereChange(ctx, rec, ev.CommitLSN)
			if err != nil {
				if ferr := flush(ev.CommitLSN); ferr != nil {
					return out, hows, 0, ferr
				}
				return out, hows, 0, err
			}
			held = append(held, *ev)
			staged = append(staged, true)
			if ok {
				it.rec.Position = ev.CommitLSN
				it.commitTime = ev.CommitTime
				items = append(items, it)
			}
			if r.ddl.stageBarrier(rec.Rel, rec.Op) {
				n = i + 1
				break events
			}
			continue
		}
		held = append(held, *ev)
		staged = append(staged, false)
	}
	if err := flush(0); err != nil {
		return out, hows, 0, err
	}
	return out, hows, n, nil
}

// stageWindow is a received slice of events on its way through the
// stages, staged a window at a time: each window ends after a change that
// may change the stages or options (see stageEvents), applied before the
// next window is staged.
type stageWindow struct {
	raw []postgres.Event
	n   int // raw[:n] are staged
}

// done reports whether the whole slice is staged.
func (w *stageWindow) done() bool { return w.n >= len(w.raw) }

// stageNext stages the slice's next window (skipping as the stream loop
// has it after the window before).
func (r *runner) stageNext(ctx context.Context, w *stageWindow, skipping bool, applied record.LSN) ([]postgres.Event, []how, error) {
	evs, hows, n, err := r.stageEvents(ctx, w.raw[w.n:], skipping, applied)
	w.n += n
	return evs, hows, err
}

// restage stages the change that ended the window again, and the window
// after it: applying it made its table join the pipeline, so it was staged
// without the table's options and stages. i is its index among the
// window's staged events, of which there are staged. The error is a
// staging error, as stageNext's.
func (r *runner) restage(ctx context.Context, w *stageWindow, i, staged int, skipping bool, applied record.LSN) ([]postgres.Event, []how, error) {
	if i != staged-1 || w.n == 0 {
		return nil, nil, fmt.Errorf("internal error: a table joined the pipeline at change %d of a staged window of %d events, not at its end; please report it", i+1, staged)
	}
	w.n--
	return r.stageNext(ctx, w, skipping, applied)
}
