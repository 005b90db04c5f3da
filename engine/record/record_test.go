package record

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestLSN(t *testing.T) {
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		l, err := ParseLSN(s)
		if err != nil {
			t.Fatal(err)
		}
		if l.String() != s {
			t.Errorf("ParseLSN(%q).String() = %q", s, l.String())
		}
	}
	if _, err := ParseLSN("nope"); err == nil {
		t.Error("ParseLSN accepted garbage")
	}
}

// unquote undoes QuoteIdent the way PostgreSQL's scanner reads a quoted
// identifier: strip the outer quotes, "" is one ".
func unquote(q string) (string, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return "", false
	}
	body := q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		if body[i] == '"' {
			if i+1 >= len(body) || body[i+1] != '"' {
				return "", false // a lone quote would end the identifier
			}
			i++
		}
		b.WriteByte(body[i])
	}
	return b.String(), true
}

// FuzzQuoteIdent: every string quotes to one identifier token that reads
// back as itself, so no name can break out of its quotes.
func FuzzQuoteIdent(f *testing.F) {
	for _, s := range []string{"", "a", `x"y`, `""`, "select", "Ünï 表", "a.b", `"; DROP TABLE t; --`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return // not a name PostgreSQL can hold
		}
		q := QuoteIdent(s)
		got, ok := unquote(q)
		if !ok || got != s {
			t.Fatalf("QuoteIdent(%q) = %s reads back as %q (ok %v)", s, q, got, ok)
		}
		tn := TableName{Schema: s, Name: s}
		if tn.Quoted() != q+"."+q {
			t.Fatalf("Quoted() = %s", tn.Quoted())
		}
	})
}
