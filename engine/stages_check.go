package engine

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// checkFilterIdentity warns about where conditions and transform stages
// that read what streamed updates and deletes may not carry: columns
// outside the table's replica identity (the old row of an UPDATE or
// DELETE holds only the identity columns, and only when they changed or
// for a delete), and tables without a key whose identity is not FULL.
func (c *checker) checkFilterIdentity() {
	var notes []string
	opts := map[uint32]*tableOptions{}
	if c.mapping != nil {
		opts = c.mapping.opts
	}
	for _, t := range c.leaves() {
		full := t.ReplicaIdentity == 'f'
		if len(t.Key) == 0 && !full {
			if (opts[t.OID] != nil && opts[t.OID].filter != nil) || c.chain.has(t.OID) {
				notes = append(notes, fmt.Sprintf("table %s has no key and no REPLICA IDENTITY FULL: sluice sets FULL before publishing it (more WAL per update and delete), so its where condition and transforms see whole old rows", t.Name))
			}
			continue
		}
		if full {
			continue
		}
		identity := map[string]bool{}
		for _, k := range t.Key {
			identity[k] = true
		}
		outside := func(cols []string) []string {
			var out []string
			for _, col := range cols {
				if !identity[col] {
					out = append(out, record.QuoteIdent(col))
				}
			}
			return out
		}
		if o := opts[t.OID]; o != nil && o.filter != nil {
			if cols := outside(o.filter.Columns()); len(cols) > 0 {
				notes = append(notes, fmt.Sprintf("table %s: its where condition reads %s, outside its replica identity (%s): updates and deletes do not carry the old value, so an update crossing the condition is applied as an upsert or a delete-if-present by key (exact, but slower), and an unchanged TOASTed value the condition reads stops the pipeline", t.Name, strings.Join(cols, ", "), identityName(t.Key)))
			}
		}
		if c.chain == nil {
			continue
		}
		for _, st := range c.chain.stages {
			var before []string
			var reads bool
			if f := st.filters[t.OID]; f != nil {
				before, reads = f.Before()
			} else if s := st.sets[t.OID]; s != nil {
				before, reads = s.Before()
			}
			if !reads {
				continue
			}
			cols := outside(before)
			detail := fmt.Sprintf("%s on table %s reads before (the old row)", st.cfg.Origin, t.Name)
			if len(cols) > 0 {
				detail += ", including " + strings.Join(cols, ", ") + ", outside its replica identity (" + identityName(t.Key) + "): before is nil for updates that keep the key, and holds only the key for deletes, so these columns read as nil there (an operation on nil stops the pipeline with an error)"
			} else {
				detail += ": before is nil for updates that keep the key, so the expression must allow for that"
			}
			notes = append(notes, detail)
		}
	}
	if len(notes) == 0 {
		c.add(CheckFilterIdentity, Pass, "the where conditions and transforms read nothing streamed updates and deletes may lack", "")
		return
	}
	slices.Sort(notes)
	c.add(CheckFilterIdentity, Warn, strings.Join(notes, "; "),
		fmt.Sprintf("at the source: ALTER TABLE ... REPLICA IDENTITY FULL on these tables (every update and delete then logs the whole old row), or change the conditions; or acknowledge with ignore_checks: [%s]", CheckFilterIdentity))
}

func identityName(key []string) string {
	if len(key) == 0 {
		return "none"
	}
	q := make([]string, len(key))
	for i, k := range key {
		q[i] = record.QuoteIdent(k)
	}
	return strings.Join(q, ", ")
}
