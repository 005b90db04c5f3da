package postgres

import (
	"slices"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// matchKey returns the columns by which a change's old row finds its row
// at the sink: the source relation's replica identity as pgoutput
// describes it (its key flags), which is the table's key, except on a
// table that has a primary key and REPLICA IDENTITY USING INDEX on
// another unique index. pgoutput then sends that index's columns as the
// old key (the primary key's as NULL), and omits the old key entirely
// when only the primary key changed, so the primary key cannot find the
// row; the identity index can, old or new. Tables without a key and
// tables with REPLICA IDENTITY FULL (every column flagged) use the key.
func matchKey(t *ApplyTable, rel *record.Relation) []string {
	if len(t.Key) == 0 || rel == nil {
		return t.Key
	}
	var ident []string
	for _, c := range rel.Columns {
		if c.Key {
			ident = append(ident, c.Name)
		}
	}
	if len(ident) == 0 || len(ident) == len(rel.Columns) || len(ident) == len(t.Key) && !slices.ContainsFunc(ident, func(c string) bool { return !slices.Contains(t.Key, c) }) {
		return t.Key
	}
	return ident
}

// matchMask names the key a statement finds its row by, for its shape:
// "k" for the table's key, else the identity's columns.
func matchMask(t *ApplyTable, key []string) string {
	if slices.Equal(key, t.Key) {
		return "k"
	}
	return "k:" + strings.Join(key, "\x00")
}
