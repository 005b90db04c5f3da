package engine

import (
	"slices"
	"testing"
)

// TestPlaintextHosts: which hosts a DSN may reach without TLS, other than
// this machine.
func TestPlaintextHosts(t *testing.T) {
	for _, c := range []struct {
		dsn  string
		want []string
	}{
		{"postgres://u@db.example.com/x?sslmode=disable", []string{"db.example.com"}},
		{"postgres://u@db.example.com/x", []string{"db.example.com"}}, // prefer: falls back to plain text
		{"host=10.1.2.3 sslmode=allow user=u", []string{"10.1.2.3"}},
		{"postgres://u@db.example.com/x?sslmode=require", nil},
		{"postgres://u@db.example.com/x?sslmode=verify-full", nil},
		{"postgres://u@127.0.0.1/x?sslmode=disable", nil},
		{"postgres://u@localhost/x?sslmode=disable", nil},
		{"postgres://u@[::1]:5432/x?sslmode=disable", nil},
		{"host=/var/run/postgresql user=u sslmode=disable", nil},
		{"postgres://u@a.example.com,b.example.com/x?sslmode=disable", []string{"a.example.com", "b.example.com"}},
		{"not a dsn ::: %%%", nil},
	} {
		if got := plaintextHosts(c.dsn); !slices.Equal(got, c.want) {
			t.Errorf("plaintextHosts(%q) = %q, want %q", c.dsn, got, c.want)
		}
	}
	if m := tlsMode("postgres://u@h/x?sslmode=verify-full"); m != "TLS required" {
		t.Errorf("tlsMode(verify-full) = %q", m)
	}
	if m := tlsMode("postgres://u@h/x?sslmode=disable"); m != "sslmode=disable" {
		t.Errorf("tlsMode(disable) = %q", m)
	}
}
