package where

import (
	"errors"
	"fmt"

	"github.com/sluicehq/sluice/engine/record"
)

// Action is what the sink does with a streamed change once the filter has
// seen it.
type Action uint8

const (
	// Skip: the change is about rows outside the filter; drop it.
	Skip Action = iota
	// Insert: insert the new row. An INSERT whose row passes, or an
	// UPDATE that moves a row into the filter (its old row did not pass,
	// its new row does): the sink never had the row.
	Insert
	// Update: apply the UPDATE as it is; the old and the new row both
	// pass.
	Update
	// Delete: delete the row by its key (the old row's key). A DELETE of a
	// row that passed, or an UPDATE that moves a row out of the filter
	// (its old row passed, its new row does not): the sink has the row
	// and must lose it.
	Delete
	// Upsert: the new row passes but whether the old one did is not known
	// (see Change): make the sink's row equal to the new row, inserting it
	// or updating the row with its key. If the UPDATE changed the key (the
	// source sent the old key), the row with the old key, if any, is
	// deleted too.
	Upsert
	// DeleteIfPresent: the row does not pass (or was deleted) and whether
	// it did before is not known: delete the sink's row with the old key
	// (the new row's key if the source sent no old key) if there is one;
	// finding none is fine.
	DeleteIfPresent
)

func (a Action) String() string {
	switch a {
	case Skip:
		return "skip"
	case Insert:
		return "insert"
	case Update:
		return "update"
	case Delete:
		return "delete"
	case Upsert:
		return "upsert"
	case DeleteIfPresent:
		return "delete-if-present"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// Decide is the rule for an UPDATE given whether its old row (oldIn) and
// its new row (newIn) satisfy the filter. It is PostgreSQL's own rule for
// publication row filters (pgoutput_row_filter, PostgreSQL 15): an UPDATE
// whose old row is outside and whose new row is inside is sent as an
// INSERT; inside then outside, as a DELETE of the old row; inside both, as
// the UPDATE; outside both, not at all. The sink then holds exactly the
// source rows that satisfy the filter.
//
//	oldIn  newIn  →  Action
//	false  false     Skip
//	false  true      Insert
//	true   false     Delete
//	true   true      Update
func Decide(oldIn, newIn bool) Action {
	switch {
	case oldIn && newIn:
		return Update
	case newIn:
		return Insert
	case oldIn:
		return Delete
	}
	return Skip
}

// Change decides a streamed INSERT, UPDATE or DELETE (text format). The
// new row is evaluated with unchanged TOASTed values taken from the old
// row when the source sent it (REPLICA IDENTITY FULL). The old row is
// evaluated when every column the filter reads is part of the relation's
// identity (Column.Key, which pgoutput sets on every column under
// REPLICA IDENTITY FULL): from the old tuple when the source sent one,
// else from the new row, since an identity column that did not change is
// not sent again. Otherwise whether the old row passed is unknown, and the
// answer is Upsert (new row passes) or DeleteIfPresent (it does not), which
// leave the sink right whatever the old row was, provided the table has a
// key at the sink.
//
// Insert: Insert or Skip. Update: Decide(oldIn, newIn), or Upsert /
// DeleteIfPresent. Delete: Delete, Skip, or DeleteIfPresent. Other
// operations are not row changes: an error. A row that cannot be evaluated
// gives an error (see Match), never a guess; so does an UPDATE whose row
// enters the filter (Insert or Upsert) while a value of the new row is
// still unchanged-and-not-sent, since the sink could not be given the
// whole row.
func (f *Filter) Change(rec *record.Record) (Action, error) {
	if rec.Format != record.Text {
		return Skip, errors.New("where: the filter evaluates streamed rows in text format only")
	}
	switch rec.Op {
	case record.Insert:
		in, err := f.Match(rec.Rel, rec.New)
		if err != nil || !in {
			return Skip, err
		}
		return Insert, nil
	case record.Update:
		newVals := fillUnchanged(rec.Rel, rec.New, rec.Old)
		newIn, err := f.Match(rec.Rel, newVals)
		if err != nil {
			return Skip, err
		}
		var a Action
		if oldIn, known, err := f.oldIn(rec, newVals); err != nil {
			return Skip, err
		} else if known {
			a = Decide(oldIn, newIn)
		} else if newIn {
			a = Upsert
		} else {
			a = DeleteIfPresent
		}
		if (a == Insert || a == Upsert) && hasUnchanged(newVals) {
			return Skip, fmt.Errorf("where: an UPDATE of %s moves a row into the filter, but the source did not send its unchanged TOASTed values, so the sink cannot be given the whole row; set REPLICA IDENTITY FULL on the source table", rec.Rel.Table)
		}
		return a, nil
	case record.Delete:
		oldIn, known, err := f.oldIn(rec, nil)
		switch {
		case err != nil:
			return Skip, err
		case !known:
			return DeleteIfPresent, nil
		case oldIn:
			return Delete, nil
		}
		return Skip, nil
	}
	return Skip, fmt.Errorf("where: %s is not a row change", rec.Op)
}

// oldIn evaluates the filter on the old row of an UPDATE or DELETE when
// its filtered columns are known (see Change). newVals is the UPDATE's new
// row, used when the source sent no old tuple.
func (f *Filter) oldIn(rec *record.Record, newVals []record.Value) (in, known bool, err error) {
	idx, err := f.indexes(rec.Rel)
	if err != nil {
		return false, false, err
	}
	for _, j := range idx {
		if !rec.Rel.Columns[j].Key {
			return false, false, nil
		}
	}
	vals := rec.Old
	if vals == nil {
		if rec.Op == record.Delete {
			return false, false, nil
		}
		vals = newVals // the identity did not change
	}
	for _, j := range idx {
		if j >= len(vals) || vals[j].Unchanged {
			return false, false, nil
		}
	}
	in, err = f.Match(rec.Rel, vals)
	return in, err == nil, err
}

// fillUnchanged returns the new row with its Unchanged values replaced by
// the old row's, for the columns where the old tuple carries the value:
// identity columns (pgoutput flags every column under REPLICA IDENTITY
// FULL; a key-only old tuple has NULL in the other columns).
func fillUnchanged(rel *record.Relation, newVals, oldVals []record.Value) []record.Value {
	if oldVals == nil || !hasUnchanged(newVals) {
		return newVals
	}
	out := append([]record.Value(nil), newVals...)
	for i := range out {
		if out[i].Unchanged && i < len(oldVals) && i < len(rel.Columns) && rel.Columns[i].Key && !oldVals[i].Unchanged {
			out[i] = oldVals[i]
		}
	}
	return out
}

func hasUnchanged(vals []record.Value) bool {
	for _, v := range vals {
		if v.Unchanged {
			return true
		}
	}
	return false
}
