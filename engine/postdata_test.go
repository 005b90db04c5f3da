package engine_test

import (
	"testing"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// TestPostDataTables selects single tables: their indexes, check and
// unique constraints, and the foreign key between them are built at the
// sink; a foreign key to a table not selected and a trigger whose function
// is not selected are left out (with a warning) instead of failing the run.
func TestPostDataTables(t *testing.T) {
	e := newEnv(t)
	e.srcExec(`CREATE TABLE public.parent (id int PRIMARY KEY, code text UNIQUE, CHECK (id > 0));
		CREATE TABLE public.other (id int PRIMARY KEY);
		CREATE TABLE public.child (id int PRIMARY KEY, parent_id int REFERENCES public.parent, other_id int REFERENCES public.other, v text);
		CREATE INDEX child_v_idx ON public.child (lower(v));
		CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
		CREATE TRIGGER child_touch BEFORE INSERT ON public.child FOR EACH ROW EXECUTE FUNCTION public.touch();
		COMMENT ON TABLE public.child IS 'kids';
		INSERT INTO public.parent SELECT g, 'c' || g FROM generate_series(1, 100) g;
		INSERT INTO public.other VALUES (1);
		INSERT INTO public.child SELECT g, g, 1, 'V' || g FROM generate_series(1, 100) g;`)
	sel := func(n string) postgres.Selection {
		return postgres.Selection{Table: record.TableName{Schema: "public", Name: n}, Where: "test"}
	}
	cfg := e.config(sel("parent"), sel("child"))
	sum := runOK(t, cfg)
	if sum.PostDataCreated == 0 {
		t.Error("summary: no post-data objects created")
	}
	assertSameData(t, e.srcDSN, e.dstDSN, []string{"public.parent", "public.child"})
	for _, c := range []struct {
		what string
		sql  string
		want int64
	}{
		{"index child_v_idx", "SELECT count(*) FROM pg_indexes WHERE indexname = 'child_v_idx'", 1},
		{"unique parent_code_key", "SELECT count(*) FROM pg_constraint WHERE conname = 'parent_code_key' AND contype = 'u'", 1},
		{"check on parent", "SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.parent'::regclass AND contype = 'c'", 1},
		{"foreign key child → parent", "SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent_id_fkey' AND convalidated", 1},
		{"foreign key child → other (not selected)", "SELECT count(*) FROM pg_constraint WHERE conname = 'child_other_id_fkey'", 0},
		{"trigger child_touch (function not selected)", "SELECT count(*) FROM pg_trigger WHERE tgname = 'child_touch'", 0},
		{"comment on child", "SELECT count(*) FROM pg_description WHERE objoid = 'public.child'::regclass AND description = 'kids'", 1},
	} {
		if got := queryInt(t, e.dstDSN, c.sql); got != c.want {
			t.Errorf("sink: %s: %d, want %d", c.what, got, c.want)
		}
	}
	again := runOK(t, cfg)
	if again.PostDataCreated != 0 {
		t.Errorf("second run created %d post-data objects", again.PostDataCreated)
	}
}
