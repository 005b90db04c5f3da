package postgres

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/engine/record"
)

// TestParamColumn: a failing parameter of a change's statement is named by
// its column: the new row's present columns come first (inserts and
// updates; an update leaves out the key columns that keep their value),
// then the key (updates and deletes).
func TestParamColumn(t *testing.T) {
	rel := &record.Relation{ID: 1, Table: record.TableName{Schema: "s", Name: "t"},
		Columns: []record.Column{{Name: "id", Key: true}, {Name: "big"}, {Name: "note"}}}
	tbl := &ApplyTable{Target: rel.Table, Key: []string{"id"}}
	val := func(s string) record.Value { return record.Value{Data: []byte(s)} }
	rec := &record.Record{Op: record.Update, Rel: rel,
		New: []record.Value{val("1"), {Unchanged: true}, val("x")}, Old: []record.Value{val("1"), {Unchanged: true}, val("y")}}
	for _, c := range []struct {
		stmt byte
		n    int
		want string
	}{
		{'i', 1, "id"}, {'i', 2, "note"}, {'i', 3, ""},
		{'u', 1, "note"}, {'u', 2, "id"}, {'u', 3, ""},
		{'d', 1, "id"}, {'d', 2, ""}, {'u', 0, ""},
	} {
		if got := paramColumn(check{rec: rec, table: tbl, stmt: c.stmt}, c.n); got != c.want {
			t.Errorf("paramColumn(%c, $%d) = %q, want %q", c.stmt, c.n, got, c.want)
		}
	}
	err := describeChangeError(check{rec: rec, table: tbl, stmt: 'u'},
		&pgconn.PgError{Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0xe9`, Where: "unnamed portal parameter $1"})
	if !strings.HasPrefix(err.Error(), `column "note": invalid byte sequence`) || !errors.As(err, new(*pgconn.PgError)) {
		t.Errorf("describeChangeError = %v", err)
	}
}
