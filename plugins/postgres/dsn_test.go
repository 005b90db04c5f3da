package postgres

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestSplitPassword(t *testing.T) {
	for _, c := range []struct{ dsn, pw string }{
		{"postgres://u:s3cr%40t@h:5/db?sslmode=disable", "s3cr@t"},
		{"postgresql://u@h/db?password=qp&sslmode=require", "qp"},
		{"postgres://u@h/db", ""},
		{"host=h user=u password=plain dbname=d", "plain"},
		{"host=h password='it\\'s a pw' dbname=d", "it's a pw"},
		{"host=h password = spaced dbname=d", "spaced"},
		{"host=h dbname=d", ""},
	} {
		rest, pw := SplitPassword(c.dsn)
		if pw != c.pw {
			t.Errorf("SplitPassword(%q) password = %q, want %q", c.dsn, pw, c.pw)
		}
		if c.pw != "" && strings.Contains(rest, c.pw) {
			t.Errorf("SplitPassword(%q) left the password in %q", c.dsn, rest)
		}
		a, err := pgconn.ParseConfig(c.dsn)
		if err != nil {
			t.Fatal(err)
		}
		b, err := pgconn.ParseConfig(rest)
		if err != nil {
			t.Fatalf("SplitPassword(%q) = %q, which does not parse: %v", c.dsn, rest, err)
		}
		if a.Host != b.Host || a.Port != b.Port || a.User != b.User || a.Database != b.Database || (a.TLSConfig == nil) != (b.TLSConfig == nil) {
			t.Errorf("SplitPassword(%q) = %q changed more than the password", c.dsn, rest)
		}
	}
}
