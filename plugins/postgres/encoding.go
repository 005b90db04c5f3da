package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// sqlASCII makes a session with a SQL_ASCII server use client_encoding
// SQL_ASCII. Such a database holds bytes, not characters, and may hold
// bytes that are not UTF-8: in SQL_ASCII they pass through unchanged, from
// the source and into a SQL_ASCII sink, where UTF8 would make the source
// refuse to send them and the sink refuse to store them. A UTF8 sink still
// checks them, and refuses invalid ones with an error naming the row.
func sqlASCII(ctx context.Context, pc *pgconn.PgConn) error {
	if pc.ParameterStatus("server_encoding") != "SQL_ASCII" {
		return nil
	}
	if _, err := pc.Exec(ctx, "SET client_encoding TO 'SQL_ASCII'").ReadAll(); err != nil {
		return fmt.Errorf("set client_encoding SQL_ASCII for a SQL_ASCII database: %w", err)
	}
	return nil
}
