package postgres

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Snapshot is a consistent view of the source, exported by one transaction
// that stays open (and holds ACCESS SHARE locks on the copied tables, so no
// DDL can rewrite them) until Close. Workers import it with
// SET TRANSACTION SNAPSHOT, so every table is read at the same instant.
type Snapshot struct {
	ID   string
	conn *pgx.Conn
}

// ExportSnapshot opens a repeatable-read transaction on the source, locks
// the tables against DDL and exports its snapshot. With a non-empty
// importID (a replication slot's exported snapshot) the transaction adopts
// that snapshot instead of exporting its own, and holds the locks for it.
func ExportSnapshot(ctx context.Context, dsn string, tables []*Table, importID string) (*Snapshot, error) {
	conn, err := Connect(ctx, dsn, "source")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Snapshot, error) {
		conn.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	id := importID
	if id != "" {
		if err := importSnapshot(ctx, conn, id); err != nil {
			return fail(err)
		}
	} else {
		if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return fail(fmt.Errorf("source: begin snapshot transaction: %w", err))
		}
		if err := conn.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&id); err != nil {
			return fail(fmt.Errorf("source: export snapshot: %w", err))
		}
	}
	if len(tables) > 0 {
		names := make([]string, len(tables))
		for i, t := range tables {
			names[i] = t.Name.Quoted()
		}
		if _, err := conn.Exec(ctx, "SET LOCAL lock_timeout = '60s'"); err != nil {
			return fail(fmt.Errorf("source: set lock_timeout: %w", err))
		}
		if _, err := conn.Exec(ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN ACCESS SHARE MODE"); err != nil {
			return fail(fmt.Errorf("source: lock the selected tables against DDL during the copy (a long-running ALTER or VACUUM FULL may hold them; retry when it ends): %w", err))
		}
	}
	return &Snapshot{ID: id, conn: conn}, nil
}

// Close ends the exporting transaction; workers that already imported the
// snapshot keep it.
func (s *Snapshot) Close(ctx context.Context) error {
	if s == nil || s.conn == nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	_, _ = s.conn.Exec(ctx, "ROLLBACK")
	return s.conn.Close(ctx)
}

var snapshotIDPattern = regexp.MustCompile(`^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$`)

// importSnapshot starts a repeatable-read transaction on conn that sees the
// exported snapshot id. An empty id starts a plain repeatable-read
// transaction.
func importSnapshot(ctx context.Context, conn *pgx.Conn, id string) error {
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return fmt.Errorf("source: begin copy transaction: %w", err)
	}
	if id == "" {
		return nil
	}
	// SET TRANSACTION SNAPSHOT takes no parameters; the id is checked
	// against the shape PostgreSQL gives it before it is quoted in.
	if !snapshotIDPattern.MatchString(id) {
		return fmt.Errorf("source: malformed snapshot id %q", id)
	}
	if _, err := conn.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+id+"'"); err != nil {
		return fmt.Errorf("source: import snapshot %s (the exporting transaction or slot connection must still be open): %w", id, err)
	}
	return nil
}
