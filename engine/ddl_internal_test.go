package engine

import "testing"

func TestSplitIdentity(t *testing.T) {
	for _, tc := range []struct {
		in, schema, name string
		ok               bool
	}{
		{"app.t_idx", "app", "t_idx", true},
		{`"My Schema"."a.b"`, "My Schema", "a.b", true},
		{`app."we""ird"`, "app", `we"ird`, true},
		{"noschema", "", "", false},
		{`"open.x`, "", "", false},
	} {
		s, n, ok := splitIdentity(tc.in)
		if s != tc.schema || n != tc.name || ok != tc.ok {
			t.Errorf("splitIdentity(%q) = %q, %q, %v; want %q, %q, %v", tc.in, s, n, ok, tc.schema, tc.name, tc.ok)
		}
	}
}
