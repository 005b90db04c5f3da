package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// rejectedCodes are the SQLSTATEs (or classes, ending in "*") with which a
// sink rejects a row for what it is, not for a passing condition: a
// constraint the source does not have, a value the column cannot hold, a
// column or table missing at the sink. Retrying cannot fix them; a person
// must fix the sink (or the data).
var rejectedCodes = []string{
	"22*",   // data exception: invalid text, out of range, bad encoding
	"23*",   // integrity constraint violation: CHECK, NOT NULL, UNIQUE, FK
	"42703", // undefined column
	"42P01", // undefined table
	"42804", // datatype mismatch
}

// rejectedRow reports whether err is a database rejecting a row: the sink
// refusing to store it, or the source refusing to send it as it is.
func rejectedRow(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	for _, c := range rejectedCodes {
		if c == pgErr.Code || strings.HasSuffix(c, "*") && strings.HasPrefix(pgErr.Code, c[:len(c)-1]) {
			return true
		}
	}
	return false
}

// parked turns a rejected row into a permanent error that says what state
// the pipeline is left in and what to do. The error it wraps names the
// table, the key (or chunk) and the position.
func parked(err error) error {
	return permanent(fmt.Errorf("a row was rejected, so the pipeline stopped (parked at its last checkpoint: nothing after the rejected change was applied, nothing was skipped); fix the cause below (the sink's table or the data) and run the same command again to continue from there: %w", err))
}
