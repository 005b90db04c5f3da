package engine_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine"
)

// TestCutoverPagila streams pagila, writes at the source (new customers,
// rentals, payments through their sequence-backed defaults), then cuts over
// with no run live: the cutover streams until caught up itself, sets the
// sequences, and its report shows equal row counts. Afterwards a row
// inserted into every sink table through its sequence-backed default gets
// a fresh id: no key collision anywhere.
func TestCutoverPagila(t *testing.T) {
	dir := filepath.Join(repoRoot(t), "..", "shared", "testdata", "pagila")
	schemaFile, dataFile := filepath.Join(dir, "pagila-schema.sql"), filepath.Join(dir, "pagila-data.sql")
	for _, f := range []string{schemaFile, dataFile} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("pagila test data not available (%v)", err)
		}
	}
	s := newStreamEnv(t, "cutover_pagila")
	for _, f := range []string{schemaFile, dataFile} {
		if err := s.src.LoadSQLFile(t.Context(), s.srcDB, f); err != nil {
			t.Fatal(err)
		}
	}
	s.cfg.Objects = schemaSel("public")
	s.run(s.cfg)
	// The application keeps writing after the copy: sequences move on.
	s.srcExec(`INSERT INTO public.customer (store_id, first_name, last_name, address_id) VALUES (1, 'NEW', 'ONE', 1), (1, 'NEW', 'TWO', 2);
		INSERT INTO public.rental (rental_date, inventory_id, customer_id, staff_id) VALUES ('2030-01-01', 1, 1, 1);
		INSERT INTO public.payment (customer_id, staff_id, rental_id, amount, payment_date) VALUES (1, 1, 1, 9.99, '2022-03-15 10:00:00+00');
		INSERT INTO public.actor (first_name, last_name) VALUES ('NEW', 'ACTOR');`)

	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rep, err := engine.Cutover(ctx, s.cfg, engine.CutoverOptions{})
	if err != nil {
		t.Fatalf("cutover: %v", err)
	}
	t.Logf("cutover: lag before %d B, caught up in %.1fs, streamed here %v, %d tables, %d sequences", rep.LagBytesBefore, rep.CaughtUpSeconds, rep.StreamedHere, len(rep.Tables), len(rep.Sequences))
	if !rep.StreamedHere || rep.LagBytesBefore == 0 || len(rep.Mismatched) != 0 || len(rep.Sequences) < 10 || rep.SourceLocked {
		t.Errorf("report: want streamed here, some lag before, no mismatch, pagila's sequences, source not locked; got %+v", rep)
	}
	if len(rep.Next) == 0 || !strings.Contains(strings.Join(rep.Next, "\n"), "sluice drop") {
		t.Errorf("report: next steps %q do not mention sluice drop", rep.Next)
	}
	assertSameData(t, s.srcDSN, s.dstDSN, tablesOf(t, s.srcDSN, "public"))
	// Streamed, the schema is pagila's still (the materialized view,
	// functions, triggers, ... and every sequence's options).
	assertSameDumpOf(t, s.src, s.srcDB, s.dst, s.dstDB)

	// Every sink table with a sequence-backed default takes a new row
	// through it (a copy of an existing row but for that column).
	conn := oracleConn(t, s.dstDSN)
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT c.oid::regclass::text, a.attname::text,
			(SELECT string_agg(quote_ident(o.attname), ', ' ORDER BY o.attnum) FROM pg_attribute o
			 WHERE o.attrelid = c.oid AND o.attnum > 0 AND NOT o.attisdropped AND o.attname <> a.attname AND o.attgenerated = '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
		JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
		WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%'
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type target struct{ table, col, others string }
	targets, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (target, error) {
		var x target
		err := r.Scan(&x.table, &x.col, &x.others)
		return x, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) < 10 {
		t.Fatalf("pagila: only %d tables with a sequence-backed default: %v", len(targets), targets)
	}
	inserted := 0
	for _, x := range targets {
		// session_replication_role = replica: foreign keys and triggers do
		// not get in the way; only the keys matter here. A copied row
		// clashing on another unique key (not the sequence's column) gets
		// that key's columns shifted and is tried again.
		exprs := map[string]string{}
		for attempt := 0; ; attempt++ {
			list := strings.Split(x.others, ", ")
			for i, col := range list {
				if e, ok := exprs[col]; ok {
					list[i] = e
				}
			}
			sel := strings.Join(list, ", ")
			sql := "SET session_replication_role = replica; INSERT INTO " + x.table + " (" + x.others + ") SELECT " + sel + " FROM " + x.table + " LIMIT 1"
			_, err := conn.Exec(ctx, sql)
			var pgErr *pgconn.PgError
			if err == nil {
				inserted++
				break
			}
			if !errors.As(err, &pgErr) || pgErr.Code != "23505" || strings.Contains(pgErr.Detail, "("+x.col) || attempt == 3 {
				t.Errorf("sink: insert into %s through the default of %s: %v", x.table, x.col, err)
				break
			}
			rows, err := conn.Query(ctx, `SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod)
				FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
				WHERE c.conname = $1 UNION
				SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod)
				FROM pg_class i JOIN pg_index x ON x.indexrelid = i.oid JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey)
				WHERE i.relname = $1`, pgErr.ConstraintName)
			if err != nil {
				t.Fatal(err)
			}
			cols, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
				var c [2]string
				err := r.Scan(&c[0], &c[1])
				return c, err
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cols {
				switch {
				case strings.Contains(c[1], "int") || strings.Contains(c[1], "numeric"):
					exprs[c[0]] = c[0] + " + 100000"
				case strings.Contains(c[1], "timestamp") || strings.Contains(c[1], "date"):
					exprs[c[0]] = c[0] + " + interval '100 years'"
				default:
					exprs[c[0]] = c[0] + " || '*'"
				}
			}
			t.Logf("%s: the copied row clashed on %s (not %s): shifting %v", x.table, pgErr.ConstraintName, x.col, cols)
		}
	}
	if inserted != len(targets) {
		t.Errorf("only %d of %d tables took a new row", inserted, len(targets))
	}
	t.Logf("inserted through the sequence defaults into %d of %d sink tables", inserted, len(targets))
}

// TestSequenceSyncWhileStreaming: with SequenceSync set, the sink's
// sequences follow the source's while streaming, without a cutover.
func TestSequenceSyncWhileStreaming(t *testing.T) {
	s := newStreamEnv(t, "seqsync")
	s.srcExec(`CREATE SCHEMA app;
		CREATE TABLE app.t (id serial PRIMARY KEY, v text);
		CREATE SEQUENCE app.standalone;
		INSERT INTO app.t (v) SELECT 'x' FROM generate_series(1, 10) g;`)
	cfg := s.cfg
	cfg.UntilCaughtUp = false
	cfg.SequenceSync = 200 * time.Millisecond
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { _, err := engine.Run(ctx, cfg); done <- err }()
	defer func() {
		cancel()
		<-done
	}()
	// Sequence values do not travel in the WAL stream: only the sync
	// brings them.
	s.srcExec(`SELECT setval('app.t_id_seq', 5000); SELECT setval('app.standalone', 777)`)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		seq := "SELECT COALESCE((SELECT last_value FROM pg_sequences WHERE schemaname = 'app' AND sequencename = $1), -1)"
		a := queryInt(t, s.dstDSN, seq, "t_id_seq")
		b := queryInt(t, s.dstDSN, seq, "standalone")
		if a == 5000 && b == 777 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sink sequences are at %d and %d after 2 minutes of streaming, want 5000 and 777", a, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
