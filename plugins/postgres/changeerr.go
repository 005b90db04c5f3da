package postgres

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/record"
)

// prepareError is a failure to prepare a change's statement at the sink
// (a column or table missing there): it says nothing yet about the change.
type prepareError struct{ error }

func (e prepareError) Unwrap() error { return e.error }

// forChange names the change a failed prepare was for: its operation,
// table, key and the position of its source transaction. Other errors
// (from flushing earlier changes) already name theirs and pass unchanged.
func forChange(c check, err error) error {
	var pe prepareError
	if !errors.As(err, &pe) || c.rec == nil {
		return err
	}
	const todo = "the sink's table does not take the statement that applies it: make the sink table's columns match the source's (names, types, generated or identity columns) and run the same command again"
	if c.run > 0 {
		return fmt.Errorf("sink: apply a batch of %d %ss on %s (first key %s) from the source transactions committed at %s and after: %s: %w",
			c.run, c.rec.Op, c.table.Target, keyText(c.table, c.rec), c.rec.Position, todo, pe.error)
	}
	return fmt.Errorf("sink: apply %s on %s (key %s) from the source transaction committed at %s: %s: %w",
		c.rec.Op, c.table.Target, keyText(c.table, c.rec), c.rec.Position, todo, pe.error)
}

// paramRef finds "parameter $N" in PostgreSQL's error context.
var paramRef = regexp.MustCompile(`parameter \$(\d+)`)

// describeChangeError is describeRowError for a change's statement, naming
// the column a failing parameter belongs to (PostgreSQL names only its
// number, e.g. for a value the sink's encoding refuses).
func describeChangeError(c check, err error) error {
	var pgErr *pgconn.PgError
	if c.rec == nil || c.table == nil || !errors.As(err, &pgErr) {
		return describeRowError(err)
	}
	m := paramRef.FindStringSubmatch(pgErr.Where)
	if m == nil {
		return describeRowError(err)
	}
	n, _ := strconv.Atoi(m[1])
	if col := paramColumn(c, n); col != "" {
		return fmt.Errorf("column %s: %w", record.QuoteIdent(col), describeRowError(err))
	}
	return describeRowError(err)
}

// paramColumn returns the column of parameter n (1-based) of a change's
// statement: inserts and updates pass the new row's present columns
// first, then (updates, deletes) the key columns of the row to change. It
// returns "" when it cannot tell (a table without a key).
func paramColumn(c check, n int) string {
	rel, rec := c.rec.Rel, c.rec
	if rel == nil || n < 1 {
		return ""
	}
	if c.stmt == 'i' || c.stmt == 'u' {
		present, params, mask := appendPresent(rel, rec.New, nil, nil, nil)
		if c.stmt == 'u' && !c.upsert {
			// queueUpdate leaves out the key columns that keep their value.
			old := rec.Old
			if old == nil {
				old = rec.New
			}
			present, _ = withoutSameKey(newPlan(c.table, rel), rec, old, present, params, mask[1:])
		}
		if n <= len(present) {
			return rel.Columns[present[n-1]].Name
		}
		n -= len(present)
	}
	if key := matchKey(c.table, rel); c.stmt != 'i' && n <= len(key) {
		return key[n-1]
	}
	return ""
}
