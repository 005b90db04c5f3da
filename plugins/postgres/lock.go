package postgres

// Locking the source for a cutover: write privileges (INSERT, UPDATE,
// DELETE, TRUNCATE, on tables and on columns) are revoked from every role
// but superusers on the selected tables, and each revoked privilege is
// recorded in sluice.cutover_revoked at the source, so that it can be
// reported and granted back (UnlockSource).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// Revoked is one write privilege revoked from a role on a source table (or
// one of its columns).
type Revoked struct {
	Table record.TableName `json:"-"`
	// Column is set for a column privilege.
	Column    string    `json:"column,omitempty"`
	Role      string    `json:"role"` // PUBLIC for everyone
	Privilege string    `json:"privilege"`
	At        time.Time `json:"revoked_at"`
}

// MarshalJSON renders the table as schema.table text.
func (r Revoked) MarshalJSON() ([]byte, error) {
	type plain Revoked
	return json.Marshal(struct {
		TableText string `json:"table"`
		plain
	}{r.Table.String(), plain(r)})
}

// GrantSQL is the statement that gives the privilege back.
func (r Revoked) GrantSQL() string {
	on := r.Table.Quoted()
	priv := r.Privilege
	if r.Column != "" {
		priv += " (" + record.QuoteIdent(r.Column) + ")"
	}
	return "GRANT " + priv + " ON " + on + " TO " + roleSQL(r.Role)
}

func (r Revoked) revokeSQL() string {
	priv := r.Privilege
	if r.Column != "" {
		priv += " (" + record.QuoteIdent(r.Column) + ")"
	}
	return "REVOKE " + priv + " ON " + r.Table.Quoted() + " FROM " + roleSQL(r.Role)
}

func roleSQL(role string) string {
	if role == "PUBLIC" {
		return "PUBLIC"
	}
	return record.QuoteIdent(role)
}

const revokedTableSQL = `CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.cutover_revoked (
	pipeline    text        NOT NULL,
	schema_name text        NOT NULL,
	table_name  text        NOT NULL,
	column_name text        NOT NULL DEFAULT '',
	role        text        NOT NULL,
	privilege   text        NOT NULL,
	revoked_at  timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (pipeline, schema_name, table_name, column_name, role, privilege)
)`

// LockSource revokes INSERT, UPDATE, DELETE and TRUNCATE on the tables
// (given by OID) from every role that is not a superuser and holds them,
// PUBLIC and the tables' owners included, table and column privileges
// alike, and records each in sluice.cutover_revoked, in one transaction.
// It returns what it revoked now, and the roles that cannot be locked out
// this way (superusers and members of pg_write_all_data). The connected role must own the tables or be a
// superuser.
func LockSource(ctx context.Context, conn *pgx.Conn, pipeline string, oids []uint32) (revoked []Revoked, superusers []string, err error) {
	// Superusers, and members of pg_write_all_data (PostgreSQL 14+), write
	// whatever the tables' privileges say.
	rows, err := conn.Query(ctx, `SELECT rolname::text || CASE WHEN rolsuper THEN '' ELSE ' (member of pg_write_all_data)' END
		FROM pg_catalog.pg_roles
		WHERE rolcanlogin AND (rolsuper OR (pg_catalog.to_regrole('pg_write_all_data') IS NOT NULL
			AND pg_catalog.pg_has_role(oid, pg_catalog.to_regrole('pg_write_all_data'), 'MEMBER')))
		ORDER BY 1`)
	if err != nil {
		return nil, nil, fmt.Errorf("source: list superusers: %w", err)
	}
	if superusers, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return nil, nil, fmt.Errorf("source: list superusers: %w", err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, revokedTableSQL); err != nil {
			return fmt.Errorf("create sluice.cutover_revoked to record the revoked privileges: %w", err)
		}
		// Table and column privileges; a NULL ACL means the default one
		// (the owner holds everything).
		rows, err := tx.Query(ctx, `WITH acl AS (
				SELECT c.oid, n.nspname::text AS sch, c.relname::text AS rel, ''::text AS col,
					(pg_catalog.aclexplode(COALESCE(c.relacl, pg_catalog.acldefault('r', c.relowner)))).*
				FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE c.oid = ANY($1)
				UNION ALL
				SELECT c.oid, n.nspname::text, c.relname::text, a.attname::text, (pg_catalog.aclexplode(a.attacl)).*
				FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
				JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE c.oid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
			)
			SELECT DISTINCT acl.sch, acl.rel, acl.col, COALESCE(r.rolname::text, 'PUBLIC'), acl.privilege_type
			FROM acl LEFT JOIN pg_catalog.pg_roles r ON r.oid = acl.grantee
			WHERE acl.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
			  AND (acl.grantee = 0 OR NOT r.rolsuper)
			ORDER BY 1, 2, 3, 4, 5`, oids)
		if err != nil {
			return fmt.Errorf("read the tables' privileges: %w", err)
		}
		now := time.Now().UTC()
		revoked, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Revoked, error) {
			r := Revoked{At: now}
			err := row.Scan(&r.Table.Schema, &r.Table.Name, &r.Column, &r.Role, &r.Privilege)
			return r, err
		})
		if err != nil {
			return fmt.Errorf("read the tables' privileges: %w", err)
		}
		for _, r := range revoked {
			if _, err := tx.Exec(ctx, r.revokeSQL()); err != nil {
				return fmt.Errorf("%s: %w (the source role must own the table or be a superuser)", r.revokeSQL(), err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO sluice.cutover_revoked (pipeline, schema_name, table_name, column_name, role, privilege, revoked_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
				pipeline, r.Table.Schema, r.Table.Name, r.Column, r.Role, r.Privilege, r.At); err != nil {
				return fmt.Errorf("record %s: %w", r.revokeSQL(), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("source: revoke write privileges: %w", err)
	}
	return revoked, superusers, nil
}

// RevokedPrivileges returns what earlier cutovers of the pipeline revoked
// and did not give back yet (none when nothing was recorded).
func RevokedPrivileges(ctx context.Context, conn *pgx.Conn, pipeline string) ([]Revoked, error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT pg_catalog.to_regclass('sluice.cutover_revoked') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, fmt.Errorf("source: look up sluice.cutover_revoked: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := conn.Query(ctx, `SELECT schema_name, table_name, column_name, role, privilege, revoked_at
		FROM sluice.cutover_revoked WHERE pipeline = $1 ORDER BY 1, 2, 3, 4, 5`, pipeline)
	if err != nil {
		return nil, fmt.Errorf("source: read sluice.cutover_revoked: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Revoked, error) {
		var r Revoked
		err := row.Scan(&r.Table.Schema, &r.Table.Name, &r.Column, &r.Role, &r.Privilege, &r.At)
		r.At = r.At.UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("source: read sluice.cutover_revoked: %w", err)
	}
	return out, nil
}

// UnlockSource grants back every privilege recorded as revoked for the
// pipeline and forgets the records, in one transaction. A table or role
// that no longer exists is skipped and returned in gone.
func UnlockSource(ctx context.Context, conn *pgx.Conn, pipeline string) (granted []Revoked, gone []string, err error) {
	recs, err := RevokedPrivileges(ctx, conn, pipeline)
	if err != nil || len(recs) == 0 {
		return nil, nil, err
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, r := range recs {
			sp, err := tx.Begin(ctx)
			if err != nil {
				return err
			}
			if _, err := sp.Exec(ctx, r.GrantSQL()); err != nil {
				_ = sp.Rollback(ctx)
				gone = append(gone, fmt.Sprintf("%s (%v)", r.GrantSQL(), err))
				continue
			}
			if err := sp.Commit(ctx); err != nil {
				return err
			}
			granted = append(granted, r)
		}
		_, err := tx.Exec(ctx, `DELETE FROM sluice.cutover_revoked WHERE pipeline = $1`, pipeline)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("source: grant the revoked privileges back: %w", err)
	}
	return granted, gone, nil
}

// WaitWriters waits until every transaction that held a transaction id
// at the source when it was called has ended: after write privileges are
// revoked, a transaction that wrote before may still commit. It gives up
// when ctx ends, naming the sessions still running.
func WaitWriters(ctx context.Context, conn *pgx.Conn) error {
	const q = `SELECT pid, backend_xid::text, pid::text || ' (' || COALESCE(usename::text, '?') || ', ' || COALESCE(state, '?') || ')'
		FROM pg_catalog.pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid()`
	type txn struct {
		pid       int32
		xid, desc string
	}
	read := func() ([]txn, error) {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("source: read the running transactions: %w", err)
		}
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (txn, error) {
			var t txn
			err := r.Scan(&t.pid, &t.xid, &t.desc)
			return t, err
		})
		if err != nil {
			return nil, fmt.Errorf("source: read the running transactions: %w", err)
		}
		return out, nil
	}
	first, err := read()
	if err != nil {
		return err
	}
	waiting := map[int32]string{}
	for _, t := range first {
		waiting[t.pid] = t.xid
	}
	for len(waiting) > 0 {
		select {
		case <-ctx.Done():
			var names []string
			for _, t := range first {
				if waiting[t.pid] == t.xid {
					names = append(names, t.desc)
				}
			}
			return fmt.Errorf("source: transactions that were running when the write privileges were revoked have not ended (sessions %s): %w", strings.Join(names, ", "), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		now, err := read()
		if err != nil {
			return err
		}
		still := map[int32]string{}
		for _, t := range now {
			if waiting[t.pid] == t.xid {
				still[t.pid] = t.xid
			}
		}
		waiting = still
	}
	return nil
}
