package postgres

import "testing"

// TestIndexInTablespace: the TABLESPACE clause goes where CREATE INDEX
// takes it, before the predicate, also when the predicate's text appears
// earlier in the definition; a predicate the definition does not end with
// leaves the definition as it is (not placed).
func TestIndexInTablespace(t *testing.T) {
	for _, c := range []struct {
		ix     IndexState
		def    string
		want   string
		placed bool
	}{
		{IndexState{}, `CREATE INDEX i ON app.t USING btree (v)`, `CREATE INDEX i ON app.t USING btree (v)`, true},
		{IndexState{Tablespace: "fast"}, `CREATE INDEX i ON app.t USING btree (v)`, `CREATE INDEX i ON app.t USING btree (v) TABLESPACE fast`, true},
		{IndexState{Tablespace: `"Slow ts"`}, `CREATE UNIQUE INDEX i ON app.t USING btree (v) INCLUDE (w) WITH (fillfactor='70')`,
			`CREATE UNIQUE INDEX i ON app.t USING btree (v) INCLUDE (w) WITH (fillfactor='70') TABLESPACE "Slow ts"`, true},
		{IndexState{Tablespace: "fast", Pred: "(v <> ' WHERE (v <> ''x''::text)'::text)"},
			`CREATE INDEX i ON app.t USING btree (v) WHERE (v <> ' WHERE (v <> ''x''::text)'::text)`,
			`CREATE INDEX i ON app.t USING btree (v) TABLESPACE fast WHERE (v <> ' WHERE (v <> ''x''::text)'::text)`, true},
		{IndexState{Tablespace: "fast", Pred: "(id > 5)"}, `CREATE INDEX i ON app.t USING btree (v) WHERE (id > 6)`,
			`CREATE INDEX i ON app.t USING btree (v) WHERE (id > 6)`, false},
	} {
		got, placed := c.ix.inTablespace(c.def)
		if got != c.want || placed != c.placed {
			t.Errorf("inTablespace(%q) with %+v:\n got %q, %v\nwant %q, %v", c.def, c.ix, got, placed, c.want, c.placed)
		}
	}
}
