package postgres

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// When a streamed change finds no row at the sink, and what the applier
// does about it:
//
//   - Tables with a key, UPDATE carrying the whole new row: the statement
//     itself inserts the new row when the update finds none (one
//     statement, in order with the changes around it; see applyupsert.go),
//     with a warning. This is legitimate where the sink may lack a row the
//     source has without anything being wrong: the replay of the copy and
//     stream hand-over window (a table's chunks copied at two snapshots
//     after a resumed copy), rows moving into a where condition or a
//     backfill's range, a sink table that held other rows before the copy
//     (on_conflicting_tables: ignore). The key finds exactly one row, and
//     the new row is complete, so the sink ends equal to the source
//     whatever it held.
//   - Tables with a key, DELETE: nothing to remove; a warning says so
//     (the sink ends without the row, as the source).
//   - Tables with a key, UPDATE with unchanged TOASTed values (pgoutput
//     sends them as 'u'): the row's values are not all known, so nothing
//     can be inserted, and going on would leave the sink without a row
//     the source has. The applier stops with a DivergedError as for a
//     table without a key (below), unless a backfill of the table is
//     unfinished (Applier.SetMayLack): its chunks copy the row from the
//     source, so the update may pass with a warning.
//   - Tables without a key (REPLICA IDENTITY FULL): the row is found by its
//     whole old value, and after the copy's consistent point every change
//     of such a table is applied exactly once, in order. An UPDATE or
//     DELETE that finds no matching row therefore means the sink's table
//     was changed by something else: inserting the new row would leave
//     the sink with rows in the wrong multiplicity, skipping the change
//     would hide it. The applier stops with a DivergedError before the
//     sink transaction commits, so nothing of that source transaction or
//     any later one is applied and the pipeline parks at its last
//     checkpoint.

// DivergedError is a streamed UPDATE or DELETE on a table without a key
// that found no row matching its old row at the sink, or an UPDATE of a
// keyed table without its unchanged TOASTed values that found no row with
// its key: the sink's table no longer equals the source's. No retry can fix
// it; a person must repair the sink's table.
type DivergedError struct {
	Table  record.TableName
	Op     record.Op
	OldRow string     // the old row as column = value pairs, long values cut
	LSN    record.LSN // commit position of the source transaction
	// Key is the key the change looked for, as column=value pairs; empty
	// for a table without a key.
	Key string
}

func (e *DivergedError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("sink: %s on %s (key %s) from the source transaction committed at %s found no row with that key at the sink, "+
			"and the change does not carry the whole new row (the source does not send unchanged TOASTed values again), so the row cannot be inserted from it; "+
			"the sink's table has diverged from the source (the row was deleted at the sink by something other than this pipeline); "+
			"nothing of this source transaction or any later one was applied. Copy the table's rows again with "+
			"`sluice backfill PIPELINE --table %s` (its name at the source, if the pipeline renames it; the backfill runs the pipeline, which lets such updates of the table pass until the backfill is done), "+
			"or put the row back at the sink (`sluice verify PIPELINE` lists the differences) and run the same command again",
			e.Op, e.Table, e.Key, e.LSN, e.Table)
	}
	return fmt.Sprintf("sink: %s on %s from the source transaction committed at %s found no row equal to its old row (%s) at the sink: "+
		"the table has no key, so sluice finds rows by their whole old value, and every change after the copy is applied exactly once; "+
		"the sink's table has diverged from the source (a row changed or deleted at the sink by something other than this pipeline); "+
		"nothing of this source transaction or any later one was applied. Make the sink's table equal to the source's "+
		"(`sluice verify PIPELINE` lists the differences; e.g. put the old row back) and run the same command again, "+
		"or copy the table again with a new pipeline",
		e.Op, e.Table, e.LSN, e.OldRow)
}

// IsDiverged reports whether err says the sink diverged from the source
// (a DivergedError).
func IsDiverged(err error) bool {
	var d *DivergedError
	return errors.As(err, &d)
}

// diverged builds the DivergedError of a change that found no row.
func diverged(t *ApplyTable, rec *record.Record) *DivergedError {
	d := &DivergedError{Table: t.Target, Op: rec.Op, OldRow: rowText(rec), LSN: rec.Position}
	if len(t.Key) > 0 {
		d.Key = keyText(t, rec)
	}
	return d
}

// rowText renders the old row of a change (its new row when it has none)
// as column = value pairs, each value at most 64 bytes, unchanged TOASTed
// values marked.
func rowText(rec *record.Record) string {
	vals := rec.Old
	if vals == nil {
		vals = rec.New
	}
	parts := make([]string, 0, len(vals))
	for i, v := range vals {
		if i >= len(rec.Rel.Columns) {
			break
		}
		s := "NULL"
		switch {
		case v.Unchanged:
			s = "(unchanged TOAST value)"
		case rec.Format == record.Binary && !v.Null:
			s = fmt.Sprintf("(%d bytes)", len(v.Data))
		case !v.Null:
			s = string(v.Data)
			if len(s) > 64 {
				s = strings.ToValidUTF8(s[:64], "") + "…"
			}
			s = "'" + strings.ReplaceAll(s, "'", "''") + "'"
		}
		parts = append(parts, record.QuoteIdent(rec.Rel.Columns[i].Name)+" = "+s)
	}
	return strings.Join(parts, ", ")
}
