package postgres

// Primary keys built after the data. Copying into a table without its
// primary key and building the key afterwards is much faster than keeping
// the index current row by row (pg_restore's order); and keys of different
// tables build at the same time on separate connections, so every core is
// busy while the biggest table's key sorts.

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// keyBuildMemory is the maintenance_work_mem each key build gets (when the
// sink's setting is lower): the sort of a large key then stays in memory.
const keyBuildMemory = "256MB"

// PlanMissingDeferKeys is PlanMissingMapped, but the primary keys of the
// plain tables it creates (not partitioned tables, not partitions) are left
// out of their CREATE TABLE, for BuildKeys to add once the data is copied.
func PlanMissingDeferKeys(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName, columns ColumnName) (*SchemaPlan, error) {
	return planMissing(ctx, src, dst, tables, target, columns, true)
}

// KeyBuild is one primary key to add at the sink.
type KeyBuild struct {
	Table record.TableName // at the sink
	Name  string           // the constraint's name, as at the source
	SQL   string
	Bytes int64 // the sink table's size, to build the biggest first
	// Serial builds the key without parallel maintenance workers: set
	// while the copy still keeps the sink busy, where helper processes
	// would only compete with it for the same cores.
	Serial bool
}

// MissingKeys lists the primary keys that the selected plain tables have at
// the source and their sink tables lack (sink tables that do not exist are
// left out). columns maps column names as the pipeline renames them (nil:
// as they are).
func MissingKeys(ctx context.Context, src, dst *pgx.Conn, tables []*Table, target TargetName, columns ColumnName) ([]KeyBuild, error) {
	if target == nil {
		target = SameName
	}
	byOID := map[uint32]*Table{}
	var oids []uint32
	for _, t := range tables {
		if t.Partitioned || t.Parent != nil {
			continue
		}
		byOID[t.OID] = t
		oids = append(oids, t.OID)
	}
	if len(oids) == 0 {
		return nil, nil
	}
	defs, err := readKeyDefs(ctx, src, oids)
	if err != nil {
		return nil, err
	}
	type srcKey struct {
		t *Table
		keyDef
	}
	var keys []srcKey
	for _, rel := range oids {
		if k, ok := defs[rel]; ok {
			keys = append(keys, srcKey{t: byOID[rel], keyDef: k})
		}
	}
	// One query for all the sink tables: whether each exists (a plain
	// table), has its primary key, and its size.
	schemas, names := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		tn := target(k.t.Name)
		schemas[i], names[i] = tn.Schema, tn.Name
	}
	rows, err := dst.Query(ctx, `SELECT t.i::int, EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = c.oid AND contype = 'p'),
			pg_catalog.pg_relation_size(c.oid)
		FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(nsp, rel, i)
		JOIN pg_catalog.pg_namespace n ON n.nspname = t.nsp
		JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = t.rel AND c.relkind = 'r'
		ORDER BY t.i`, schemas, names)
	if err != nil {
		return nil, fmt.Errorf("sink: read which of the %d tables have their primary key: %w", len(keys), err)
	}
	type sinkTable struct {
		i      int
		hasKey bool
		size   int64
	}
	found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sinkTable, error) {
		var st sinkTable
		err := row.Scan(&st.i, &st.hasKey, &st.size)
		return st, err
	})
	if err != nil {
		return nil, fmt.Errorf("sink: read which of the %d tables have their primary key: %w", len(keys), err)
	}
	var out []KeyBuild
	for _, st := range found {
		if st.hasKey {
			continue
		}
		k := keys[st.i-1]
		tn := target(k.t.Name)
		def, err := k.sinkDef(k.t.Name, columns)
		if err != nil {
			return nil, err
		}
		out = append(out, KeyBuild{Table: tn, Name: k.name, Bytes: st.size,
			SQL: "ALTER TABLE ONLY " + tn.Quoted() + " ADD CONSTRAINT " + record.QuoteIdent(k.name) + " " + def})
	}
	return out, nil
}

// BuildKeys adds the keys at the sink (dsn) on up to jobs connections at
// once, biggest table first, each in its own transaction, with
// maintenance_work_mem raised to keyBuildMemory where it is lower. done,
// when not nil, is called after each key. The first error stops handing out
// builds and is returned once the running ones end. Each connection holds
// the pipeline's fence (see FenceSink) like a copy writer: a build left
// running by a killed run is waited for by the next run, which then finds
// the key in place instead of failing to add it twice.
func BuildKeys(ctx context.Context, dsn, pipeline string, builds []KeyBuild, jobs int, done func(KeyBuild)) error {
	if len(builds) == 0 {
		return nil
	}
	builds = append([]KeyBuild(nil), builds...)
	sort.SliceStable(builds, func(i, j int) bool { return builds[i].Bytes > builds[j].Bytes })
	jobs = max(1, min(jobs, len(builds)))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan KeyBuild)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		cancel(err)
	}
	for i := 0; i < jobs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := Connect(ctx, dsn, "sink")
			if err != nil {
				fail(err)
				for range queue {
				}
				return
			}
			defer conn.Close(context.WithoutCancel(ctx))
			if err := holdFence(ctx, conn, pipeline); err != nil {
				fail(err)
				for range queue {
				}
				return
			}
			if _, err := conn.Exec(ctx, `SELECT pg_catalog.set_config('maintenance_work_mem', $1, false)
				WHERE pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem')) < pg_catalog.pg_size_bytes($1)`, keyBuildMemory); err != nil {
				fail(fmt.Errorf("sink: set maintenance_work_mem for building keys: %w", err))
				for range queue {
				}
				return
			}
			for b := range queue {
				if ctx.Err() != nil {
					continue
				}
				sql := b.SQL
				if b.Serial {
					// One simple-protocol string runs as one implicit
					// transaction, which SET LOCAL is confined to.
					sql = "SET LOCAL max_parallel_maintenance_workers = 0; " + sql
				}
				if _, err := conn.Exec(ctx, sql); err != nil {
					fail(fmt.Errorf("sink: add primary key %s to %s after the copy (%s): %w; the rows are copied: fix the cause and run the pipeline again to build the key", record.QuoteIdent(b.Name), b.Table, b.SQL, describeRowError(err)))
					continue
				}
				if done != nil {
					done(b)
				}
			}
		}()
	}
	for _, b := range builds {
		select {
		case queue <- b:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(queue)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// keyDef is a source table's primary key: its name and definition, and
// the definition's parts, to write it again under renamed columns.
type keyDef struct {
	keyParts
	inherited bool // a partition's key, created by its parent's
}

// readKeyDefs reads the primary keys of the tables oids, by table: their
// parts as constraintKeySQL gives them, as for a captured constraint.
func readKeyDefs(ctx context.Context, src *pgx.Conn, oids []uint32) (map[uint32]keyDef, error) {
	rows, err := src.Query(ctx, `SELECT k.conrelid, k.conname::text, pg_catalog.pg_get_constraintdef(k.oid), k.conparentid <> 0,
			ARRAY(SELECT a.attname::text FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u(n, i)
				JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
			`+constraintKeySQL+`
		FROM pg_catalog.pg_constraint k
		WHERE k.contype = 'p' AND k.conrelid = ANY($1)`, oids)
	if err != nil {
		return nil, fmt.Errorf("source: read primary keys: %w", err)
	}
	defer rows.Close()
	out := map[uint32]keyDef{}
	for rows.Next() {
		var rel uint32
		var name, def string
		var inherited bool
		var cols []string
		var parts ConstraintKey
		if err := rows.Scan(&rel, &name, &def, &inherited, &cols, &parts); err != nil {
			return nil, fmt.Errorf("source: read primary keys: %w", err)
		}
		out[rel] = keyDef{keyParts: parts.keyParts(name, def, false, cols), inherited: inherited}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("source: read primary keys: %w", err)
	}
	return out, nil
}
