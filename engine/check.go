package engine

// The precheck (`sluice check`): every item that can stop a pipeline or
// make it misbehave is checked against the real databases before any data
// is touched, and reported as pass, warn or fail with the reason and the
// fix. Check only reads: it creates nothing at either side (the replication
// connection it opens to try the source role runs IDENTIFY_SYSTEM only).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/display"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
	"github.com/sluicehq/sluice/transforms/rename"
)

// Check outcomes.
const (
	Pass = "pass"
	Warn = "warn"
	Fail = "fail"
)

// Names of the precheck items: stable, since ignore_checks refers to them.
const (
	CheckConfig               = "config"
	CheckIgnoreChecks         = "ignore_checks"
	CheckSourceConnection     = "source_connection"
	CheckSinkConnection       = "sink_connection"
	CheckDistinctDatabases    = "distinct_databases"
	CheckObjects              = "objects"
	CheckFiltersTransforms    = "filters_and_transforms"
	CheckSourcePrivileges     = "source_privileges"
	CheckSinkPrivileges       = "sink_privileges"
	CheckSinkSchema           = "sink_schema"
	CheckSchemaTools          = "schema_tools"
	CheckConflictingTables    = "conflicting_tables"
	CheckSinkDiskSpace        = "sink_disk_space"
	CheckPartitions           = "partitions"
	CheckInheritance          = "inheritance"
	CheckExprUniqueIndexes    = "expression_unique_indexes"
	CheckExtensionObjects     = "extension_objects"
	CheckTablesWithoutKey     = "tables_without_key"
	CheckWalLevel             = "wal_level"
	CheckSourceReplication    = "source_replication"
	CheckReplicationSlots     = "replication_slots"
	CheckWalSenders           = "wal_senders"
	CheckReplicaIdentity      = "replica_identity"
	CheckLongRunningTransacts = "long_running_transactions"
	CheckFilterIdentity       = "filter_replica_identity"
)

// CheckNames lists every precheck item name, in report order.
func CheckNames() []string {
	return []string{
		CheckConfig, CheckIgnoreChecks, CheckSourceConnection, CheckSinkConnection, CheckEncryption, CheckDistinctDatabases,
		CheckObjects, CheckFiltersTransforms, CheckSourcePrivileges, CheckSinkPrivileges, CheckSinkSchema, CheckTablespaces,
		CheckSchemaTools, CheckConflictingTables, CheckSinkDiskSpace, CheckToastCompression, CheckPartitions, CheckInheritance, CheckExprUniqueIndexes,
		CheckExtensionObjects, CheckTablesWithoutKey, CheckWalLevel, CheckSourceReplication, CheckReplicationSlots,
		CheckWalSenders, CheckReplicaIdentity, CheckFilterIdentity, CheckLongRunningTransacts, CheckDDLCapture,
	}
}

// notIncremental is the detail of streaming-only items when streaming is
// off: they pass without being checked.
const notIncremental = "not needed: incremental is off (sync.incremental: false), so this was not checked"

// acknowledged is appended to the detail of a warning named in
// ignore_checks, which then passes.
const acknowledged = " (acknowledged in ignore_checks)"

// DefaultLongTransaction is how long a source transaction must have been
// open to be reported by the long_running_transactions item.
const DefaultLongTransaction = 5 * time.Minute

// CheckItem is one line of a precheck: what was checked, the outcome, and
// for a warning or failure the reason and what to do.
type CheckItem struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	Fix    string `json:"fix,omitempty"`
	// Acknowledged is true for a warning named in ignore_checks (its
	// Status is then pass).
	Acknowledged bool `json:"acknowledged,omitempty"`
}

// CheckReport is the result of Check.
type CheckReport struct {
	Pipeline string      `json:"pipeline"`
	Items    []CheckItem `json:"items"`
}

// Failed reports whether any item failed.
func (r *CheckReport) Failed() bool {
	for _, it := range r.Items {
		if it.Status == Fail {
			return true
		}
	}
	return false
}

// Item returns the item called name, or nil.
func (r *CheckReport) Item(name string) *CheckItem {
	for i := range r.Items {
		if r.Items[i].Name == name {
			return &r.Items[i]
		}
	}
	return nil
}

// Counts returns how many items passed, warned and failed.
func (r *CheckReport) Counts() (pass, warn, fail int) {
	for _, it := range r.Items {
		switch it.Status {
		case Pass:
			pass++
		case Warn:
			warn++
		case Fail:
			fail++
		}
	}
	return pass, warn, fail
}

// CheckOptions tunes Check.
type CheckOptions struct {
	// IgnoreChecks names warnings the pipeline file acknowledges
	// (ignore_checks): they pass. Failures cannot be acknowledged.
	IgnoreChecks []string
	// LongTransaction is how long a source transaction must have been open
	// to be reported; default DefaultLongTransaction.
	LongTransaction time.Duration
	// FreeSpace returns the bytes available to the server on the file
	// system holding path (the sink's data directory, when the sink runs on
	// this machine). Nil uses statfs(2); tests replace it.
	FreeSpace func(path string) (uint64, error)
}

// Check verifies, against the real databases, that the pipeline can run
// and what it will meet: connections and credentials, privileges at both
// sides, the selected objects and what sluice cannot carry faithfully,
// conflicting tables and disk space at the sink, and, with incremental
// sync, everything logical replication needs at the source. It only reads.
// Items that cannot be checked because an earlier one failed (the source
// is unreachable, say) are left out of the report.
func Check(ctx context.Context, cfg Config, opts CheckOptions) *CheckReport {
	if opts.LongTransaction <= 0 {
		opts.LongTransaction = DefaultLongTransaction
	}
	if opts.FreeSpace == nil {
		opts.FreeSpace = statfsFree
	}
	c := &checker{cfg: cfg, opts: opts, rep: &CheckReport{Pipeline: cfg.Name}, slot: postgres.SlotName(cfg.Name)}
	c.run(ctx)
	c.acknowledge()
	return c.rep
}

type checker struct {
	cfg  Config
	opts CheckOptions
	rep  *CheckReport
	slot string

	src, dst   *pgx.Conn
	srcRole    roleInfo
	dstRole    roleInfo
	tables     []*postgres.Table
	mapping    *mapping        // the options' mapping; identity when they fail
	chain      *transformChain // the transform stages; nil when they fail
	byOID      map[uint32]*postgres.Table
	sinkTables map[uint32]*sinkTable // by source OID
	// freeSenders is the number of free WAL senders at the source, or -1
	// when unknown.
	freeSenders int
}

// roleInfo describes the role a connection logged in as.
type roleInfo struct {
	User, Database, Version string
	Super, Replication      bool
	SystemID                string
}

// sinkTable is what the sink has under a selected table's name.
type sinkTable struct {
	Name         record.TableName
	SchemaExists bool
	SchemaUsage  bool
	SchemaCreate bool
	Exists       bool
	Kind         string // relkind at the sink
	Insert       bool
	Select       bool
	Update       bool
	Delete       bool
}

func (c *checker) add(name, status, detail, fix string) {
	if status == Pass {
		fix = ""
	}
	c.rep.Items = append(c.rep.Items, CheckItem{Name: name, Status: status, Detail: detail, Fix: fix})
}

func (c *checker) run(ctx context.Context) {
	c.add(CheckConfig, Pass, "pipeline file is valid", "")
	c.checkIgnoreNames()

	c.src, c.srcRole = c.connect(ctx, CheckSourceConnection, "source", c.cfg.SourceDSN)
	if c.src != nil {
		defer c.src.Close(context.WithoutCancel(ctx))
	}
	c.dst, c.dstRole = c.connect(ctx, CheckSinkConnection, "sink", c.cfg.SinkDSN)
	if c.dst != nil {
		defer c.dst.Close(context.WithoutCancel(ctx))
	}
	c.checkEncryption()
	if c.src != nil && c.dst != nil && (c.srcRole.SystemID == "" || c.dstRole.SystemID == "") {
		c.add(CheckDistinctDatabases, Warn, "cannot tell whether source and sink are different databases: pg_control_system() is not readable",
			fmt.Sprintf("make sure the sink is not the source database; then acknowledge with ignore_checks: [%s]", CheckDistinctDatabases))
	} else if c.src != nil && c.dst != nil {
		if c.srcRole.SystemID == c.dstRole.SystemID && c.srcRole.Database == c.dstRole.Database {
			c.add(CheckDistinctDatabases, Fail,
				fmt.Sprintf("source and sink are the same database (%s on system %s)", c.srcRole.Database, c.srcRole.SystemID),
				"point the sink at another database")
			return
		}
		c.add(CheckDistinctDatabases, Pass, fmt.Sprintf("source %s (system %s), sink %s (system %s)",
			c.srcRole.Database, c.srcRole.SystemID, c.dstRole.Database, c.dstRole.SystemID), "")
	}
	if c.src == nil {
		return
	}
	if !c.discover(ctx) {
		return
	}
	c.checkFilters(ctx)
	c.checkSourcePrivileges(ctx)
	if c.dst != nil {
		if err := c.loadSinkTables(ctx); err != nil {
			c.add(CheckSinkPrivileges, Fail, err.Error(), "check that the sink role can read the catalog")
		} else {
			c.checkSinkPrivileges(ctx)
			c.checkSinkSchema(ctx)
			c.checkTablespaces(ctx)
			c.checkSchemaTools(ctx)
			c.checkConflicting(ctx)
			c.checkDiskSpace(ctx)
			c.checkToastCompression(ctx)
		}
	}
	c.checkPartitions()
	c.checkInheritance(ctx)
	c.checkExprUniqueIndexes(ctx)
	c.checkExtensionObjects(ctx)
	c.checkTablesWithoutKey()
	c.checkStreaming(ctx)
}

// connect opens one side and reads who it is logged in as.
func (c *checker) connect(ctx context.Context, item, side, dsn string) (*pgx.Conn, roleInfo) {
	var ri roleInfo
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := postgres.Connect(cctx, dsn, side)
	if err != nil {
		c.add(item, Fail, err.Error(),
			"check the "+side+" DSN (host, port, database, user, and the password in the DSN, PGPASSWORD or .pgpass), that the server runs and accepts TCP connections, and that its pg_hba.conf lets this user in")
		return nil, ri
	}
	err = conn.QueryRow(ctx, `SELECT current_user::text, current_database()::text, current_setting('server_version'),
			r.rolsuper, r.rolreplication
		FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`).
		Scan(&ri.User, &ri.Database, &ri.Version, &ri.Super, &ri.Replication)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		c.add(item, Fail, fmt.Sprintf("%s: connected, but reading the role and server failed: %v", side, err),
			"check that the "+side+" server is a PostgreSQL server sluice supports and that the role may read the catalog")
		return nil, ri
	}
	// Some managed services hide pg_control_system; the distinct_databases
	// item then says it cannot tell.
	_ = conn.QueryRow(ctx, `SELECT system_identifier::text FROM pg_catalog.pg_control_system()`).Scan(&ri.SystemID)
	who := "user " + ri.User
	if ri.Super {
		who += " (superuser)"
	}
	c.add(item, Pass, fmt.Sprintf("connected to database %s as %s, PostgreSQL %s", ri.Database, who, ri.Version), "")
	return conn, ri
}

// discover resolves the objects; false when there is nothing to check
// further.
func (c *checker) discover(ctx context.Context) bool {
	tables, err := postgres.Discover(ctx, c.src, c.cfg.Objects)
	switch {
	case err != nil:
		c.add(CheckObjects, Fail, err.Error(), "fix the objects list in the pipeline file")
		return false
	case len(tables) == 0:
		c.add(CheckObjects, Fail, "the selected objects contain no tables", "select a schema with tables, or list tables")
		return false
	}
	c.tables = tables
	c.byOID = map[uint32]*postgres.Table{}
	parts := 0
	for _, t := range tables {
		c.byOID[t.OID] = t
		if t.ParentOID != 0 {
			parts++
		}
	}
	detail := plural(len(tables), "table") + " selected"
	if parts > 0 {
		detail += fmt.Sprintf(" (%d of them partitions)", parts)
	}
	c.add(CheckObjects, Pass, detail, "")
	return true
}

func (c *checker) oids() []uint32 {
	out := make([]uint32, len(c.tables))
	for i, t := range c.tables {
		out[i] = t.OID
	}
	return out
}

// leaves are the tables that hold rows (all but partitioned parents).
func (c *checker) leaves() []*postgres.Table {
	var out []*postgres.Table
	for _, t := range c.tables {
		if !t.Partitioned {
			out = append(out, t)
		}
	}
	return out
}

// checkSourcePrivileges: the source role can read every selected table
// (and the sequences their columns use), and, for streaming, publish them
// and create sluice's schema.
func (c *checker) checkSourcePrivileges(ctx context.Context) {
	if c.srcRole.Super {
		c.add(CheckSourcePrivileges, Pass, "user "+c.srcRole.User+" is a superuser", "")
		return
	}
	rows, err := c.src.Query(ctx, `SELECT c.oid, n.nspname::text, pg_catalog.has_schema_privilege(n.oid, 'USAGE'),
			pg_catalog.has_table_privilege(c.oid, 'SELECT'), pg_catalog.pg_has_role(c.relowner, 'USAGE')
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = ANY($1)`, c.oids())
	if err != nil {
		c.add(CheckSourcePrivileges, Fail, fmt.Sprintf("source: read table privileges: %v", err), "check that the source role may read the catalog")
		return
	}
	noUsage := map[string]bool{}
	noSelectSet, notOwnedSet := map[uint32]bool{}, map[uint32]bool{}
	for rows.Next() {
		var oid uint32
		var schema string
		var usage, sel, owns bool
		if err := rows.Scan(&oid, &schema, &usage, &sel, &owns); err != nil {
			rows.Close()
			c.add(CheckSourcePrivileges, Fail, fmt.Sprintf("source: read table privileges: %v", err), "check that the source role may read the catalog")
			return
		}
		if !usage {
			noUsage[record.QuoteIdent(schema)] = true
		}
		noSelectSet[oid] = !sel
		notOwnedSet[oid] = !owns
	}
	if err := rows.Err(); err != nil {
		c.add(CheckSourcePrivileges, Fail, fmt.Sprintf("source: read table privileges: %v", err), "check that the source role may read the catalog")
		return
	}
	var noSelect, notOwned []string // in the tables' order
	for _, t := range c.tables {
		if noSelectSet[t.OID] {
			noSelect = append(noSelect, t.Name.Quoted())
		}
		if notOwnedSet[t.OID] {
			notOwned = append(notOwned, t.Name.Quoted())
		}
	}
	var noSeq []string
	if c.cfg.Full {
		// The sequences the tables' columns own (serial, identity); the
		// privilege is only asked of sequences (CASE keeps the planner
		// from asking it of other relations first).
		rows, err := c.src.Query(ctx, `SELECT nspname, relname FROM (
				SELECT DISTINCT sn.nspname::text, s.relname::text,
					CASE WHEN s.relkind = 'S' THEN pg_catalog.has_sequence_privilege(s.oid, 'SELECT') END AS ok
				FROM pg_catalog.pg_depend d
				JOIN pg_catalog.pg_class s ON s.oid = d.objid
				JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
				WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
					AND d.deptype IN ('a', 'i') AND d.refobjid = ANY($1) AND s.relkind = 'S') q
			WHERE NOT ok ORDER BY 1, 2`, c.oids())
		if err == nil {
			var names []record.TableName
			names, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (record.TableName, error) {
				var n record.TableName
				err := r.Scan(&n.Schema, &n.Name)
				return n, err
			})
			for _, n := range names {
				noSeq = append(noSeq, n.Quoted())
			}
		}
		if err != nil {
			c.add(CheckSourcePrivileges, Fail, fmt.Sprintf("source: read sequence privileges: %v", err), "check that the source role may read the catalog")
			return
		}
	}
	var problems, fixes []string
	role := record.QuoteIdent(c.srcRole.User)
	if len(noUsage) > 0 {
		schemas := sortedKeys(noUsage)
		problems = append(problems, "no USAGE on schema "+strings.Join(schemas, ", "))
		fixes = append(fixes, "GRANT USAGE ON SCHEMA "+strings.Join(schemas, ", ")+" TO "+role)
	}
	if len(noSelect) > 0 {
		problems = append(problems, "no SELECT on "+strings.Join(noSelect, ", "))
		fixes = append(fixes, "GRANT SELECT ON "+strings.Join(noSelect, ", ")+" TO "+role)
	}
	if len(noSeq) > 0 {
		problems = append(problems, "no SELECT on sequence "+strings.Join(noSeq, ", ")+" (read to set the sink's sequences)")
		fixes = append(fixes, "GRANT SELECT ON SEQUENCE "+strings.Join(noSeq, ", ")+" TO "+role)
	}
	if c.cfg.Incremental {
		var dbCreate bool
		if err := c.src.QueryRow(ctx, `SELECT pg_catalog.has_database_privilege(current_database(), 'CREATE')`).Scan(&dbCreate); err != nil {
			c.add(CheckSourcePrivileges, Fail, fmt.Sprintf("source: read database privileges: %v", err), "check that the source role may read the catalog")
			return
		}
		if !dbCreate {
			problems = append(problems, "no CREATE on database "+record.QuoteIdent(c.srcRole.Database)+" (incremental sync creates the publication and the sluice schema with its heartbeat table there)")
			fixes = append(fixes, "GRANT CREATE ON DATABASE "+record.QuoteIdent(c.srcRole.Database)+" TO "+role)
		}
		if len(notOwned) > 0 {
			problems = append(problems, "does not own "+strings.Join(notOwned, ", ")+" (incremental sync adds the tables to a publication, and sets REPLICA IDENTITY FULL on those without a primary key: both need the owner)")
			fixes = append(fixes, "make "+role+" a member of the tables' owner (GRANT owner TO "+role+"), or run as their owner or a superuser")
		}
	}
	if len(problems) > 0 {
		c.add(CheckSourcePrivileges, Fail, "user "+c.srcRole.User+": "+strings.Join(problems, "; "), "as the owner or a superuser, at the source: "+strings.Join(fixes, "; "))
		return
	}
	detail := fmt.Sprintf("user %s can read the %d selected tables", c.srcRole.User, len(c.tables))
	if c.cfg.Incremental {
		detail += ", owns them and can create the publication"
	}
	c.add(CheckSourcePrivileges, Pass, detail, "")
}

// loadSinkTables looks up, at the sink, what exists under each selected
// table's name, with the sink role's privileges on it.
func (c *checker) loadSinkTables(ctx context.Context) error {
	schemas := make([]string, len(c.tables))
	names := make([]string, len(c.tables))
	for i, t := range c.tables {
		tn := c.mapping.rules.Table(t.Name)
		schemas[i], names[i] = tn.Schema, tn.Name
	}
	rows, err := c.dst.Query(ctx, `SELECT k.i::int, ns.oid IS NOT NULL,
			COALESCE(pg_catalog.has_schema_privilege(ns.oid, 'USAGE'), false),
			COALESCE(pg_catalog.has_schema_privilege(ns.oid, 'CREATE'), false),
			c.oid IS NOT NULL, COALESCE(c.relkind::text, ''),
			COALESCE(pg_catalog.has_table_privilege(c.oid, 'INSERT'), false),
			COALESCE(pg_catalog.has_table_privilege(c.oid, 'SELECT'), false),
			COALESCE(pg_catalog.has_table_privilege(c.oid, 'UPDATE'), false),
			COALESCE(pg_catalog.has_table_privilege(c.oid, 'DELETE'), false)
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY k(s, n, i)
		LEFT JOIN pg_catalog.pg_namespace ns ON ns.nspname = k.s
		LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = ns.oid AND c.relname = k.n`, schemas, names)
	if err != nil {
		return fmt.Errorf("sink: look up the selected tables: %w", err)
	}
	c.sinkTables = map[uint32]*sinkTable{}
	for rows.Next() {
		var i int
		st := &sinkTable{}
		if err := rows.Scan(&i, &st.SchemaExists, &st.SchemaUsage, &st.SchemaCreate, &st.Exists, &st.Kind,
			&st.Insert, &st.Select, &st.Update, &st.Delete); err != nil {
			rows.Close()
			return fmt.Errorf("sink: look up the selected tables: %w", err)
		}
		st.Name = record.TableName{Schema: schemas[i-1], Name: names[i-1]}
		c.sinkTables[c.tables[i-1].OID] = st
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sink: look up the selected tables: %w", err)
	}
	return nil
}

// checkSinkPrivileges: the sink role can create sluice's schema and the
// missing tables, and write into the existing ones.
func (c *checker) checkSinkPrivileges(ctx context.Context) {
	if c.dstRole.Super {
		c.add(CheckSinkPrivileges, Pass, "user "+c.dstRole.User+" is a superuser", "")
		return
	}
	role := record.QuoteIdent(c.dstRole.User)
	db := record.QuoteIdent(c.dstRole.Database)
	var dbCreate, sluiceExists, sluiceCreate bool
	if err := c.dst.QueryRow(ctx, `SELECT pg_catalog.has_database_privilege(current_database(), 'CREATE'),
			EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1),
			COALESCE((SELECT pg_catalog.has_schema_privilege(oid, 'CREATE') AND pg_catalog.has_schema_privilege(oid, 'USAGE')
				FROM pg_catalog.pg_namespace WHERE nspname = $1), false)`, postgres.ProgressSchema).
		Scan(&dbCreate, &sluiceExists, &sluiceCreate); err != nil {
		c.add(CheckSinkPrivileges, Fail, fmt.Sprintf("sink: read database privileges: %v", err), "check that the sink role may read the catalog")
		return
	}
	var problems, fixes []string
	if !dbCreate {
		problems = append(problems, "no CREATE on database "+db+" (sluice keeps its progress in a sluice schema there, and creates missing schemas)")
		fixes = append(fixes, "GRANT CREATE ON DATABASE "+db+" TO "+role+" (or make "+role+" the database owner)")
	}
	if sluiceExists && !sluiceCreate {
		problems = append(problems, "no USAGE and CREATE on schema sluice (sluice's progress tables)")
		fixes = append(fixes, "GRANT USAGE, CREATE ON SCHEMA sluice TO "+role)
	}
	noUsage, noCreate := map[string]bool{}, map[string]bool{}
	missing := map[string][]string{} // privilege list → tables
	for _, t := range c.tables {
		st := c.sinkTables[t.OID]
		if st == nil || !st.SchemaExists {
			continue // the schema is created (needs CREATE on the database)
		}
		schema := record.QuoteIdent(st.Name.Schema)
		if !st.SchemaUsage {
			noUsage[schema] = true
		}
		if !st.Exists {
			if c.cfg.Schema && !st.SchemaCreate {
				noCreate[schema] = true
			}
			continue
		}
		if t.Partitioned {
			continue // rows go to the partitions
		}
		var lack []string
		if c.cfg.Full && !st.Insert {
			lack = append(lack, "INSERT")
		}
		if c.cfg.Incremental {
			for _, p := range []struct {
				name string
				ok   bool
			}{{"SELECT", st.Select}, {"INSERT", st.Insert}, {"UPDATE", st.Update}, {"DELETE", st.Delete}} {
				if !p.ok && !slices.Contains(lack, p.name) {
					lack = append(lack, p.name)
				}
			}
		}
		if len(lack) > 0 {
			k := strings.Join(lack, ", ")
			missing[k] = append(missing[k], st.Name.Quoted())
		}
	}
	if len(noUsage) > 0 {
		s := sortedKeys(noUsage)
		problems = append(problems, "no USAGE on schema "+strings.Join(s, ", "))
		fixes = append(fixes, "GRANT USAGE ON SCHEMA "+strings.Join(s, ", ")+" TO "+role)
	}
	if len(noCreate) > 0 {
		s := sortedKeys(noCreate)
		problems = append(problems, "no CREATE on schema "+strings.Join(s, ", ")+" (tables missing there are created by the schema sync)")
		fixes = append(fixes, "GRANT CREATE ON SCHEMA "+strings.Join(s, ", ")+" TO "+role)
	}
	for _, privs := range sortedKeys(missing) {
		problems = append(problems, "no "+privs+" on "+strings.Join(missing[privs], ", "))
		fixes = append(fixes, "GRANT "+privs+" ON "+strings.Join(missing[privs], ", ")+" TO "+role)
	}
	if len(problems) > 0 {
		c.add(CheckSinkPrivileges, Fail, "user "+c.dstRole.User+": "+strings.Join(problems, "; "), "at the sink, as the owner or a superuser: "+strings.Join(fixes, "; "))
		return
	}
	c.add(CheckSinkPrivileges, Pass, "user "+c.dstRole.User+" can create in database "+c.dstRole.Database+" and write the selected tables", "")
}

// checkSinkSchema: with schema sync, the plan of what would be created
// (which also finds names taken by other kinds of objects); without it,
// every table must exist.
func (c *checker) checkSinkSchema(ctx context.Context) {
	if !c.cfg.Schema {
		var missing, wrong []string
		for _, t := range c.tables {
			st := c.sinkTables[t.OID]
			switch {
			case st == nil:
				missing = append(missing, t.Name.String())
			case !st.Exists:
				missing = append(missing, st.Name.String())
			case st.Kind != "r" && st.Kind != "p":
				wrong = append(wrong, fmt.Sprintf("%s (relkind %s)", st.Name, st.Kind))
			}
		}
		var problems []string
		if len(missing) > 0 {
			problems = append(problems, "sync.schema is false but these tables do not exist at the sink: "+strings.Join(missing, ", "))
		}
		if len(wrong) > 0 {
			problems = append(problems, "these exist at the sink but are not tables: "+strings.Join(wrong, ", "))
		}
		if len(problems) > 0 {
			c.add(CheckSinkSchema, Fail, strings.Join(problems, "; "), "create the tables at the sink, or set sync.schema: true")
			return
		}
		c.add(CheckSinkSchema, Pass, "every selected table exists at the sink (sync.schema is false)", "")
		return
	}
	plan, err := postgres.PlanMissingMapped(ctx, c.src, c.dst, c.tables, c.mapping.rules.Table, c.mapping.rules.Column)
	if err != nil {
		c.add(CheckSinkSchema, Fail, err.Error(), "fix what the message names at the sink or the source, or change the selection")
		return
	}
	if plan.Empty() {
		c.add(CheckSinkSchema, Pass, "every selected table exists at the sink: nothing to create", "")
		return
	}
	var objs []string
	for _, s := range plan.Statements {
		if !slices.Contains(objs, s.Object) {
			objs = append(objs, s.Object)
		}
	}
	c.add(CheckSinkSchema, Pass, fmt.Sprintf("%s to create at the sink: %s", plural(len(objs), "object"), shortList(objs, 12)), "")
}

// checkConflicting: a selected table that exists at the sink and holds
// rows (not copied by an earlier run of this pipeline) would end up with
// both its rows and the copy's.
func (c *checker) checkConflicting(ctx context.Context) {
	if !c.cfg.Full {
		c.add(CheckConflictingTables, Pass, "not checked: sync.full is off, so rows already at the sink are kept and nothing is copied into them", "")
		return
	}
	ours := c.earlierRun(ctx)
	var conflicts, empty, resumed, unknown []string
	for _, t := range c.leaves() {
		st := c.sinkTables[t.OID]
		if st == nil || !st.Exists || (st.Kind != "r" && st.Kind != "p") {
			continue
		}
		only := "ONLY "
		if st.Kind == "p" {
			only = ""
		}
		var has bool
		if err := c.dst.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+only+st.Name.Quoted()+")").Scan(&has); err != nil {
			unknown = append(unknown, fmt.Sprintf("%s (%v)", st.Name, pgMessage(err)))
			continue
		}
		switch {
		case !has:
			empty = append(empty, st.Name.String())
		case ours.all || ours.tables[tableKey(t.Name)]:
			resumed = append(resumed, st.Name.String())
		default:
			conflicts = append(conflicts, st.Name.String())
		}
	}
	var notes []string
	if len(empty) > 0 {
		notes = append(notes, "exist at the sink and are empty, sluice copies into them: "+strings.Join(empty, ", "))
	}
	if len(resumed) > 0 {
		notes = append(notes, "hold rows from an earlier run of this pipeline, which the next run resumes: "+strings.Join(resumed, ", "))
	}
	switch {
	case len(conflicts) > 0 && c.cfg.IgnoreConflictingTables:
		c.add(CheckConflictingTables, Warn, "these tables already exist at the sink and hold rows that sluice did not copy for this pipeline: "+strings.Join(conflicts, ", ")+
			"; on_conflicting_tables: ignore copies into them: where a key clashes the copy keeps the sink's row and streaming overwrites it, and rows without a clash from both sides stay",
			"make sure that is what you want, or empty, drop or map these tables and set on_conflicting_tables: error")
	case len(conflicts) > 0:
		detail := "these tables already exist at the sink and hold rows that sluice did not copy for this pipeline: " + strings.Join(conflicts, ", ")
		if len(unknown) > 0 {
			detail += "; cannot tell whether these are empty: " + strings.Join(unknown, "; ")
		}
		c.add(CheckConflictingTables, Fail, detail,
			"for each: empty it (TRUNCATE), drop it, or map it to another sink table; or set on_conflicting_tables: ignore to copy into it anyway (the copy keeps the sink's row where a key clashes)")
	case len(unknown) > 0:
		c.add(CheckConflictingTables, Warn, "cannot tell whether these sink tables are empty: "+strings.Join(unknown, "; "),
			"grant the sink role SELECT on them, or make sure they are empty")
	case len(notes) > 0:
		c.add(CheckConflictingTables, Pass, "no conflicting tables; "+strings.Join(notes, "; "), "")
	default:
		c.add(CheckConflictingTables, Pass, "none of the selected tables exists at the sink yet", "")
	}
}

// earlierRun is what the sink says an earlier run of this pipeline did:
// tables whose chunks it copied, or, once streaming started, everything.
type earlierRunInfo struct {
	all    bool
	tables map[string]bool
}

func (c *checker) earlierRun(ctx context.Context) earlierRunInfo {
	out := earlierRunInfo{tables: map[string]bool{}}
	var copyTable, applyTable bool
	if err := c.dst.QueryRow(ctx, `SELECT pg_catalog.to_regclass('sluice.copy_progress') IS NOT NULL, pg_catalog.to_regclass('sluice.apply_progress') IS NOT NULL`).
		Scan(&copyTable, &applyTable); err != nil {
		return out
	}
	if applyTable {
		_ = c.dst.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sluice.apply_progress WHERE pipeline = $1)`, c.cfg.Name).Scan(&out.all)
	}
	if copyTable {
		rows, err := c.dst.Query(ctx, `SELECT DISTINCT table_name FROM sluice.copy_progress WHERE pipeline = $1`, c.cfg.Name)
		if err != nil {
			return out
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return out
		}
		for _, n := range names {
			out.tables[n] = true
		}
	}
	return out
}

// checkDiskSpace compares the selected tables' size at the source with the
// free space of the sink's data directory, when that can be known.
func (c *checker) checkDiskSpace(ctx context.Context) {
	if !c.cfg.Full {
		c.add(CheckSinkDiskSpace, Pass, "not checked: sync.full is off, nothing is copied", "")
		return
	}
	var need int64
	if err := c.src.QueryRow(ctx, `SELECT COALESCE(sum(pg_catalog.pg_total_relation_size(o)), 0)::bigint FROM unnest($1::oid[]) o`, c.oids()).Scan(&need); err != nil {
		c.add(CheckSinkDiskSpace, Warn, fmt.Sprintf("source: cannot read the tables' size: %v", err), "make sure the sink has room for the selected tables")
		return
	}
	needText := fmt.Sprintf("the selected tables take %s at the source (with their TOAST data and indexes)", display.Bytes(need))
	host := "?"
	if pc, err := postgres.ParseConfig(c.cfg.SinkDSN, "sink"); err == nil {
		host = pc.Host
	}
	if !isLocalHost(host) {
		c.add(CheckSinkDiskSpace, Warn,
			fmt.Sprintf("%s; the sink is at host %s, and PostgreSQL cannot report the free disk space of a remote server, so this was not checked", needText, host),
			fmt.Sprintf("make sure the sink's disk has at least %s free, plus room to grow; then acknowledge with ignore_checks: [%s]", display.Bytes(need), CheckSinkDiskSpace))
		return
	}
	var dataDir string
	if err := c.dst.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dataDir); err != nil {
		c.add(CheckSinkDiskSpace, Warn,
			fmt.Sprintf("%s; cannot tell the sink's free space: the sink runs on this machine, but reading its data_directory needs a superuser or pg_read_all_settings (%s)", needText, pgMessage(err)),
			fmt.Sprintf("make sure the sink's disk has at least %s free, or grant pg_read_all_settings to %s so check can look; or acknowledge with ignore_checks: [%s]", display.Bytes(need), record.QuoteIdent(c.dstRole.User), CheckSinkDiskSpace))
		return
	}
	free, err := c.opts.FreeSpace(dataDir)
	if err != nil {
		c.add(CheckSinkDiskSpace, Warn,
			fmt.Sprintf("%s; cannot tell the sink's free space: statfs of its data directory %s failed (%v); the sink listens on host %s but may run in a container or another file-system namespace", needText, dataDir, err, host),
			fmt.Sprintf("make sure the sink's disk has at least %s free; then acknowledge with ignore_checks: [%s]", display.Bytes(need), CheckSinkDiskSpace))
		return
	}
	have := fmt.Sprintf("the file system of the sink's data directory %s has %s free (the server is assumed to run on this machine, as its host is %s; tablespaces elsewhere are not counted)", dataDir, display.Bytes(int64(free)), host)
	switch {
	case free < uint64(need):
		c.add(CheckSinkDiskSpace, Fail, needText+"; "+have,
			fmt.Sprintf("free at least %s at the sink (the copy also writes WAL), or select fewer tables", display.Bytes(need-int64(free))))
	case float64(free) < 1.2*float64(need):
		c.add(CheckSinkDiskSpace, Warn, needText+"; "+have+": less than 20% to spare, and the copy also writes WAL at the sink",
			fmt.Sprintf("free more space at the sink; or acknowledge with ignore_checks: [%s]", CheckSinkDiskSpace))
	default:
		c.add(CheckSinkDiskSpace, Pass, needText+"; "+have, "")
	}
}

// checkPartitions: a partition selected without its parent gets only its
// own rows copied; a selected parent brings all its partitions.
func (c *checker) checkPartitions() {
	var orphans []string
	var brought []string
	parents := 0
	for _, t := range c.tables {
		if t.Partitioned && t.ParentOID == 0 {
			parents++
		}
		if t.ParentOID == 0 {
			continue
		}
		if _, ok := c.byOID[t.ParentOID]; !ok {
			orphans = append(orphans, fmt.Sprintf("%s (partition of %s)", t.Name, *t.Parent))
		} else if !c.selectedExplicitly(t.Name) {
			brought = append(brought, t.Name.String())
		}
	}
	if len(orphans) > 0 {
		c.add(CheckPartitions, Warn,
			"partitions selected without their partitioned table: "+strings.Join(orphans, ", ")+
				"; only their own rows are copied and streamed, and at the sink their parent is created (when missing) with only them attached",
			fmt.Sprintf("select the partitioned table instead (its partitions come along); if copying only these partitions is what you want, acknowledge with ignore_checks: [%s]", CheckPartitions))
		return
	}
	switch {
	case parents == 0:
		c.add(CheckPartitions, Pass, "no partitioned tables selected", "")
	case len(brought) > 0:
		c.add(CheckPartitions, Pass, fmt.Sprintf("%s selected with all their partitions; partitions not listed in objects come along with their parent: %s", plural(parents, "partitioned table"), shortList(brought, 12)), "")
	default:
		c.add(CheckPartitions, Pass, fmt.Sprintf("%s selected with all their partitions", plural(parents, "partitioned table")), "")
	}
}

// selectedExplicitly reports whether an objects entry names the table or
// its schema.
func (c *checker) selectedExplicitly(n record.TableName) bool {
	for _, s := range c.cfg.Objects {
		if s.Schema != "" && s.Schema == n.Schema || s.Schema == "" && s.Table == n {
			return true
		}
	}
	return false
}

// checkInheritance: legacy (non-partition) inheritance is not recreated at
// the sink, and a parent's copy reads only its own rows.
func (c *checker) checkInheritance(ctx context.Context) {
	rows, err := c.src.Query(ctx, `SELECT i.inhrelid, cn.nspname::text, ch.relname::text, i.inhparent, pn.nspname::text, p.relname::text
		FROM pg_catalog.pg_inherits i
		JOIN pg_catalog.pg_class ch ON ch.oid = i.inhrelid JOIN pg_catalog.pg_namespace cn ON cn.oid = ch.relnamespace
		JOIN pg_catalog.pg_class p ON p.oid = i.inhparent JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
		WHERE NOT ch.relispartition AND (i.inhrelid = ANY($1) OR i.inhparent = ANY($1))
		ORDER BY 2, 3, 5, 6`, c.oids())
	if err != nil {
		c.add(CheckInheritance, Warn, fmt.Sprintf("source: read table inheritance: %v", err), "check that the source role may read the catalog")
		return
	}
	var missingChildren, children []string
	for rows.Next() {
		var child, parent uint32
		var cs, cname, ps, pname string
		if err := rows.Scan(&child, &cs, &cname, &parent, &ps, &pname); err != nil {
			rows.Close()
			c.add(CheckInheritance, Warn, fmt.Sprintf("source: read table inheritance: %v", err), "check that the source role may read the catalog")
			return
		}
		cn, pn := record.TableName{Schema: cs, Name: cname}, record.TableName{Schema: ps, Name: pname}
		_, childSel := c.byOID[child]
		_, parentSel := c.byOID[parent]
		if parentSel && !childSel {
			missingChildren = append(missingChildren, fmt.Sprintf("%s (child of %s)", cn, pn))
		}
		if childSel {
			s := fmt.Sprintf("%s inherits from %s", cn, pn)
			if cs != ps {
				s += " (cross-schema)"
			}
			children = append(children, s)
		}
	}
	if err := rows.Err(); err != nil {
		c.add(CheckInheritance, Warn, fmt.Sprintf("source: read table inheritance: %v", err), "check that the source role may read the catalog")
		return
	}
	standalone := ""
	if len(children) > 0 {
		standalone = "; inheritance is not recreated at the sink, each child becomes a standalone table with all its columns: " + strings.Join(children, ", ")
	}
	switch {
	case len(missingChildren) > 0:
		c.add(CheckInheritance, Fail,
			"selected tables have inheritance children that are not selected: "+strings.Join(missingChildren, ", ")+
				"; sluice copies only a parent's own rows (SELECT ... FROM ONLY), so the children's rows, which queries on the parent see, would be missing at the sink"+standalone,
			"select the children too (each becomes a standalone table at the sink), or leave the parent out")
	case len(children) > 0:
		c.add(CheckInheritance, Warn, strings.TrimPrefix(standalone, "; "),
			fmt.Sprintf("if standalone tables at the sink are acceptable, acknowledge with ignore_checks: [%s]; otherwise convert the hierarchy to declarative partitioning, or create the tables with INHERITS at the sink before the run", CheckInheritance))
	default:
		c.add(CheckInheritance, Pass, "no table inheritance among the selected tables", "")
	}
}

// checkExprUniqueIndexes: unique indexes on expressions are not used to
// identify rows and not created at the sink.
func (c *checker) checkExprUniqueIndexes(ctx context.Context) {
	rows, err := c.src.Query(ctx, `SELECT i.indrelid, pg_catalog.pg_get_indexdef(i.indexrelid)
		FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
		WHERE i.indrelid = ANY($1) AND i.indisunique AND i.indexprs IS NOT NULL
		ORDER BY i.indrelid, ic.relname`, c.oids())
	if err != nil {
		c.add(CheckExprUniqueIndexes, Warn, fmt.Sprintf("source: read indexes: %v", err), "check that the source role may read the catalog")
		return
	}
	var found []string
	for rows.Next() {
		var oid uint32
		var def string
		if err := rows.Scan(&oid, &def); err != nil {
			rows.Close()
			c.add(CheckExprUniqueIndexes, Warn, fmt.Sprintf("source: read indexes: %v", err), "check that the source role may read the catalog")
			return
		}
		found = append(found, def)
	}
	if err := rows.Err(); err != nil {
		c.add(CheckExprUniqueIndexes, Warn, fmt.Sprintf("source: read indexes: %v", err), "check that the source role may read the catalog")
		return
	}
	if len(found) == 0 {
		c.add(CheckExprUniqueIndexes, Pass, "no unique indexes on expressions", "")
		return
	}
	c.add(CheckExprUniqueIndexes, Warn,
		"unique indexes on expressions: "+strings.Join(found, "; ")+
			"; sluice never uses them to identify rows (updates and deletes find rows by the primary key or a plain unique index, else by the whole row) and does not create them at the sink",
		fmt.Sprintf("create these indexes at the sink yourself after the copy; give the tables a primary key; then acknowledge with ignore_checks: [%s]", CheckExprUniqueIndexes))
}

// checkExtensionObjects: tables that belong to an extension, or live in a
// schema that does, are created by that extension, not copied.
func (c *checker) checkExtensionObjects(ctx context.Context) {
	rows, err := c.src.Query(ctx, `SELECT c.oid, e.extname::text, 'table'
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
			AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
		JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
		WHERE c.oid = ANY($1)
		UNION ALL
		SELECT c.oid, e.extname::text, 'schema'
		FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objid = c.relnamespace
			AND d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
		JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
		WHERE c.oid = ANY($1)`, c.oids())
	if err != nil {
		c.add(CheckExtensionObjects, Warn, fmt.Sprintf("source: read extension membership: %v", err), "check that the source role may read the catalog")
		return
	}
	var found []string
	exts := map[string]bool{}
	for rows.Next() {
		var oid uint32
		var ext, kind string
		if err := rows.Scan(&oid, &ext, &kind); err != nil {
			rows.Close()
			c.add(CheckExtensionObjects, Warn, fmt.Sprintf("source: read extension membership: %v", err), "check that the source role may read the catalog")
			return
		}
		t := c.byOID[oid]
		if kind == "table" {
			found = append(found, fmt.Sprintf("%s (belongs to extension %s)", t.Name, ext))
		} else {
			found = append(found, fmt.Sprintf("%s (in schema %s, which belongs to extension %s)", t.Name, record.QuoteIdent(t.Name.Schema), ext))
		}
		exts[record.QuoteIdent(ext)] = true
	}
	if err := rows.Err(); err != nil {
		c.add(CheckExtensionObjects, Warn, fmt.Sprintf("source: read extension membership: %v", err), "check that the source role may read the catalog")
		return
	}
	if len(found) == 0 {
		c.add(CheckExtensionObjects, Pass, "no selected table belongs to an extension or to a schema an extension owns", "")
		return
	}
	sort.Strings(found)
	c.add(CheckExtensionObjects, Warn,
		"tables owned by extensions: "+strings.Join(found, ", ")+
			"; sluice would create them at the sink as plain tables, which then clash with CREATE EXTENSION there",
		fmt.Sprintf("install %s at the sink (it creates these objects) and leave these tables out of objects; or acknowledge with ignore_checks: [%s]", strings.Join(sortedKeys(exts), ", "), CheckExtensionObjects))
}

// checkTablesWithoutKey: tables with no primary key or unique NOT NULL
// index, and no REPLICA IDENTITY FULL.
func (c *checker) checkTablesWithoutKey() {
	var keyless, full []string
	for _, t := range c.leaves() {
		if len(t.Key) > 0 {
			continue
		}
		if t.ReplicaIdentity == 'f' {
			full = append(full, t.Name.String())
		} else {
			keyless = append(keyless, t.Name.String())
		}
	}
	fullNote := ""
	if len(full) > 0 {
		fullNote = "; without a key but with REPLICA IDENTITY FULL (copied by block ranges, an interrupted copy restarts them whole): " + strings.Join(full, ", ")
	}
	if len(keyless) == 0 {
		c.add(CheckTablesWithoutKey, Pass, "every table has a primary key or a unique index over NOT NULL columns"+fullNote, "")
		return
	}
	detail := "no primary key or unique NOT NULL index: " + strings.Join(keyless, ", ") +
		"; they are copied by block ranges, and an interrupted copy restarts them whole"
	fix := fmt.Sprintf("add a primary key (best), or ALTER TABLE ... REPLICA IDENTITY FULL at the source; or acknowledge with ignore_checks: [%s]", CheckTablesWithoutKey)
	if c.cfg.Incremental {
		detail += "; for streaming sluice sets REPLICA IDENTITY FULL on them before publishing them, so every UPDATE and DELETE logs the whole old row and is applied at the sink by matching the whole row (slow on big tables)"
	}
	c.add(CheckTablesWithoutKey, Warn, detail+fullNote, fix)
}

// checkStreaming runs the items that only matter for incremental sync.
func (c *checker) checkStreaming(ctx context.Context) {
	names := []string{CheckWalLevel, CheckSourceReplication, CheckReplicationSlots, CheckWalSenders, CheckReplicaIdentity, CheckFilterIdentity, CheckLongRunningTransacts, CheckDDLCapture}
	if !c.cfg.Incremental {
		for _, n := range names {
			c.add(n, Pass, notIncremental, "")
		}
		return
	}
	c.checkWalLevel(ctx)
	c.freeSenders = -1
	senders := c.walSenders(ctx)
	c.checkReplicationRole(ctx)
	c.checkSlots(ctx)
	c.rep.Items = append(c.rep.Items, senders)
	c.checkReplicaIdentity()
	c.checkFilterIdentity()
	c.checkLongTransactions(ctx)
	c.checkDDLCapture()
}

func (c *checker) checkWalLevel(ctx context.Context) {
	var level string
	if err := c.src.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&level); err != nil {
		c.add(CheckWalLevel, Fail, fmt.Sprintf("source: read wal_level: %v", err), "check the source connection")
		return
	}
	if level != "logical" {
		c.add(CheckWalLevel, Fail, fmt.Sprintf("the source has wal_level = %s; incremental sync (logical decoding) needs logical", level),
			"at the source, as a superuser: ALTER SYSTEM SET wal_level = logical; then restart the server (a reload is not enough)")
		return
	}
	c.add(CheckWalLevel, Pass, "wal_level = logical", "")
}

// walSenders builds the wal_senders item (added to the report after the
// replication item, but computed first: the replication item only tries a
// replication connection when a WAL sender is free).
func (c *checker) walSenders(ctx context.Context) CheckItem {
	var maxSenders, used int
	if err := c.src.QueryRow(ctx, `SELECT current_setting('max_wal_senders')::int, (SELECT count(*) FROM pg_catalog.pg_stat_get_wal_senders())::int`).
		Scan(&maxSenders, &used); err != nil {
		return CheckItem{Name: CheckWalSenders, Status: Warn, Detail: fmt.Sprintf("source: cannot count WAL senders: %v", pgMessage(err)),
			Fix: "make sure max_wal_senders leaves one free for sluice"}
	}
	c.freeSenders = maxSenders - used
	if c.freeSenders <= 0 {
		return CheckItem{Name: CheckWalSenders, Status: Fail,
			Detail: fmt.Sprintf("all %d WAL senders (max_wal_senders) are in use; sluice streams through one", maxSenders),
			Fix:    "at the source: raise max_wal_senders (ALTER SYSTEM SET max_wal_senders = ...; restart), or stop an unused replication client"}
	}
	return CheckItem{Name: CheckWalSenders, Status: Pass, Detail: fmt.Sprintf("%d of %d WAL senders free; sluice uses one", c.freeSenders, maxSenders)}
}

func (c *checker) checkReplicationRole(ctx context.Context) {
	if !c.srcRole.Super && !c.srcRole.Replication {
		c.add(CheckSourceReplication, Fail,
			fmt.Sprintf("user %s has neither the REPLICATION attribute nor superuser, so it cannot open the replication connection that streams changes", c.srcRole.User),
			fmt.Sprintf("at the source, as a superuser: ALTER ROLE %s REPLICATION", record.QuoteIdent(c.srcRole.User)))
		return
	}
	attr := "has the REPLICATION attribute"
	if c.srcRole.Super {
		attr = "is a superuser"
	}
	if c.freeSenders == 0 {
		c.add(CheckSourceReplication, Pass, fmt.Sprintf("user %s %s (a replication connection was not tried: no WAL sender is free, see %s)", c.srcRole.User, attr, CheckWalSenders), "")
		return
	}
	// Try it: pg_hba.conf may still refuse replication connections.
	rc, err := postgres.ReplicationConfig(c.cfg.SourceDSN)
	if err == nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var conn *pgconn.PgConn
		conn, err = pgconn.ConnectConfig(cctx, rc)
		cancel()
		if err == nil {
			_, err = pglogrepl.IdentifySystem(ctx, conn)
			conn.Close(context.WithoutCancel(ctx))
		}
	}
	if err != nil {
		c.add(CheckSourceReplication, Fail,
			fmt.Sprintf("user %s %s, but a replication connection (replication=database) failed: %v", c.srcRole.User, attr, pgMessage(err)),
			fmt.Sprintf("let user %s make replication connections to database %s in the source's pg_hba.conf, then reload", c.srcRole.User, c.srcRole.Database))
		return
	}
	c.add(CheckSourceReplication, Pass, fmt.Sprintf("user %s %s; a replication connection works", c.srcRole.User, attr), "")
}

func (c *checker) checkSlots(ctx context.Context) {
	var maxSlots, used int
	if err := c.src.QueryRow(ctx, `SELECT current_setting('max_replication_slots')::int, (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int`).
		Scan(&maxSlots, &used); err != nil {
		c.add(CheckReplicationSlots, Fail, fmt.Sprintf("source: read replication slots: %v", err), "check the source connection")
		return
	}
	var slotType, plugin, database string
	err := c.src.QueryRow(ctx, `SELECT slot_type, COALESCE(plugin::text, ''), COALESCE(database::text, '') FROM pg_catalog.pg_replication_slots WHERE slot_name = $1`, c.slot).
		Scan(&slotType, &plugin, &database)
	switch {
	case err == nil:
		if slotType != "logical" || plugin != "pgoutput" || database != c.srcRole.Database {
			c.add(CheckReplicationSlots, Fail,
				fmt.Sprintf("a replication slot named %s exists but is not this pipeline's: %s slot, plugin %q, database %q (this pipeline needs a logical pgoutput slot in database %s)",
					c.slot, slotType, plugin, database, c.srcRole.Database),
				"rename the pipeline, or drop that slot if nothing uses it (SELECT pg_drop_replication_slot('"+c.slot+"'))")
			return
		}
		c.add(CheckReplicationSlots, Pass, fmt.Sprintf("slot %s exists (made by an earlier run) and will be reused; %d of %d slots in use", c.slot, used, maxSlots), "")
		return
	case !errors.Is(err, pgx.ErrNoRows):
		c.add(CheckReplicationSlots, Fail, fmt.Sprintf("source: read replication slot %s: %v", c.slot, err), "check the source connection")
		return
	}
	free := maxSlots - used
	if free <= 0 {
		c.add(CheckReplicationSlots, Fail,
			fmt.Sprintf("all %d replication slots (max_replication_slots) are in use; sluice needs one for slot %s", maxSlots, c.slot),
			"at the source: drop unused slots (see pg_replication_slots; pg_drop_replication_slot), or raise max_replication_slots (restart needed)")
		return
	}
	detail := fmt.Sprintf("%d of %d replication slots free; sluice creates slot %s", free, maxSlots, c.slot)
	if free == 1 {
		detail += " (resuming an interrupted copy briefly needs one more, temporary slot)"
	}
	c.add(CheckReplicationSlots, Pass, detail, "")
}

func (c *checker) checkReplicaIdentity() {
	var nothing, willSet []string
	var byKey, byFull, byIndex int
	// What PrepareSource does: a table without a primary key whose
	// identity is not FULL or an index gets REPLICA IDENTITY FULL; a table
	// with one keeps its identity, even NOTHING.
	for _, t := range c.leaves() {
		switch {
		case t.ReplicaIdentity == 'n' && t.KeyKind == "primary":
			nothing = append(nothing, t.Name.String())
		case t.ReplicaIdentity == 'f':
			byFull++
		case t.ReplicaIdentity == 'i':
			byIndex++
		case t.KeyKind == "primary":
			byKey++
		default:
			willSet = append(willSet, t.Name.String())
		}
	}
	if len(nothing) > 0 {
		c.add(CheckReplicaIdentity, Fail,
			"REPLICA IDENTITY NOTHING on tables with a primary key: "+strings.Join(nothing, ", ")+"; once these are published, UPDATE and DELETE on them fail at the source, and sluice could not apply them",
			"at the source: ALTER TABLE ... REPLICA IDENTITY DEFAULT (uses the primary key)")
		return
	}
	detail := fmt.Sprintf("every table can be streamed: %d by primary key, %d by replica identity index, %d by REPLICA IDENTITY FULL", byKey, byIndex, byFull)
	if len(willSet) > 0 {
		detail += "; sluice sets REPLICA IDENTITY FULL before publishing them on: " + strings.Join(willSet, ", ")
	}
	c.add(CheckReplicaIdentity, Pass, detail, "")
}

func (c *checker) checkLongTransactions(ctx context.Context) {
	secs := c.opts.LongTransaction.Seconds()
	rows, err := c.src.Query(ctx, `SELECT pid, COALESCE(datname::text, ''), COALESCE(usename::text, ''), COALESCE(state, ''),
			EXTRACT(epoch FROM now() - xact_start)::float8
		FROM pg_catalog.pg_stat_activity
		WHERE backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid()
			AND xact_start < now() - make_interval(secs => $1)
		ORDER BY xact_start`, secs)
	if err != nil {
		c.add(CheckLongRunningTransacts, Warn, fmt.Sprintf("source: read pg_stat_activity: %v", pgMessage(err)), "look for long-running transactions at the source yourself")
		return
	}
	var found []string
	for rows.Next() {
		var pid int32
		var db, user, state string
		var age float64
		if err := rows.Scan(&pid, &db, &user, &state, &age); err != nil {
			rows.Close()
			c.add(CheckLongRunningTransacts, Warn, fmt.Sprintf("source: read pg_stat_activity: %v", err), "look for long-running transactions at the source yourself")
			return
		}
		found = append(found, fmt.Sprintf("pid %d (user %s, database %s, %s) open for %s", pid, user, db, state, time.Duration(age*float64(time.Second)).Round(time.Second)))
	}
	if err := rows.Err(); err != nil {
		c.add(CheckLongRunningTransacts, Warn, fmt.Sprintf("source: read pg_stat_activity: %v", err), "look for long-running transactions at the source yourself")
		return
	}
	rows, err = c.src.Query(ctx, `SELECT gid, COALESCE(database::text, ''), EXTRACT(epoch FROM now() - prepared)::float8
		FROM pg_catalog.pg_prepared_xacts WHERE prepared < now() - make_interval(secs => $1) ORDER BY prepared`, secs)
	if err == nil {
		for rows.Next() {
			var gid, db string
			var age float64
			if rows.Scan(&gid, &db, &age) == nil {
				found = append(found, fmt.Sprintf("prepared transaction %q (database %s) open for %s", gid, db, time.Duration(age*float64(time.Second)).Round(time.Second)))
			}
		}
		rows.Close()
	}
	visibility := ""
	if !c.srcRole.Super {
		var all bool
		if c.src.QueryRow(ctx, `SELECT pg_catalog.pg_has_role('pg_read_all_stats', 'USAGE')`).Scan(&all) == nil && !all {
			visibility = fmt.Sprintf("; only transactions of user %s are visible (grant pg_read_all_stats to see all)", c.srcRole.User)
		}
	}
	if len(found) == 0 {
		c.add(CheckLongRunningTransacts, Pass, fmt.Sprintf("no transaction with writes has been open longer than %s", c.opts.LongTransaction)+visibility, "")
		return
	}
	c.add(CheckLongRunningTransacts, Warn,
		fmt.Sprintf("transactions open longer than %s at the source: %s; creating the replication slot waits until they end, and while they run the source keeps its WAL", c.opts.LongTransaction, strings.Join(found, "; "))+visibility,
		fmt.Sprintf("end them before the first run (COMMIT or ROLLBACK in their sessions, pg_terminate_backend(pid), COMMIT/ROLLBACK PREPARED), or acknowledge with ignore_checks: [%s]", CheckLongRunningTransacts))
}

// checkIgnoreNames adds the ignore_checks item: unknown names warn.
func (c *checker) checkIgnoreNames() {
	known := map[string]bool{}
	for _, n := range CheckNames() {
		known[n] = true
	}
	var unknown, listed []string
	for _, n := range c.opts.IgnoreChecks {
		if known[n] {
			listed = append(listed, n)
		} else {
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
	}
	switch {
	case len(unknown) > 0:
		c.add(CheckIgnoreChecks, Warn, "ignore_checks names checks that do not exist: "+strings.Join(unknown, ", "),
			"fix or remove them; check names are: "+strings.Join(CheckNames(), ", "))
	case len(listed) > 0:
		c.add(CheckIgnoreChecks, Pass, "acknowledges: "+strings.Join(listed, ", "), "")
	default:
		c.add(CheckIgnoreChecks, Pass, "no warnings acknowledged", "")
	}
}

// acknowledge turns warnings named in ignore_checks into passes; a failure
// named there stays a failure.
func (c *checker) acknowledge() {
	ack := map[string]bool{}
	for _, n := range c.opts.IgnoreChecks {
		ack[n] = true
	}
	for i := range c.rep.Items {
		it := &c.rep.Items[i]
		if !ack[it.Name] {
			continue
		}
		switch it.Status {
		case Warn:
			it.Status = Pass
			it.Detail += acknowledged
			it.Fix = ""
			it.Acknowledged = true
		case Fail:
			it.Detail += " (named in ignore_checks, but failures cannot be ignored: fix it)"
		}
	}
}

// statfsFree is the space available to unprivileged users on the file
// system holding path.
func statfsFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil //nolint:unconvert // field types differ by OS
}

// isLocalHost reports whether a DSN host is this machine: a Unix socket
// directory, localhost or a loopback address.
func isLocalHost(host string) bool {
	if strings.HasPrefix(host, "/") || host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// pgMessage is a PostgreSQL error's message (without the SQLSTATE noise),
// or the error.
func pgMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Message
	}
	return err.Error()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// plural is "1 table", "2 tables".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// shortList joins at most n items and says how many more there are.
func shortList(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:n], ", ") + fmt.Sprintf(" and %d more", len(items)-n)
}

// checkFilters resolves the objects' options (renames, where, operations)
// against the source's catalog, as a run does before touching data.
func (c *checker) checkFilters(ctx context.Context) {
	c.mapping = &mapping{rules: nil, opts: map[uint32]*tableOptions{}}
	if len(c.cfg.Options) == 0 && len(c.cfg.Rename.Tables)+len(c.cfg.Rename.Schemas)+len(c.cfg.Rename.Columns)+len(c.cfg.Rename.Bulk) == 0 &&
		len(c.cfg.Transforms) == 0 && c.cfg.Rename.Case == rename.CaseSource {
		c.add(CheckFiltersTransforms, Pass, "no filters or transforms configured", "")
		return
	}
	m, err := resolveMapping(ctx, c.src, &c.cfg, c.tables)
	if err != nil {
		var p permanentError
		if errors.As(err, &p) {
			err = p.err
		}
		c.add(CheckFiltersTransforms, Fail, err.Error(), "fix the where, rename, columns or operations of the objects the message names")
		return
	}
	c.mapping = m
	if c.chain, err = newTransformChain(ctx, c.src, &c.cfg, c.tables, false); err != nil {
		var p permanentError
		if errors.As(err, &p) {
			err = p.err
		}
		c.add(CheckFiltersTransforms, Fail, err.Error(), "fix the transforms stages the message names")
		return
	}
	filters, renames := 0, 0
	for _, t := range c.tables {
		if o := m.opts[t.OID]; o != nil && o.filter != nil {
			filters++
		}
		if m.rules.Table(t.Name) != t.Name {
			renames++
		}
	}
	c.add(CheckFiltersTransforms, Pass, fmt.Sprintf("%s filtered by a where condition, %s renamed at the sink, %s (%s with a stage)", plural(filters, "table"), plural(renames, "table"), plural(len(c.cfg.Transforms), "transform stage"), plural(len(c.chain.tables), "table")), "")
}
