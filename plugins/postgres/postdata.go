package postgres

// Schema sync, post-data part: everything of the selection that the
// pre-data part (PlanMissing) does not create — secondary indexes, unique,
// check, exclusion and foreign-key constraints, triggers, rules, views,
// materialized views, functions, procedures, aggregates, operators,
// comments — created at the sink after the full copy, as pg_restore does.
//
// The DDL is pg_dump's own: `pg_dump --schema-only` of the selection at the
// source, split into its TOC entries (the "-- Name: …; Type: …; Schema: …"
// headers), minus the entries the same pg_dump finds at the sink. pg_dump
// renders every object kind of its server version exactly, and orders the
// entries by their dependencies (a function before the view that calls
// it, a view before the materialized view reading it, a unique index before
// the foreign key that needs it); re-implementing that from the catalog
// would be a second, lesser pg_dump. Comparing entry keys (type, schema,
// name) with a dump of the sink makes the step idempotent: what exists is
// skipped, whatever created it.

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// DumpEntry is one TOC entry of a plain pg_dump script.
type DumpEntry struct {
	Type, Schema, Name, Owner string
	SQL                       string
	// outside: the entry may need objects outside the selection.
	outside bool
	// OwnerSQL is the entry's trailing ALTER … OWNER TO statement, also
	// part of SQL; empty when it has none.
	OwnerSQL string
}

func (e DumpEntry) key() string { return e.Type + "\x00" + e.Schema + "\x00" + e.Name }

// object names the entry for messages.
func (e DumpEntry) object() string {
	if e.Schema == "-" || e.Schema == "" {
		return strings.ToLower(e.Type) + " " + e.Name
	}
	return strings.ToLower(e.Type) + " " + e.Schema + "." + e.Name
}

var dumpHeaderRe = regexp.MustCompile(`(?m)^--\n-- (?:Data for )?Name: (.*?); Type: (.*?); Schema: (.*?); Owner: ([^\n;]*)(?:; Tablespace: [^\n]*)?\n--\n`)
var dumpTrailerRe = regexp.MustCompile(`(?m)^--\n-- PostgreSQL database dump complete\n`)

// ParseDump splits a plain pg_dump script into its entries; the preamble
// (SET lines) and psql meta-commands (\restrict) are dropped.
func ParseDump(script string) []DumpEntry {
	if loc := dumpTrailerRe.FindStringIndex(script); loc != nil {
		script = script[:loc[0]]
	}
	idx := dumpHeaderRe.FindAllStringSubmatchIndex(script, -1)
	out := make([]DumpEntry, 0, len(idx))
	// pg_dump writes the SET default_tablespace / default_table_access_method
	// an entry needs before that entry's header: carry them over.
	var carry []string
	for i, m := range idx {
		end := len(script)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		var body, next []string
		for _, line := range strings.Split(script[m[1]:end], "\n") {
			if strings.HasPrefix(line, `\restrict `) || strings.HasPrefix(line, `\unrestrict `) {
				continue
			}
			body = append(body, line)
		}
		for len(body) > 0 {
			last := strings.TrimSpace(body[len(body)-1])
			if last != "" && !strings.HasPrefix(last, "SET ") {
				break
			}
			body = body[:len(body)-1]
			if last != "" {
				next = append([]string{last}, next...)
			}
		}
		for len(body) > 0 && strings.TrimSpace(body[0]) == "" {
			body = body[1:]
		}
		e := DumpEntry{
			Name:   script[m[2]:m[3]],
			Type:   script[m[4]:m[5]],
			Schema: script[m[6]:m[7]],
			Owner:  script[m[8]:m[9]],
			SQL:    strings.TrimSpace(strings.Join(append(carry, body...), "\n")),
		}
		carry = next
		last := e.SQL[strings.LastIndexByte(e.SQL, '\n')+1:]
		if strings.HasPrefix(last, "ALTER ") && strings.Contains(last, " OWNER TO ") && strings.HasSuffix(last, ";") {
			e.OwnerSQL = last
		}
		out = append(out, e)
	}
	return out
}

// postDataSkip are the entry types post-data never applies: the pre-data
// part owns tables and their partitions, the copy the data and sequence
// values; default privileges, publications, subscriptions and event
// triggers are the user's to set at the sink. Privileges (ACL entries) and
// owners are applied where the sink has the roles (optional statements).
var postDataSkip = map[string]bool{
	"TABLE": true, "TABLE ATTACH": true, "FOREIGN TABLE": true, "TABLE DATA": true, "SEQUENCE SET": true,
	"DEFAULT ACL": true, "DATABASE": true, "DATABASE PROPERTIES": true,
	"PUBLICATION": true, "PUBLICATION TABLE": true, "PUBLICATION TABLES IN SCHEMA": true,
	"SUBSCRIPTION": true, "SUBSCRIPTION TABLE": true, "EVENT TRIGGER": true, "BLOB": true, "LARGE OBJECT": true,
	"MATERIALIZED VIEW DATA": true,
}

// stripSets drops the SET lines pg_dump carries into an entry.
func stripSets(sql string) string {
	var out []string
	for _, line := range strings.Split(sql, "\n") {
		if !strings.HasPrefix(line, "SET ") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// outsideTypes are the entry types of a single table's dump that may
// need objects the dump leaves out.
var outsideTypes = map[string]bool{"TRIGGER": true, "FK CONSTRAINT": true, "RULE": true, "POLICY": true}

// ownerSkip are the entry types whose owner post-data leaves alone when
// they exist at the sink.
var ownerSkip = map[string]bool{"DATABASE": true, "EXTENSION": true}

// quotePattern renders a name as a pg_dump pattern that matches it
// literally (double quotes make every pattern character literal).
func quotePattern(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// dumpArgs are the pg_dump arguments selecting whole schemas, or single
// tables: pg_dump ignores -n when -t is given, so they are two dumps.
func dumpArgs(sel []Selection, tables []*Table, target TargetName) (schemaArgs, tableArgs []string) {
	whole := map[string]bool{}
	for _, s := range sel {
		if s.Schema != "" && !whole[s.Schema] {
			whole[s.Schema] = true
			schemaArgs = append(schemaArgs, "--schema="+quotePattern(s.Schema))
		}
	}
	seen := map[record.TableName]bool{}
	for _, t := range tables {
		if whole[t.Name.Schema] {
			// A schema's table renamed into another schema: dump that one
			// too (at the sink).
			if ts := target(t.Name).Schema; !whole[ts] && !seen[record.TableName{Schema: ts}] {
				seen[record.TableName{Schema: ts}] = true
				schemaArgs = append(schemaArgs, "--schema="+quotePattern(ts))
			}
			continue
		}
		tn := target(t.Name)
		if seen[tn] {
			continue
		}
		seen[tn] = true
		tableArgs = append(tableArgs, "--table="+quotePattern(tn.Schema)+"."+quotePattern(tn.Name))
	}
	if len(schemaArgs) > 0 {
		// sluice's own helper schema is never replicated.
		schemaArgs = append(schemaArgs, "--exclude-schema=sluice")
	}
	return schemaArgs, tableArgs
}

// dumpSelection dumps the selection (whole schemas, then single tables) and
// returns the entries in pg_dump's order, without duplicates.
func dumpSelection(ctx context.Context, d *PgDump, dsn, role string, schemaArgs, tableArgs []string) ([]DumpEntry, error) {
	var out []DumpEntry
	seen := map[string]bool{}
	for i, args := range [][]string{schemaArgs, tableArgs} {
		if len(args) == 0 {
			continue
		}
		script, err := d.Dump(ctx, dsn, role, args...)
		if err != nil {
			return nil, err
		}
		for _, e := range ParseDump(script) {
			if !seen[e.key()] {
				seen[e.key()] = true
				// A single table's dump leaves out what its triggers,
				// rules and foreign keys may need (a function, a table
				// not selected): those are applied where they can be.
				e.outside = i == 1 && outsideTypes[e.Type]
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// PlanPostData returns the post-data DDL for the selection: pg_dump's
// entries of the source selection that the sink does not have, in pg_dump's
// (dependency) order, then a REFRESH of every materialized view it creates
// that is populated at the source. srcDSN and dstDSN are given to pg_dump
// (found by FindPgDump for both servers' versions); src and dst are open
// connections to the same databases. Only the tables' names go through
// target; the other objects keep their names (renaming is not applied to
// them yet).
func PlanPostData(ctx context.Context, src, dst *pgx.Conn, srcDSN, dstDSN string, sel []Selection, tables []*Table, target TargetName) (*SchemaPlan, error) {
	return planDump(ctx, src, dst, srcDSN, dstDSN, sel, tables, target, stagePostData, nil)
}

// PlanPostDataMapped is PlanPostData for a pipeline that renames tables or
// columns: mapped lists them, and the plan applies pg_dump's statements
// (which name the source's objects) with the sink's tables under their
// source names (see impersonate.go).
func PlanPostDataMapped(ctx context.Context, src, dst *pgx.Conn, srcDSN, dstDSN string, sel []Selection, tables []*Table, target TargetName, mapped []MappedTable) (*SchemaPlan, error) {
	return planDump(ctx, src, dst, srcDSN, dstDSN, sel, tables, target, stagePostData, mapped)
}

// sourceDump is a pg_dump of the source's selection made ready to run
// (prepareSourceDump).
type sourceDump struct {
	dump                  *PgDump
	exts                  []string
	schemaArgs, tableArgs []string
	// schemas are the whole schemas selected and oids the pipeline's
	// tables: the other tables of those schemas are left out of the dump
	// (see dumpsnap.go).
	schemas []string
	oids    []uint32
}

// sourceSchema is the source's selection as pg_dump gave it.
type sourceSchema struct {
	dump    *PgDump
	exts    []string
	entries []DumpEntry
}

// prepareSourceDump finds pg_dump for both servers and builds the
// arguments that dump the selection at the source (src and dst are only
// queried here, not kept).
func prepareSourceDump(ctx context.Context, src, dst *pgx.Conn, sel []Selection, tables []*Table) (*sourceDump, error) {
	srcVer, err := serverVersion(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dstVer, err := serverVersion(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	dump, err := FindPgDump(ctx, srcVer, dstVer)
	if err != nil {
		return nil, err
	}
	exts, err := selectionExtensions(ctx, src, sel, tables)
	if err != nil {
		return nil, err
	}
	schemaArgs, tableArgs := dumpArgs(sel, tables, SameName)
	schemaArgs, tableArgs = withExtensions(schemaArgs, tableArgs, exts)
	return &sourceDump{dump: dump, exts: exts, schemaArgs: schemaArgs, tableArgs: tableArgs, schemas: selectedSchemas(sel), oids: tableOIDs(tables)}, nil
}

// run dumps the source (srcDSN) as it is in the exported snapshot
// snapshotID ("" for now: at a snapshot exported for the dump), leaving
// out the tables of selected schemas that are not the pipeline's (created
// since its tables were discovered: the stream brings them) as that
// snapshot sees them. The exporting transaction must stay open until
// pg_dump has imported it.
func (d *sourceDump) run(ctx context.Context, srcDSN, snapshotID string) (*sourceSchema, error) {
	schemaArgs, tableArgs := d.schemaArgs, d.tableArgs
	if len(d.schemas) > 0 && len(schemaArgs) > 0 {
		pin, err := pinSource(ctx, srcDSN, snapshotID, d.schemas, d.oids)
		if err != nil {
			return nil, err
		}
		defer pin.close(ctx)
		snapshotID = pin.snapshot
		schemaArgs = append(slices.Clone(schemaArgs), pin.exclude...)
	}
	if snapshotID != "" {
		at := "--snapshot=" + snapshotID
		if len(schemaArgs) > 0 {
			schemaArgs = append([]string{at}, schemaArgs...)
		}
		if len(tableArgs) > 0 {
			tableArgs = append([]string{at}, tableArgs...)
		}
	}
	entries, err := dumpSelection(ctx, d.dump, srcDSN, "source", schemaArgs, tableArgs)
	if err != nil {
		return nil, err
	}
	return &sourceSchema{dump: d.dump, exts: d.exts, entries: entries}, nil
}

// SourceDumper dumps the source's selection for post-data planning; made
// by PrepareSourceDump, it may run on another goroutine than the one whose
// connections prepared it (it opens its own).
type SourceDumper struct{ d *sourceDump }

// SourceDump is the source's selection as pg_dump gave it, for
// PlanPostDataFrom.
type SourceDump struct{ s *sourceSchema }

// PrepareSourceDump queries src and dst for what the dump needs (server
// versions, the selection's extensions) and returns the dumper.
func PrepareSourceDump(ctx context.Context, src, dst *pgx.Conn, sel []Selection, tables []*Table) (*SourceDumper, error) {
	d, err := prepareSourceDump(ctx, src, dst, sel, tables)
	if err != nil {
		return nil, err
	}
	return &SourceDumper{d: d}, nil
}

// Run dumps the source (srcDSN) as it is now.
func (d *SourceDumper) Run(ctx context.Context, srcDSN string) (*SourceDump, error) {
	s, err := d.d.run(ctx, srcDSN, "")
	if err != nil {
		return nil, err
	}
	return &SourceDump{s: s}, nil
}

// PlanPostDataFrom is PlanPostDataMapped with the source already dumped
// (pre): it dumps only the sink.
//
// sink, when not nil, is the sink's dump taken by DumpSink, after the last
// change to the sink's schema before this plan (the keys built).
func PlanPostDataFrom(ctx context.Context, src, dst *pgx.Conn, pre *SourceDump, sink *SinkDump, dstDSN string, sel []Selection, tables []*Table, target TargetName, mapped []MappedTable) (*SchemaPlan, error) {
	var sinkEntries []DumpEntry
	if sink != nil {
		sinkEntries = sink.entries
		if sinkEntries == nil {
			sinkEntries = []DumpEntry{}
		}
	}
	return planFromSource(ctx, src, dst, pre.s, sinkEntries, dstDSN, sel, tables, target, stagePostData, mapped)
}

// SinkDump is the sink's dump of what it has of the selection, for
// PlanPostDataFrom.
type SinkDump struct{ entries []DumpEntry }

// DumpSink dumps what the sink (dst, dstDSN) has of the selection with the
// pg_dump and extensions d was prepared with: it may run while d runs at
// the source (on the goroutine that owns dst).
func (d *SourceDumper) DumpSink(ctx context.Context, dst *pgx.Conn, dstDSN string, sel []Selection, tables []*Table, target TargetName) (*SinkDump, error) {
	if target == nil {
		target = SameName
	}
	entries, err := dumpSink(ctx, dst, d.d.dump, d.d.exts, dstDSN, sel, tables, target)
	if err != nil {
		return nil, err
	}
	return &SinkDump{entries: entries}, nil
}

// dumpSink dumps what the sink has of the selection, with the source's
// selected extensions exts that the sink has installed.
func dumpSink(ctx context.Context, dst *pgx.Conn, dump *PgDump, exts []string, dstDSN string, sel []Selection, tables []*Table, target TargetName) ([]DumpEntry, error) {
	// The sink is dumped for what it has of the selection: pg_dump fails
	// when none of its schema or table patterns match.
	sinkSel, sinkTables, err := existingAtSink(ctx, dst, sel, tables, target)
	if err != nil {
		return nil, err
	}
	// Likewise for --extension: only those the sink has installed.
	sinkExts, err := installedExtensions(ctx, dst, exts)
	if err != nil {
		return nil, err
	}
	schemaArgs, tableArgs := dumpArgs(sinkSel, sinkTables, target)
	schemaArgs, tableArgs = withExtensions(schemaArgs, tableArgs, sinkExts)
	return dumpSelection(ctx, dump, dstDSN, "sink", schemaArgs, tableArgs)
}

// dumpStage is the part of the dump a plan takes: the entries that come
// before the tables (stagePreTables) or all the rest (stagePostData).
type dumpStage int

const (
	stagePostData dumpStage = iota
	stagePreTables
)

// planDump plans the dump entries of one stage (see PlanPostData).
func planDump(ctx context.Context, src, dst *pgx.Conn, srcDSN, dstDSN string, sel []Selection, tables []*Table, target TargetName, stage dumpStage, mapped []MappedTable) (*SchemaPlan, error) {
	d, err := prepareSourceDump(ctx, src, dst, sel, tables)
	if err != nil {
		return nil, err
	}
	pre, err := d.run(ctx, srcDSN, "")
	if err != nil {
		return nil, err
	}
	return planFromSource(ctx, src, dst, pre, nil, dstDSN, sel, tables, target, stage, mapped)
}

// planFromSource is planDump once the source is dumped.
//
// sinkEntries, when not nil, is the sink's dump taken beforehand (DumpSink);
// else the sink is dumped here.
func planFromSource(ctx context.Context, src, dst *pgx.Conn, pre *sourceSchema, sinkEntries []DumpEntry, dstDSN string, sel []Selection, tables []*Table, target TargetName, stage dumpStage, mapped []MappedTable) (*SchemaPlan, error) {
	if target == nil {
		target = SameName
	}
	srcEntries := pre.entries
	if stage == stagePreTables {
		srcEntries = preTableEntries(srcEntries)
	}
	dstEntries := sinkEntries
	if dstEntries == nil {
		var err error
		if dstEntries, err = dumpSink(ctx, dst, pre.dump, pre.exts, dstDSN, sel, tables, target); err != nil {
			return nil, err
		}
	}
	keys, err := newEntryKeys(ctx, src, mapped)
	if err != nil {
		return nil, err
	}
	have := map[string]DumpEntry{}
	for _, e := range dstEntries {
		have[e.key()] = e
	}
	// Owners are given as at the source where the role exists at the
	// sink and the sink user may do so; otherwise the object keeps the
	// sink's owner (for a new one, the sink user).
	roles := map[string]bool{}
	var sinkUser string
	if err := dst.QueryRow(ctx, "SELECT current_user::text").Scan(&sinkUser); err != nil {
		return nil, fmt.Errorf("sink: read current_user: %w", err)
	}
	rows, err := dst.Query(ctx, "SELECT rolname::text FROM pg_catalog.pg_roles")
	if err != nil {
		return nil, fmt.Errorf("sink: list roles: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("sink: list roles: %w", err)
	}
	for _, n := range names {
		roles[n] = true
	}
	plan := &SchemaPlan{Prelude: []string{"SET LOCAL check_function_bodies = false", "SET LOCAL client_min_messages = warning"}, Mapped: mapped}
	var matviews []DumpEntry
	var owners []Statement
	for _, e := range srcEntries {
		if at, ok := have[keys.sinkKey(e)]; ok && e.Type == "ACL" {
			// Privileges are compared by their statements.
			if stripSets(at.SQL) != stripSets(e.SQL) {
				plan.Statements = append(plan.Statements, Statement{Object: "privileges on " + e.Name, SQL: e.SQL, Optional: true})
			}
			continue
		} else if ok {
			// It exists: only its owner may need setting.
			if e.OwnerSQL != "" && at.Owner != e.Owner && roles[e.Owner] && !ownerSkip[e.Type] {
				owners = append(owners, Statement{Object: "owner of " + e.object(), SQL: e.OwnerSQL, Optional: true})
			}
			continue
		}
		if postDataSkip[e.Type] || e.SQL == "" {
			continue
		}
		if e.Type == "SCHEMA" && movedSchema(mapped, e.Name) {
			// Applying the plan creates it for the renamed tables' stay
			// and drops it again when nothing else went there.
			continue
		}
		if e.Type == "ACL" {
			plan.Statements = append(plan.Statements, Statement{Object: "privileges on " + e.Name, SQL: e.SQL, Optional: true})
			continue
		}
		// The owner is set apart, where it can be: the role may be
		// missing at the sink, or the sink user may not be allowed to
		// give objects to it.
		sql := strings.TrimSpace(strings.TrimSuffix(e.SQL, e.OwnerSQL))
		plan.Statements = append(plan.Statements, Statement{Object: e.object(), SQL: sql, Optional: e.outside})
		if e.OwnerSQL != "" && e.Owner != sinkUser && roles[e.Owner] {
			plan.Statements = append(plan.Statements, Statement{Object: "owner of " + e.object(), SQL: e.OwnerSQL, Optional: true})
		}
		if e.Type == "MATERIALIZED VIEW" {
			matviews = append(matviews, e)
		}
	}
	plan.Statements = append(owners, plan.Statements...)
	if stage == stagePreTables {
		return plan, nil
	}
	// CHECK constraints are part of pg_dump's CREATE TABLE, which the
	// pre-data part does not use: add the ones the sink tables lack.
	checks, err := missingChecks(ctx, src, dst, tables, target, len(mapped) > 0)
	if err != nil {
		return nil, err
	}
	plan.Statements = append(plan.Statements, checks...)
	for _, mv := range matviews {
		var populated bool
		err := src.QueryRow(ctx, `SELECT c.relispopulated FROM pg_catalog.pg_class c
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'm'`,
			mv.Schema, mv.Name).Scan(&populated)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // dropped since the source was dumped: the stream drops it too
		}
		if err != nil {
			return nil, fmt.Errorf("source: read whether materialized view %s is populated: %w", dispName(mv.Schema, mv.Name), err)
		}
		if populated {
			plan.Statements = append(plan.Statements, Statement{
				Object: "materialized view data " + dispName(mv.Schema, mv.Name),
				SQL:    "REFRESH MATERIALIZED VIEW " + qname(mv.Schema, mv.Name),
			})
		}
	}
	return plan, nil
}

// PostDataCounts counts the statements of a post-data plan: objects
// created, materialized views refreshed, owners set on existing objects.
func (p *SchemaPlan) PostDataCounts() (created, refreshed, owners int) {
	if p == nil {
		return 0, 0, 0
	}
	for _, s := range p.Statements {
		switch {
		case strings.HasPrefix(s.Object, "materialized view data "):
			refreshed++
		case strings.HasPrefix(s.Object, "owner of "), strings.HasPrefix(s.Object, "privileges on "):
			owners++
		default:
			created++
		}
	}
	for _, sk := range p.Skipped {
		if !strings.HasPrefix(sk, "privileges on ") && !strings.HasPrefix(sk, "owner of ") {
			created--
		}
	}
	created -= p.Existing
	return created, refreshed, owners
}

// missingChecks returns ALTER TABLE … ADD CONSTRAINT … CHECK for the
// tables' own (not inherited) check constraints that the sink tables lack
// by name. A partitioned table's constraint is added with its partitions
// (as at the source, where they inherit it); a source constraint NOT VALID
// stays NOT VALID, as pg_dump would restore it.
//
// With asSource the statements name the source table (the plan runs with
// the sink's tables under their source names).
func missingChecks(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName, asSource bool) ([]Statement, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	oids, byOID := oidIndex(tables)
	rows, err := src.Query(ctx, `SELECT co.conrelid, co.conname::text, pg_catalog.pg_get_constraintdef(co.oid), c.relkind = 'p'
		FROM pg_catalog.pg_constraint co JOIN pg_catalog.pg_class c ON c.oid = co.conrelid
		WHERE co.contype = 'c' AND co.conislocal AND co.conrelid = ANY($1)
		ORDER BY co.conrelid, co.conname`, oids)
	if err != nil {
		return nil, fmt.Errorf("source: read check constraints: %w", err)
	}
	type check struct {
		rel         uint32
		name, def   string
		partitioned bool
	}
	checks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (check, error) {
		var c check
		err := r.Scan(&c.rel, &c.name, &c.def, &c.partitioned)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("source: read check constraints: %w", err)
	}
	var out []Statement
	for _, c := range checks {
		tn := target(byOID[c.rel].Name)
		var exists bool
		if err := dst.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint co
			JOIN pg_catalog.pg_class c ON c.oid = co.conrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND co.conname = $3)`, tn.Schema, tn.Name, c.name).Scan(&exists); err != nil {
			return nil, fmt.Errorf("sink: look up constraint %s of %s: %w", dispIdent(c.name), tn, err)
		}
		if exists {
			continue
		}
		only := "ONLY "
		if c.partitioned {
			only = ""
		}
		on := tn
		if asSource {
			on = byOID[c.rel].Name
		}
		out = append(out, Statement{
			Object: "check constraint " + dispIdent(c.name) + " on " + tn.String(),
			SQL:    "ALTER TABLE " + only + on.Quoted() + " ADD CONSTRAINT " + record.QuoteIdent(c.name) + " " + c.def,
		})
	}
	return out, nil
}
