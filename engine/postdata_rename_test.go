package engine_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/transforms/rename"
)

// TestPostDataRenamed: with a schema renamed (app → app2), a table renamed
// (app.parent → app2.parents) and a column renamed (child.v → val), the
// post-data objects land on the sink's names: the primary and unique
// keys, a CHECK, a foreign key between two renamed tables, an expression
// index with a WHERE clause over the renamed column, a trigger with a
// WHEN over it, a view reading it, a column comment. An index on a
// dropped column cannot be built: it is left out with a warning naming it.
func TestPostDataRenamed(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE SCHEMA app;
		CREATE TABLE app.parent (id int PRIMARY KEY, code text UNIQUE, CHECK (id > 0));
		CREATE TABLE app.child (id int PRIMARY KEY, parent_id int REFERENCES app.parent, v text CHECK (v <> 'bad'));
		CREATE TABLE app.other (id int PRIMARY KEY, secret text, keep text);
		CREATE INDEX child_lower_v ON app.child (lower(v)) WHERE v <> '';
		CREATE INDEX other_secret ON app.other (secret);
		CREATE INDEX other_keep ON app.other (keep);
		CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
		CREATE TRIGGER child_touch BEFORE UPDATE OF v ON app.child FOR EACH ROW WHEN (NEW.v IS NOT NULL) EXECUTE FUNCTION app.touch();
		CREATE VIEW app.child_view AS SELECT c.id, c.v, p.code FROM app.child c JOIN app.parent p ON p.id = c.parent_id;
		COMMENT ON COLUMN app.child.v IS 'the value';
		INSERT INTO app.parent SELECT g, 'c' || g FROM generate_series(1, 20) g;
		INSERT INTO app.child SELECT g, 1 + g % 20, 'v' || g FROM generate_series(1, 100) g;
		INSERT INTO app.other SELECT g, 's', 'k' FROM generate_series(1, 10) g;`)
	cfg := e.config(schemaSel("app")...)
	var logs bytes.Buffer
	cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Rename = rename.Config{
		Schemas: []rename.SchemaRename{{From: "app", To: "app2"}},
		Tables:  []rename.TableRename{{From: record.TableName{Schema: "app", Name: "parent"}, To: record.TableName{Schema: "app2", Name: "parents"}}},
		Columns: []rename.ColumnRename{
			{Table: record.TableName{Schema: "app", Name: "child"}, From: "v", To: "val"},
			{Table: record.TableName{Schema: "app", Name: "other"}, From: "secret", Drop: true},
		},
	}
	sum := runOK(t, cfg)
	if sum.PostDataCreated == 0 {
		t.Fatalf("no post-data objects created; log:\n%s", logs.String())
	}
	for _, c := range []struct{ what, sql, want string }{
		{"expression index", "SELECT indexdef FROM pg_indexes WHERE indexname = 'child_lower_v'",
			"CREATE INDEX child_lower_v ON app2.child USING btree (lower(val)) WHERE (val <> ''::text)"},
		{"unique key", "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'parent_code_key' AND conrelid = 'app2.parents'::regclass", "UNIQUE (code)"},
		{"check on the renamed column", "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'app2.child'::regclass AND contype = 'c'", "CHECK ((val <> 'bad'::text))"},
		{"foreign key", "SELECT pg_get_constraintdef(oid) || ' ' || convalidated FROM pg_constraint WHERE conname = 'child_parent_id_fkey'",
			"FOREIGN KEY (parent_id) REFERENCES app2.parents(id) true"},
		{"trigger", "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'child_touch'",
			"CREATE TRIGGER child_touch BEFORE UPDATE OF val ON app2.child FOR EACH ROW WHEN ((new.val IS NOT NULL)) EXECUTE FUNCTION app.touch()"},
		{"view", "SELECT pg_get_viewdef('app.child_view'::regclass)", " SELECT c.id,\n    c.val AS v,\n    p.code\n   FROM (app2.child c\n     JOIN app2.parents p ON ((p.id = c.parent_id)));"},
		{"comment", "SELECT col_description('app2.child'::regclass, (SELECT attnum FROM pg_attribute WHERE attrelid = 'app2.child'::regclass AND attname = 'val'))", "the value"},
		{"index on a kept column", "SELECT indexdef FROM pg_indexes WHERE indexname = 'other_keep'", "CREATE INDEX other_keep ON app2.other USING btree (keep)"},
		{"no table left under a source name", "SELECT (count(*) = 0)::text FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relkind IN ('r','p')", "true"},
	} {
		if got := queryText(t, e.dstDSN, c.sql); got != c.want {
			t.Errorf("sink: %s: got %q, want %q", c.what, got, c.want)
		}
	}
	if n := queryInt(t, e.dstDSN, "SELECT count(*) FROM pg_indexes WHERE indexname = 'other_secret'"); n != 0 {
		t.Errorf("sink: the index on the dropped column exists")
	}
	if !strings.Contains(logs.String(), "other_secret") {
		t.Errorf("no warning names the index on the dropped column; log:\n%s", logs.String())
	}
	// A rerun creates nothing twice.
	again := runOK(t, cfg)
	fresh := cfg
	fresh.StateDir = t.TempDir()
	logs.Reset()
	fresh.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	third := runOK(t, fresh)
	if again.PostDataCreated != 0 || third.PostDataCreated != 0 {
		t.Errorf("reruns created %d and %d post-data objects, want none; log of the second:\n%s", again.PostDataCreated, third.PostDataCreated, logs.String())
	}
}

// TestPostDataRenamedSchemaOnly: a schema of tables only, renamed: the
// keys and indexes arrive under the new schema and no empty source schema
// is left at the sink.
func TestPostDataRenamedSchemaOnly(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE SCHEMA plain;
		CREATE TABLE plain.a (id int PRIMARY KEY, v text UNIQUE);
		CREATE TABLE plain.b (id int PRIMARY KEY, a_id int REFERENCES plain.a);
		CREATE INDEX b_a ON plain.b (a_id);
		INSERT INTO plain.a SELECT g, 'v' || g FROM generate_series(1, 10) g;
		INSERT INTO plain.b SELECT g, g FROM generate_series(1, 10) g;`)
	cfg := e.config(schemaSel("plain")...)
	cfg.Rename = rename.Config{Schemas: []rename.SchemaRename{{From: "plain", To: "plain2"}}}
	runOK(t, cfg)
	for _, c := range []struct{ what, sql, want string }{
		{"index", "SELECT indexdef FROM pg_indexes WHERE indexname = 'b_a'", "CREATE INDEX b_a ON plain2.b USING btree (a_id)"},
		{"foreign key", "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'b_a_id_fkey'", "FOREIGN KEY (a_id) REFERENCES plain2.a(id)"},
		{"unique key", "SELECT count(*)::text FROM pg_constraint WHERE conname = 'a_v_key' AND conrelid = 'plain2.a'::regclass", "1"},
		{"no schema plain", "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'plain'", "0"},
		{"rows", "SELECT count(*)::text FROM plain2.b JOIN plain2.a ON a.id = b.a_id", "10"},
	} {
		if got := queryText(t, e.dstDSN, c.sql); got != c.want {
			t.Errorf("sink: %s: got %q, want %q", c.what, got, c.want)
		}
	}
}
