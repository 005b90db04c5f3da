package postgres

// Updates that may find no row (see diverged.go for when that is
// legitimate) insert the new row in the same statement:
//
//	WITH sluice_u AS (UPDATE t SET … WHERE key = … RETURNING 1)
//	INSERT INTO t (…) SELECT … WHERE NOT EXISTS (SELECT FROM sluice_u)
//
// so the fallback happens exactly where the update stands among the
// pipelined statements: a later DELETE or UPDATE of the same key, in the
// same flush, comes after it. (A fallback queued after the flush, as
// before, re-inserted rows a later DELETE had removed, and turned two
// updates of one missing row into two inserts.) The statement's command
// tag is INSERT's: the number of rows the update did not find.

import (
	"context"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// queueUpsert queues an UPDATE of a keyed table whose new row is whole
// (no unchanged TOASTed value): found by the old key, or inserted when
// the sink has no row with that key.
func (a *Applier) queueUpsert(ctx context.Context, t *ApplyTable, rec *record.Record, old []record.Value) error {
	p := a.plan(t, rec.Rel)
	var pbuf [64]int
	var sbuf [192]byte
	// The parameters: the new row's columns ($1…$n, for SET and INSERT),
	// then the old key (for WHERE).
	present, params, shape := appendPresent(rec.Rel, rec.New, pbuf[:0], make([][]byte, 0, len(rec.New)+len(p.match)), p.shapeStart(sbuf[:0], "U"))
	shape = appendSetMask(shape, p, rec, old, present)
	n := len(params)
	params, shape, err := a.rowMatch(p, rec, old, params, shape)
	if err != nil {
		return err
	}
	build := func() string {
		var sets []string
		for j, m := range appendSetMask(nil, p, rec, old, present)[1:] {
			if m == 's' {
				sets = append(sets, record.QuoteIdent(rec.Rel.Columns[present[j]].Name)+" = $"+strconv.Itoa(j+1))
			}
		}
		vals := make([]string, len(present))
		for i := range present {
			vals[i] = "$" + strconv.Itoa(i+1)
		}
		// OVERRIDING SYSTEM VALUE: as the plain insert, an identity column
		// GENERATED ALWAYS takes the source's value.
		return "WITH sluice_u AS (UPDATE " + t.Target.Quoted() + " SET " + strings.Join(sets, ", ") + whereSQL(p, rec, old, n) + " RETURNING 1) " +
			"INSERT INTO " + t.Target.Quoted() + " (" + strings.Join(columnNames(rec.Rel, present), ", ") + ") OVERRIDING SYSTEM VALUE " +
			"SELECT " + strings.Join(vals, ", ") + " WHERE NOT EXISTS (SELECT FROM sluice_u)"
	}
	return a.queue(ctx, shape, build, params, check{rec: rec, table: t, lenient: true, upsert: true, stmt: 'u'})
}

// appendSetMask appends to shape a '/' and, for each present column,
// whether the UPDATE sets it ('s') or not ('k'): all but the columns the
// row is found by (matchKey) that keep their value (the WHERE already
// pins them, and an identity column GENERATED ALWAYS may not be set at
// all), unless that leaves none (SET needs a column). The statement's SET
// list is read from the same mask.
func appendSetMask(shape []byte, p *relPlan, rec *record.Record, old []record.Value, present []int) []byte {
	shape = append(shape, '/')
	start, sets := len(shape), false
	for _, i := range present {
		if p.keeps(i, old, rec.New) {
			shape = append(shape, 'k')
		} else {
			shape = append(shape, 's')
			sets = true
		}
	}
	if !sets {
		for j := start; j < len(shape); j++ {
			shape[j] = 's'
		}
	}
	return shape
}

// upsertRunSQL is an update run's statement (see applybatch.go): the
// run's rows update the sink's rows with their keys, and rows whose key
// the sink lacks are inserted, in one statement. Both parts read the
// table as it was before the statement (one snapshot), so NOT EXISTS
// finds exactly the keys the update did not: a run holds each key once,
// and its keys do not change. The insert's scan is gated on the update
// having touched fewer rows than the run holds ($1 is the run's first
// column, one element per row): the count is computed once, so a run
// whose rows are all there (the usual case) costs no lookup per row
// beyond the update's own (measured: 2000-row runs on a 200k-row table,
// 13.5 ms plain update, 14.2 ms gated, 19.0 ms ungated).
func upsertRunSQL(update, insert, notThere string) string {
	return "WITH sluice_u AS (" + update + " RETURNING 1) " + insert +
		" WHERE (SELECT count(*) FROM sluice_u) < pg_catalog.cardinality($1::text[]) AND " + notThere
}
