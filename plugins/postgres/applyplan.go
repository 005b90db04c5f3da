package postgres

import (
	"bytes"
	"slices"
	"strconv"

	"github.com/sluicehq/sluice/engine/record"
)

// relPlan is what the applier derives from a source relation's
// description and its table once, not per change: the columns a change's
// row is found by and their positions, and the parts of statement shapes
// that do not vary between changes.
type relPlan struct {
	t   *ApplyTable
	key []string // t.Key when the plan was made (DDL changes it in place)
	// match is matchKey(t, rel); matchIdx their positions in rel.Columns
	// (-1: not there; rowMatch then reports the missing column).
	match    []string
	matchIdx []int
	isMatch  []bool // by position in rel.Columns: among matchIdx
	mask     string // matchMask(t, match)
	id       string // rel.ID in decimal
}

// maxPlans bounds the applier's plans: one per relation description seen
// (a description is sent again after DDL).
const maxPlans = 4096

// plan returns the plan of rel and t, made on first use.
func (a *Applier) plan(t *ApplyTable, rel *record.Relation) *relPlan {
	if p := a.plans[rel]; p != nil && p.t == t && slices.Equal(p.key, t.Key) {
		return p
	}
	p := newPlan(t, rel)
	if len(a.plans) >= maxPlans {
		clear(a.plans)
	}
	a.plans[rel] = p
	return p
}

func newPlan(t *ApplyTable, rel *record.Relation) *relPlan {
	match := matchKey(t, rel)
	p := &relPlan{t: t, key: t.Key, match: match, mask: matchMask(t, match), id: strconv.FormatUint(uint64(rel.ID), 10),
		matchIdx: make([]int, len(match)), isMatch: make([]bool, len(rel.Columns))}
	for i, k := range match {
		p.matchIdx[i] = rel.ColumnIndex(k)
		if j := p.matchIdx[i]; j >= 0 {
			p.isMatch[j] = true
		}
	}
	return p
}

// keeps reports whether column i is one the row is found by (the columns
// WHERE pins) whose new value equals the old.
func (p *relPlan) keeps(i int, old, new []record.Value) bool {
	if len(p.t.Key) == 0 || i >= len(old) || i >= len(new) || i >= len(p.isMatch) || !p.isMatch[i] {
		return false
	}
	o, n := old[i], new[i]
	return !o.Unchanged && !n.Unchanged && o.Null == n.Null && bytes.Equal(o.Data, n.Data)
}

// shapeStart begins a statement's shape, naming its kind and relation,
// in buf (a caller's array, so that building it allocates nothing).
func (p *relPlan) shapeStart(buf []byte, kind string) []byte {
	buf = append(buf, kind...)
	buf = append(buf, '/')
	return append(buf, p.id...)
}

// appendPresent appends to present and params the positions and values
// of the columns vals carries a value for (unchanged TOASTed values are
// left out, so the sink keeps what it has), and to shape a '/' and one
// letter per column: '+' present, '-' not.
func appendPresent(rel *record.Relation, vals []record.Value, present []int, params [][]byte, shape []byte) ([]int, [][]byte, []byte) {
	shape = append(shape, '/')
	for i, v := range vals {
		if i >= len(rel.Columns) {
			break
		}
		if v.Unchanged {
			shape = append(shape, '-')
			continue
		}
		shape = append(shape, '+')
		present = append(present, i)
		params = append(params, valueParam(v))
	}
	return present, params, shape
}
