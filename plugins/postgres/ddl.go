package postgres

// DDL capture at the source. An event trigger (ddl_command_end, and
// sql_drop for DROP) writes one row per changed object into sluice.ddl_log,
// a table that is itself in every pipeline's publication: the row reaches
// the stream inside the transaction that ran the DDL, at its place among
// the data changes around it.
//
// Mechanism: the trigger does not keep the statement text for replay; it
// captures the catalog state of the table the statement touched (columns,
// constraints, indexes, key, partitions), as it was before (kept in
// sluice.ddl_state) and after the statement. The sink regenerates the DDL
// from the difference between that state and its own catalog, with the
// pipeline's names. So statements that replaying text cannot handle safely
// (IF NOT EXISTS, no schema in the name, DDL run by a function, several
// statements in one query string, DDL and DML in one transaction) need no
// parsing, name mapping needs no SQL rewriting, and applying the same event
// twice changes nothing. The statement text (current_query()) is kept for
// messages.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// DDLLogTable is the source table the event trigger writes DDL events to.
var DDLLogTable = record.TableName{Schema: ProgressSchema, Name: "ddl_log"}

// ErrNoDDLCapture says DDL capture cannot be installed because the source
// role is not a superuser (event triggers need one).
var ErrNoDDLCapture = errors.New("source: DDL capture needs a superuser (event triggers and FOR TABLES IN SCHEMA publications are superuser-only): DDL run at the source while streaming is not replicated and new tables do not join the pipeline; connect as a superuser to enable it")

// tableStateSQL renders one table's catalog state as JSON ($1: its OID),
// with every name qualified (as rendered with an empty search_path). The same query
// runs at the source (inside the trigger) and at the sink (to compare).
const tableStateSQL = `SELECT pg_catalog.jsonb_build_object(
	'oid', c.oid::bigint,
	'schema', n.nspname,
	'name', c.relname,
	'kind', c.relkind::text,
	'regclass', c.oid::pg_catalog.regclass::text,
	'parent', (SELECT pg_catalog.jsonb_build_object('oid', p.oid::bigint, 'schema', pn.nspname, 'name', p.relname)
		FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
		JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
		WHERE i.inhrelid = c.oid AND c.relispartition),
	'bound', CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END,
	'columns', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'num', a.attnum, 'name', a.attname,
			'type', pg_catalog.format_type(a.atttypid, a.atttypmod),
			'notnull', a.attnotnull,
			'default', pg_catalog.pg_get_expr(d.adbin, d.adrelid),
			'generated', a.attgenerated::text,
			'identity', a.attidentity::text,
			'collation', CASE WHEN a.attcollation <> t.typcollation THEN
				(SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname)
				FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
				WHERE co.oid = a.attcollation) END,
			'local', a.attislocal) ORDER BY a.attnum)
		FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'),
	'constraints', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'oid', k.oid::bigint, 'name', k.conname, 'type', k.contype::text,
			'def', pg_catalog.pg_get_constraintdef(k.oid), 'local', k.conislocal,
			'cols', (SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.i)
				FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u(n, i)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n),
			'ref', CASE WHEN k.confrelid <> 0 THEN k.confrelid::pg_catalog.regclass::text END,
			'ref_schema', (SELECT rn.nspname FROM pg_catalog.pg_class r JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace WHERE r.oid = k.confrelid),
			'ref_name', (SELECT r.relname FROM pg_catalog.pg_class r WHERE r.oid = k.confrelid),
			'ref_cols', (SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.i)
				FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY u(n, i)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.n),
			'key', ` + constraintKeySQL + `
		) ORDER BY k.conname)
		FROM pg_catalog.pg_constraint k WHERE k.conrelid = c.oid AND k.contype <> 't'), '[]'),
	'indexes', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'oid', x.indexrelid::bigint, 'name', ic.relname,
			'def', pg_catalog.pg_get_indexdef(x.indexrelid),
			'constraint', EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k
				WHERE k.conindid = x.indexrelid AND k.conrelid = c.oid AND k.contype IN ('p', 'u', 'x')),
			'inherited', ic.relispartition,
			'cols', (SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.i)
				FROM pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY u(n, i)
				LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.n),
			'exprs', x.indexprs IS NOT NULL OR x.indpred IS NOT NULL,
			'tablespace', COALESCE((SELECT pg_catalog.quote_ident(ts.spcname) FROM pg_catalog.pg_tablespace ts WHERE ts.oid = ic.reltablespace), ''),
			'pred', COALESCE(pg_catalog.pg_get_expr(x.indpred, x.indrelid), '')
		) ORDER BY ic.relname)
		FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
		WHERE x.indrelid = c.oid), '[]'),
	'key', (SELECT pg_catalog.jsonb_agg(a.attname ORDER BY u.i)
		FROM pg_catalog.pg_index x, pg_catalog.unnest(x.indkey::pg_catalog.int2[]) WITH ORDINALITY u(n, i),
		pg_catalog.pg_attribute a
		WHERE x.indrelid = c.oid AND a.attrelid = c.oid AND a.attnum = u.n
		AND x.indexrelid = COALESCE(
			(SELECT y.indexrelid FROM pg_catalog.pg_index y WHERE y.indrelid = c.oid AND y.indisprimary),
			(SELECT y.indexrelid FROM pg_catalog.pg_index y WHERE y.indrelid = c.oid AND y.indisreplident))),
	'replident', c.relreplident::text,
	'partitions', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
			'oid', ch.oid::bigint, 'schema', chn.nspname, 'name', ch.relname,
			'bound', pg_catalog.pg_get_expr(ch.relpartbound, ch.oid)) ORDER BY ch.oid)
		FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class ch ON ch.oid = i.inhrelid
		JOIN pg_catalog.pg_namespace chn ON chn.oid = ch.relnamespace
		WHERE i.inhparent = c.oid), '[]'))
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = $1 AND c.relkind IN ('r', 'p') AND c.relpersistence <> 't'`

// captureSQL installs the capture objects. Every statement is idempotent;
// the functions are replaced, so a newer sluice updates them.
const captureSQL = `
CREATE SCHEMA IF NOT EXISTS sluice;
CREATE TABLE IF NOT EXISTS sluice.ddl_log (
	id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
	tag         text        NOT NULL,
	object_type text,
	identity    text,
	schema_name text,
	relid       oid,
	statement   text,
	old_state   jsonb,
	new_state   jsonb,
	error       text
);
ALTER TABLE sluice.ddl_log ADD COLUMN IF NOT EXISTS error text;
CREATE TABLE IF NOT EXISTS sluice.ddl_state (
	relid oid   PRIMARY KEY,
	state jsonb NOT NULL
);
CREATE OR REPLACE FUNCTION sluice.ddl_table_state(oid) RETURNS jsonb
	LANGUAGE sql STABLE SET search_path = '' AS $fn$` + tableStateSQL + `$fn$;
CREATE OR REPLACE FUNCTION sluice.ddl_capture() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $fn$
DECLARE
	r     record;
	rel   oid;
	seen  oid[] := '{}';
	st    jsonb;
	prev  jsonb;
	stmt  text := pg_catalog.left(pg_catalog.current_query(), 4000); -- for messages only
BEGIN
	FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP
		CONTINUE WHEN r.in_extension OR r.schema_name IN ('sluice', 'pg_catalog', 'information_schema')
			OR r.schema_name LIKE 'pg\_temp%' OR r.schema_name LIKE 'pg\_toast%';
		-- A failure to capture must not fail the application's DDL: it is
		-- logged instead, and the sink warns about it.
		BEGIN
		rel := NULL;
		IF r.object_type IN ('table', 'table column', 'table constraint') THEN
			rel := r.objid;
		ELSIF r.object_type = 'index' THEN
			SELECT x.indrelid INTO rel FROM pg_catalog.pg_index x WHERE x.indexrelid = r.objid;
		ELSIF r.object_type = 'type' AND EXISTS (SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = r.objid AND t.typtype = 'e') THEN
			-- An enum: its labels, in order, to add the new ones at the sink.
			INSERT INTO sluice.ddl_log (tag, object_type, identity, schema_name, statement, new_state)
			VALUES (r.command_tag, 'enum', r.object_identity, r.schema_name, stmt,
				pg_catalog.jsonb_build_object('enum', (SELECT pg_catalog.jsonb_agg(e.enumlabel ORDER BY e.enumsortorder)
					FROM pg_catalog.pg_enum e WHERE e.enumtypid = r.objid)));
			CONTINUE;
		ELSIF r.object_type = 'sequence' AND EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
				WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = r.objid
				AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i')) THEN
			CONTINUE; -- a serial's or identity's sequence comes with its table
		END IF;
		IF rel IS NOT NULL THEN
			CONTINUE WHEN rel = ANY (seen);
			seen := seen || rel;
			st := sluice.ddl_table_state(rel);
		ELSE
			st := NULL;
		END IF;
		IF st IS NULL THEN
			INSERT INTO sluice.ddl_log (tag, object_type, identity, schema_name, statement)
			VALUES (r.command_tag, r.object_type, r.object_identity, r.schema_name, stmt);
			CONTINUE;
		END IF;
		SELECT s.state INTO prev FROM sluice.ddl_state s WHERE s.relid = rel;
		INSERT INTO sluice.ddl_log (tag, object_type, identity, schema_name, relid, statement, old_state, new_state)
		VALUES (r.command_tag, r.object_type, r.object_identity, st->>'schema', rel, stmt, prev, st);
		INSERT INTO sluice.ddl_state (relid, state) VALUES (rel, st)
		ON CONFLICT (relid) DO UPDATE SET state = EXCLUDED.state;
		-- A published table without a key needs REPLICA IDENTITY FULL, or
		-- the application's own UPDATEs and DELETEs on it fail.
		IF st->>'kind' = 'r' AND st->'key' = 'null'::jsonb AND st->>'replident' = 'd'
			AND EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables pt
				WHERE pt.pubname LIKE 'sluice\_%' AND pt.schemaname = st->>'schema' AND pt.tablename = st->>'name') THEN
			EXECUTE pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', rel::pg_catalog.regclass);
		END IF;
		EXCEPTION WHEN OTHERS THEN
			INSERT INTO sluice.ddl_log (tag, object_type, identity, schema_name, statement, error)
			VALUES (r.command_tag, r.object_type, r.object_identity, r.schema_name, stmt, SQLERRM);
		END;
	END LOOP;
	DELETE FROM sluice.ddl_log WHERE at < pg_catalog.now() - interval '1 day';
END
$fn$;
CREATE OR REPLACE FUNCTION sluice.ddl_drop() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $fn$
DECLARE
	r    record;
	stmt text := pg_catalog.left(pg_catalog.current_query(), 4000); -- for messages only
BEGIN
	-- Views first (also those a CASCADE took along), then tables: the
	-- sink drops them in this order.
	FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_dropped_objects() LOOP
		CONTINUE WHEN r.is_temporary OR r.schema_name IN ('sluice', 'pg_catalog', 'information_schema')
			OR r.schema_name LIKE 'pg\_toast%';
		IF r.object_type IN ('view', 'materialized view')
			OR (r.original AND r.object_type IN ('index', 'sequence', 'type', 'function')) THEN
			INSERT INTO sluice.ddl_log (tag, object_type, identity, schema_name, statement)
			VALUES (TG_TAG, r.object_type, r.object_identity, r.schema_name, stmt);
		END IF;
	END LOOP;
	FOR r IN SELECT * FROM pg_catalog.pg_event_trigger_dropped_objects() LOOP
		CONTINUE WHEN r.is_temporary OR r.object_type <> 'table'
			OR r.schema_name IN ('sluice', 'pg_catalog', 'information_schema');
		INSERT INTO sluice.ddl_log (tag, object_type, identity, schema_name, relid, statement, old_state)
		VALUES (TG_TAG, r.object_type, r.object_identity, r.schema_name, r.objid, stmt,
			(SELECT s.state FROM sluice.ddl_state s WHERE s.relid = r.objid));
		DELETE FROM sluice.ddl_state WHERE relid = r.objid;
	END LOOP;
END
$fn$;
`

// InstallDDLCapture installs the DDL event triggers and their log at the
// source, and records the current state of every table so the first DDL
// on each has a "before". It returns ErrNoDDLCapture when the role is not
// a superuser (nothing is installed then).
func InstallDDLCapture(ctx context.Context, conn *pgx.Conn) error {
	super, err := IsSuperuser(ctx, conn)
	if err != nil {
		return err
	}
	if !super {
		return ErrNoDDLCapture
	}
	if _, err := conn.Exec(ctx, captureSQL); err != nil {
		return fmt.Errorf("source: install the DDL capture (sluice.ddl_log and its event triggers): %w", err)
	}
	for _, tr := range []struct{ name, event, fn string }{
		{"sluice_ddl_end", "ddl_command_end", "sluice.ddl_capture"},
		{"sluice_ddl_drop", "sql_drop", "sluice.ddl_drop"},
	} {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger WHERE evtname = $1)", tr.name).Scan(&exists); err != nil {
			return fmt.Errorf("source: look up event trigger %s: %w", tr.name, err)
		}
		if !exists {
			if _, err := conn.Exec(ctx, "CREATE EVENT TRIGGER "+tr.name+" ON "+tr.event+" EXECUTE FUNCTION "+tr.fn+"()"); err != nil {
				return fmt.Errorf("source: create event trigger %s: %w", tr.name, err)
			}
		}
		// Also in sessions with session_replication_role = replica.
		if _, err := conn.Exec(ctx, "ALTER EVENT TRIGGER "+tr.name+" ENABLE ALWAYS"); err != nil {
			return fmt.Errorf("source: enable event trigger %s: %w", tr.name, err)
		}
	}
	_, err = conn.Exec(ctx, `INSERT INTO sluice.ddl_state (relid, state)
		SELECT c.oid, sluice.ddl_table_state(c.oid) FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
		AND n.nspname NOT IN ('sluice', 'pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
		ON CONFLICT (relid) DO UPDATE SET state = EXCLUDED.state`)
	if err != nil {
		return fmt.Errorf("source: record the tables' state for DDL capture: %w", err)
	}
	return nil
}

// IsSuperuser reports whether the connection's role is a superuser.
func IsSuperuser(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		return false, fmt.Errorf("source: read the role's attributes: %w", err)
	}
	return super, nil
}

// DDLCaptureInstalled reports whether the source has sluice's DDL event
// triggers, enabled.
func DDLCaptureInstalled(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_catalog.pg_event_trigger
		WHERE evtname IN ('sluice_ddl_end', 'sluice_ddl_drop') AND evtenabled <> 'D'`).Scan(&n); err != nil {
		return false, fmt.Errorf("source: look up the DDL event triggers: %w", err)
	}
	return n == 2, nil
}

// RelRef names a relation of a captured state.
type RelRef struct {
	OID    uint32 `json:"oid"`
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Bound  string `json:"bound"`
}

// TableName is the reference's name.
func (r RelRef) TableName() record.TableName { return record.TableName{Schema: r.Schema, Name: r.Name} }

// ColumnState is a column of a captured table state.
type ColumnState struct {
	Num       int    `json:"num"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	NotNull   bool   `json:"notnull"`
	Default   string `json:"default"`
	Generated string `json:"generated"`
	Identity  string `json:"identity"`
	Collation string `json:"collation"`
	Local     bool   `json:"local"`
}

// ConstraintState is a constraint of a captured table state.
type ConstraintState struct {
	OID       uint32   `json:"oid"`
	Name      string   `json:"name"`
	Type      string   `json:"type"` // contype: p u f c x
	Def       string   `json:"def"`
	Local     bool     `json:"local"`
	Cols      []string `json:"cols"`
	Ref       string   `json:"ref"` // the referenced table as the catalog renders it
	RefSchema string   `json:"ref_schema"`
	RefName   string   `json:"ref_name"`
	RefCols   []string `json:"ref_cols"`
	// Key holds a primary key's or unique constraint's parts (nil for
	// other kinds, and in states captured by an older sluice).
	Key *ConstraintKey `json:"key"`
}

// IndexState is an index of a captured table state.
type IndexState struct {
	OID        uint32    `json:"oid"`
	Name       string    `json:"name"`
	Def        string    `json:"def"`
	Constraint bool      `json:"constraint"` // backs a primary key, unique or exclusion constraint
	Inherited  bool      `json:"inherited"`  // attached to a partitioned parent's index
	Cols       []*string `json:"cols"`       // nil entries are expressions
	Exprs      bool      `json:"exprs"`      // has expressions or a predicate
	// Tablespace is the index's tablespace, quoted; empty for the
	// database's default. Pred is its predicate as Def ends with it
	// (after " WHERE "); empty for none.
	Tablespace string `json:"tablespace"`
	Pred       string `json:"pred"`
}

// TableState is a table's catalog state as the DDL capture records it.
type TableState struct {
	OID         uint32            `json:"oid"`
	Schema      string            `json:"schema"`
	Name        string            `json:"name"`
	Kind        string            `json:"kind"` // relkind: r or p
	Regclass    string            `json:"regclass"`
	Parent      *RelRef           `json:"parent"`
	Bound       string            `json:"bound"`
	Columns     []ColumnState     `json:"columns"`
	Constraints []ConstraintState `json:"constraints"`
	Indexes     []IndexState      `json:"indexes"`
	Key         []string          `json:"key"`
	ReplIdent   string            `json:"replident"`
	Partitions  []RelRef          `json:"partitions"`
	// Enum holds, for an enum type's event (not a table's), its labels in
	// order.
	Enum []string `json:"enum"`
}

// TableName is the state's table name.
func (s *TableState) TableName() record.TableName {
	return record.TableName{Schema: s.Schema, Name: s.Name}
}

func (s *TableState) column(name string) *ColumnState {
	for i := range s.Columns {
		if s.Columns[i].Name == name {
			return &s.Columns[i]
		}
	}
	return nil
}

func (s *TableState) columnNum(num int) *ColumnState {
	for i := range s.Columns {
		if s.Columns[i].Num == num {
			return &s.Columns[i]
		}
	}
	return nil
}

// DDLEvent is one row of sluice.ddl_log as it arrives in the stream.
type DDLEvent struct {
	ID         string
	Tag        string // command tag: ALTER TABLE, DROP TABLE, CREATE VIEW, ...
	ObjectType string
	Identity   string
	Schema     string
	RelID      uint32
	Statement  string
	// Error is set when the source failed to capture the statement's
	// effect (the statement itself went through).
	Error    string
	Old, New *TableState
}

// Table reports whether the event is about a table whose state was
// captured (or, for a DROP, whose table OID is known).
func (e *DDLEvent) Table() bool { return e.RelID != 0 }

// DecodeDDLEvent reads a streamed insert into sluice.ddl_log.
func DecodeDDLEvent(rec *record.Record) (*DDLEvent, error) {
	text := func(col string) (string, bool) {
		i := rec.Rel.ColumnIndex(col)
		if i < 0 || i >= len(rec.New) || rec.New[i].Null || rec.New[i].Unchanged {
			return "", false
		}
		return string(rec.New[i].Data), true
	}
	ev := &DDLEvent{}
	ev.ID, _ = text("id")
	ev.Tag, _ = text("tag")
	ev.ObjectType, _ = text("object_type")
	ev.Identity, _ = text("identity")
	ev.Schema, _ = text("schema_name")
	ev.Statement, _ = text("statement")
	ev.Error, _ = text("error")
	if s, ok := text("relid"); ok {
		var id uint32
		if _, err := fmt.Sscan(s, &id); err != nil {
			return nil, fmt.Errorf("DDL event %s: relid %q: %w", ev.ID, s, err)
		}
		ev.RelID = id
	}
	for _, c := range []struct {
		col string
		dst **TableState
	}{{"old_state", &ev.Old}, {"new_state", &ev.New}} {
		s, ok := text(c.col)
		if !ok {
			continue
		}
		st := &TableState{}
		if err := json.Unmarshal([]byte(s), st); err != nil {
			return nil, fmt.Errorf("DDL event %s (%s): decode %s: %w", ev.ID, ev.Tag, c.col, err)
		}
		*c.dst = st
	}
	return ev, nil
}

// ShortStatement is the event's statement text on one line, cut to n
// characters, for messages.
func (e *DDLEvent) ShortStatement(n int) string {
	s := strings.Join(strings.Fields(e.Statement), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// ReadTableState reads a table's state from conn's catalog (the sink's,
// to compare with a captured one); nil when no such table exists.
func ReadTableState(ctx context.Context, conn *pgx.Conn, name record.TableName) (*TableState, error) {
	var oid *uint32
	if err := conn.QueryRow(ctx, "SELECT pg_catalog.to_regclass($1)::oid", name.Quoted()).Scan(&oid); err != nil {
		return nil, fmt.Errorf("look up table %s: %w", name, err)
	}
	if oid == nil {
		return nil, nil
	}
	var raw []byte
	err := conn.QueryRow(ctx, tableStateSQL, *oid).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the catalog state of %s: %w", name, err)
	}
	st := &TableState{}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("decode the catalog state of %s: %w", name, err)
	}
	return st, nil
}

// Publish is what a pipeline's publication holds besides its selected
// tables and the heartbeat table.
type Publish struct {
	// Schemas are published whole (FOR TABLES IN SCHEMA, superuser only):
	// a table created there later is published from its creation.
	Schemas []string
	// DDLLog publishes sluice.ddl_log, the DDL capture's log.
	DDLLog bool
}

// tables lists the quoted tables the publication names one by one: the
// heartbeat (and DDL log) tables, and the selected tables that are neither
// in a published schema nor published through their partitioned parent.
func (p Publish) tables(tables []*Table) []string {
	names := []string{HeartbeatTable.Quoted(), WatermarkTable.Quoted()}
	if p.DDLLog {
		names = append(names, DDLLogTable.Quoted())
	}
	for _, t := range tables {
		if t.ParentOID != 0 && containsOID(tables, t.ParentOID) {
			continue // published through its parent
		}
		if slices.Contains(p.Schemas, t.Name.Schema) {
			continue
		}
		names = append(names, t.Name.Quoted())
	}
	return names
}

// schemas is the publication's TABLES IN SCHEMA clause (with a trailing
// comma and space), or empty.
func (p Publish) schemas() string {
	if len(p.Schemas) == 0 {
		return ""
	}
	q := make([]string, len(p.Schemas))
	for i, s := range p.Schemas {
		q[i] = record.QuoteIdent(s)
	}
	return "TABLES IN SCHEMA " + strings.Join(q, ", ") + ", "
}
