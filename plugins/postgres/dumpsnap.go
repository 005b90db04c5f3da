package postgres

// The source dump and tables that the pipeline does not hold: a table
// created in a selected schema after the pipeline's tables were
// discovered is not copied and not created at the sink by the schema
// sync; the stream creates it from its CREATE TABLE event. Post-data
// must then not build its key, indexes, foreign keys, defaults or owned
// sequences at the sink, where the table does not exist (yet). The dump
// therefore leaves out, at the very snapshot pg_dump reads, every table of
// a selected schema that is not one of the pipeline's, and the sequences
// such a table owns.

import (
	"context"
	"fmt"
	"regexp"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// snapshotIDRe is the shape of an exported snapshot's name.
var snapshotIDRe = regexp.MustCompile(`^[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+$`)

// pinnedDump holds the source at one snapshot while pg_dump reads it: the
// snapshot given (the copy's), or one exported here, and the tables of the
// dumped schemas the pipeline does not hold, as that snapshot sees them.
type pinnedDump struct {
	conn     *pgx.Conn
	tx       pgx.Tx
	snapshot string
	exclude  []string // pg_dump --exclude-table arguments
	// tables are the other tables (not their sequences).
	tables []record.TableName
}

// pinSource opens a transaction at the source at snapshotID (or exports
// a new snapshot when it is "") and finds there the tables of schemas that
// are not among oids, and the sequences they own. close must be called
// once pg_dump has read the snapshot.
func pinSource(ctx context.Context, srcDSN, snapshotID string, schemas []string, oids []uint32) (*pinnedDump, error) {
	if snapshotID != "" && !snapshotIDRe.MatchString(snapshotID) {
		return nil, fmt.Errorf("source: %q is not an exported snapshot's name", snapshotID)
	}
	conn, err := Connect(ctx, srcDSN, "source")
	if err != nil {
		return nil, err
	}
	p := &pinnedDump{conn: conn, snapshot: snapshotID}
	p.tx, err = conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		p.close(ctx)
		return nil, fmt.Errorf("source: begin the schema dump's transaction: %w", err)
	}
	if snapshotID != "" {
		if _, err := p.tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshotID+"'"); err != nil {
			p.close(ctx)
			return nil, fmt.Errorf("source: take the copy's snapshot for the schema dump: %w", err)
		}
	} else if err := p.tx.QueryRow(ctx, "SELECT pg_catalog.pg_export_snapshot()").Scan(&p.snapshot); err != nil {
		p.close(ctx)
		return nil, fmt.Errorf("source: export a snapshot for the schema dump: %w", err)
	}
	p.exclude, p.tables, err = otherTables(ctx, p.tx, schemas, oids)
	if err != nil {
		p.close(ctx)
		return nil, err
	}
	return p, nil
}

// TablesSince lists the tables of the selection's whole schemas that the
// snapshot holds but tables lacks: tables created after tables were
// discovered and before the snapshot. It queries on the snapshot's own
// connection, inside its transaction.
func (s *Snapshot) TablesSince(ctx context.Context, sel []Selection, tables []*Table) ([]record.TableName, error) {
	schemas := selectedSchemas(sel)
	if len(schemas) == 0 {
		return nil, nil
	}
	_, late, err := otherTables(ctx, s.conn, schemas, tableOIDs(tables))
	return late, err
}

// otherTables lists, as q's snapshot sees them, the tables of schemas that
// are not among oids (and the sequences they own, as pg_dump
// --exclude-table arguments with the tables).
func otherTables(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, schemas []string, oids []uint32) (exclude []string, tables []record.TableName, err error) {
	rows, err := q.Query(ctx, `
		WITH other AS (
			SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = ANY($1::text[]) AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
			AND c.oid <> ALL($2::oid[])
		)
		SELECT n.nspname, c.relname, true FROM other o
		JOIN pg_catalog.pg_class c ON c.oid = o.oid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		UNION
		SELECT n.nspname, s.relname, false FROM other o
		JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refobjid = o.oid
			AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')
		JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
		JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
		ORDER BY 1, 2`, schemas, oids)
	if err != nil {
		return nil, nil, fmt.Errorf("source: list the tables created since the pipeline's were found: %w", err)
	}
	var name record.TableName
	var table bool
	_, err = pgx.ForEachRow(rows, []any{&name.Schema, &name.Name, &table}, func() error {
		exclude = append(exclude, "--exclude-table="+quotePattern(name.Schema)+"."+quotePattern(name.Name))
		if table {
			tables = append(tables, name)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("source: list the tables created since the pipeline's were found: %w", err)
	}
	return exclude, tables, nil
}

// selectedSchemas lists the whole schemas of a selection, once each.
func selectedSchemas(sel []Selection) []string {
	var schemas []string
	for _, s := range sel {
		if s.Schema != "" && !slices.Contains(schemas, s.Schema) {
			schemas = append(schemas, s.Schema)
		}
	}
	return schemas
}

// close ends the pinned transaction and its connection.
func (p *pinnedDump) close(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	if p.tx != nil {
		_ = p.tx.Rollback(ctx)
	}
	p.conn.Close(ctx)
}

// tableOIDs are the OIDs of tables, sorted.
func tableOIDs(tables []*Table) []uint32 {
	oids, _ := oidIndex(tables)
	slices.Sort(oids)
	return oids
}

// oidIndex returns the tables' OIDs, in their order, and the tables by OID.
func oidIndex(tables []*Table) ([]uint32, map[uint32]*Table) {
	oids := make([]uint32, len(tables))
	byOID := make(map[uint32]*Table, len(tables))
	for i, t := range tables {
		oids[i] = t.OID
		byOID[t.OID] = t
	}
	return oids, byOID
}
