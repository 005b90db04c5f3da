package engine_test

import (
	"strings"
	"testing"
)

// TestStreamIdentityIndexBesidePrimaryKey streams a table with a primary
// key whose REPLICA IDENTITY is another unique index. pgoutput sends that
// index's columns as the old key (the primary key's as NULL) and no old
// key at all when only the primary key changes; the sink must find rows
// by the identity index. (By the primary key, a DELETE found no row and
// was dropped with a warning, an UPDATE of the identity columns inserted
// a second row with the same primary key, and an UPDATE of the primary
// key alone was looked up under its new value.)
func TestStreamIdentityIndexBesidePrimaryKey(t *testing.T) {
	s := newStreamEnv(t, "ident")
	s.srcExec(`CREATE SCHEMA app;
CREATE TABLE app.p (id integer PRIMARY KEY, code text NOT NULL, v integer);
CREATE UNIQUE INDEX p_code ON app.p (code);
ALTER TABLE app.p REPLICA IDENTITY USING INDEX p_code;
INSERT INTO app.p SELECT g, 'c' || g, 0 FROM generate_series(1, 20) g;`)
	s.run(s.cfg)
	s.srcExec(`DELETE FROM app.p WHERE id = 3;
UPDATE app.p SET code = 'x' || id WHERE id = 4;
UPDATE app.p SET id = 104 WHERE id = 5;
UPDATE app.p SET id = 106, code = 'y6' WHERE id = 6;
UPDATE app.p SET v = 1 WHERE id BETWEEN 7 AND 15;
INSERT INTO app.p VALUES (30, 'c30', 0);
BEGIN; UPDATE app.p SET v = 2 WHERE id = 30; DELETE FROM app.p WHERE code = 'c30'; COMMIT;`)
	s.run(s.cfg)
	s.assertSame()
	if n := queryInt(t, s.dstDSN, `SELECT count(*) FROM app.p WHERE id = 3`); n != 0 {
		t.Errorf("sink: the deleted row 3 is still there")
	}
	if strings.Contains(s.log.String(), "found no row") {
		t.Error("a change found no row at the sink")
	}
}
