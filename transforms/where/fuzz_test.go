package where

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzCompile: Compile never panics; its errors are positioned *Errors;
// what it accepts renders as SQL that compiles again to the same SQL and
// keeps the same rows. The seeds (the oracle's expressions and
// testdata/fuzz/FuzzCompile) run with plain `go test`.
func FuzzCompile(f *testing.F) {
	for _, e := range oracleExprs {
		f.Add(e)
	}
	for _, e := range oracleErrorExprs {
		f.Add(e)
	}
	cols := oracleColumns()
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := Compile(s, cols)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Compile(%q): %v is not an *Error", s, err)
			}
			if e.Pos < 0 || e.Pos > utf8.RuneCountInString(s)+1 {
				t.Fatalf("Compile(%q): position %d is outside the expression", s, e.Pos)
			}
			return
		}
		sql := flt.SQL()
		again, err := Compile(sql, cols)
		if err != nil {
			t.Fatalf("SQL() of %q does not compile:\n  %s\n  %v", s, sql, err)
		}
		if again.SQL() != sql {
			t.Fatalf("SQL() of %q is not stable:\n  %s\n  %s", s, sql, again.SQL())
		}
		if a, b := engineKeeps(t, flt, oracleRows), engineKeeps(t, again, oracleRows); a != b {
			t.Fatalf("%q keeps %s but its SQL() %s keeps %s", s, a, sql, b)
		}
	})
}
