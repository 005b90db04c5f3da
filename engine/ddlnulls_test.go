package engine_test

import (
	"strings"
	"testing"
)

// TestDDLUniqueNullsNotDistinct: unique constraints and indexes created
// with NULLS NOT DISTINCT (PostgreSQL 15) by DDL replicated while
// streaming reach the sink with that property: ADD CONSTRAINT on a table
// the pipeline copied, a table created while streaming with one, and a
// CREATE UNIQUE INDEX. The sink then refuses a second NULL as the source
// does.
func TestDDLUniqueNullsNotDistinct(t *testing.T) {
	s := newStreamEnv(t, "ddl_nnd")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.t (id integer PRIMARY KEY, a integer, b integer);
INSERT INTO app.t VALUES (1, NULL, 1), (2, 2, NULL);
CREATE TABLE app.marker (id integer PRIMARY KEY);`)
	s.run(s.cfg)
	for _, sql := range []string{
		`ALTER TABLE app.t ADD CONSTRAINT t_a_nnd UNIQUE NULLS NOT DISTINCT (a)`,
		`CREATE UNIQUE INDEX t_b_nnd ON app.t (b) NULLS NOT DISTINCT`,
		`CREATE TABLE app.n (id integer PRIMARY KEY, c integer, CONSTRAINT n_c_nnd UNIQUE NULLS NOT DISTINCT (c))`,
		`INSERT INTO app.n VALUES (1, NULL), (2, 2)`,
		`ALTER TABLE app.n ADD CONSTRAINT n_c_plain UNIQUE (id, c)`,
	} {
		s.srcExec(sql)
	}
	s.run(s.cfg)
	got := queryText(t, s.dstDSN, `SELECT string_agg(i.relname || ' ' || x.indnullsnotdistinct, ', ' ORDER BY i.relname)
		FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
		WHERE n.nspname = 'app' AND x.indisunique AND NOT x.indisprimary`)
	if want := "n_c_nnd true, n_c_plain false, t_a_nnd true, t_b_nnd true"; got != want {
		t.Errorf("sink unique indexes and NULLS NOT DISTINCT:\n got %s\nwant %s", got, want)
	}
	for _, c := range []string{"t_a_nnd", "n_c_nnd"} {
		def := queryText(t, s.dstDSN, `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1`, c)
		if !strings.Contains(def, "NULLS NOT DISTINCT") {
			t.Errorf("sink constraint %s: %s, want NULLS NOT DISTINCT", c, def)
		}
	}
	for _, sql := range []string{`INSERT INTO app.t VALUES (10, NULL, 10)`, `INSERT INTO app.t VALUES (11, 11, NULL)`, `INSERT INTO app.n VALUES (10, NULL)`} {
		if err := s.dst.Exec(t.Context(), s.dstDB, sql); err == nil || !strings.Contains(err.Error(), "23505") {
			t.Errorf("sink: %s: %v, want a unique violation (23505): a second NULL", sql, err)
		}
	}
	assertSameData(t, s.srcDSN, s.dstDSN, []string{"app.t", "app.n"})
}
