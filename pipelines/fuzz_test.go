package pipelines

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the pipeline loader: it must never
// panic, must either return a pipeline or an error (not both, not neither),
// and must never echo a secret taken from the environment.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("name: x\nsource: {dsn: \"${SECRET}\"}\nsink: {dsn: \"host=y\"}\nobjects: [{schema: a}]\n"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("name: x\nobjects:\n  - table: '\"a\"\"b\".c'\n"))
	const secret = "Sekr1t-do-not-print"
	env := func(k string) (string, bool) {
		switch k {
		case "SECRET":
			return "postgres://u:" + secret + "@h/db", true
		case "SRC_DSN", "DST_DSN":
			return "host=h dbname=d password=" + secret, true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "fuzz.yaml", env)
		if (p == nil) == (err == nil) {
			t.Fatalf("Parse returned pipeline %v and error %v", p, err)
		}
		if err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error shows the secret: %v", err)
			}
			return
		}
		if p.Name == "" || len(p.Objects) == 0 || p.Source.DSN == "" || p.Sink.DSN == "" {
			t.Fatalf("a valid pipeline lacks required parts: %+v", p)
		}
	})
}
