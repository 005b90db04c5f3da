package verify

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/engine/record"
)

func TestQueriesQuoteNamesAndBindValues(t *testing.T) {
	s := side{
		name: record.TableName{Schema: `a"b`, Name: "t; DROP"},
		cols: []string{"Ke y", `c"q`},
		key:  []string{"Ke y", "n"},
	}
	sql, params, err := s.rangeSum(scope{lo: []string{"x'); --", "1"}, hi: []string{"z", "2"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `SELECT count(*), COALESCE(sum(('x' || substr(md5(ROW("Ke y", "c""q")::text), 1, 16))::bit(64)::bigint), 0)::text FROM ONLY "a""b"."t; DROP" WHERE ("Ke y", "n") >= ($1, $2) AND ("Ke y", "n") < ($3, $4)`
	if sql != want {
		t.Errorf("rangeSum:\n got %s\nwant %s", sql, want)
	}
	if len(params) != 4 || string(params[0]) != "x'); --" || string(params[3]) != "2" {
		t.Errorf("params: %q", params)
	}
	if _, _, err := s.rangeSum(scope{lo: []string{"only one"}}); err == nil {
		t.Error("a bound with too few values: no error")
	}

	sql, _, err = s.keyHashes(scope{buckets: 8, ids: []int{1, 5}})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`= ANY ($1::int[])`, `md5(ROW("Ke y", "n")::text)`, `ORDER BY "Ke y"::text COLLATE pg_catalog."C", "n"::text COLLATE pg_catalog."C"`} {
		if !strings.Contains(sql, w) {
			t.Errorf("keyHashes lacks %q:\n%s", w, sql)
		}
	}

	s.where = "n > 0"
	if sql := s.bucketSums(4); !strings.Contains(sql, `WHERE (n > 0)`) || !strings.Contains(sql, "% 4)") {
		t.Errorf("bucketSums: %s", sql)
	}
	if got := intArray([]int{3, 1}); got != "{3,1}" {
		t.Errorf("intArray: %s", got)
	}
}

func TestDiffFormat(t *testing.T) {
	for _, c := range []struct {
		d    Diff
		keys []string
		want string
	}{
		{Diff{Kind: Missing, Key: []string{"42"}}, []string{"id"}, "missing at sink: id=42"},
		{Diff{Kind: Extra, Key: []string{"1", "a b"}}, []string{"id", "Name"}, `extra at sink: id=1, "Name"="a b"`},
		{Diff{Kind: Different, Key: []string{""}, Columns: []string{"v", "W"}}, []string{"k"}, `different: k="" (columns: v, "W")`},
		{Diff{Kind: Missing, Row: "(1,x)", Copies: 2}, nil, "missing at sink: (1,x) (×2)"},
		{Diff{Kind: Extra, Row: "(1,x)", Copies: 1}, nil, "extra at sink: (1,x)"},
	} {
		if got := c.d.Format(c.keys); got != c.want {
			t.Errorf("Format(%+v) = %q, want %q", c.d, got, c.want)
		}
	}
}
