package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pipelines"
	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

func TestVersionAndHelp(t *testing.T) {
	dir := t.TempDir()
	r := sluice(t, dir, nil, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "sluice ") {
		t.Errorf("sluice version: want exit 0 and \"sluice <version>\":\n%s", r)
	}

	for _, c := range []struct {
		args []string
		want []string // in stdout
	}{
		{[]string{"--help"}, []string{"sluice copies a PostgreSQL database into another", "Usage:", "run", "check", "version", "--log-level"}},
		{[]string{"run", "--help"}, []string{"Run the pipeline file", "resumes the unfinished chunks", "sluice run PIPELINE", "--json", "--no-progress"}},
		{[]string{"check", "--help"}, []string{"Check validates the pipeline file", "pass, warn or", "sluice check PIPELINE", "--json"}},
	} {
		r := sluice(t, dir, nil, c.args...)
		if r.code != 0 {
			t.Errorf("sluice %v: want exit 0:\n%s", c.args, r)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("sluice %v: stdout lacks %q:\n%s", c.args, w, r)
			}
		}
	}

	for _, c := range []struct {
		args []string
		want []string // in stderr
	}{
		{[]string{"run"}, []string{"run: want PIPELINE", "sluice run --help"}},
		{[]string{"check"}, []string{"check: want PIPELINE", "sluice check --help"}},
		{[]string{"run", "a.yaml", "b.yaml"}, []string{"run: want PIPELINE"}},
		{[]string{"--no-such-flag"}, []string{"unknown flag: --no-such-flag"}},
		{[]string{"run", "--no-such-flag", "p.yaml"}, []string{"unknown flag: --no-such-flag"}},
		{[]string{"check", "-z", "p.yaml"}, []string{"unknown shorthand flag: 'z'"}},
	} {
		r := sluice(t, dir, nil, c.args...)
		if r.code != 2 || !strings.HasPrefix(r.stderr, "sluice: ") {
			t.Errorf("sluice %v: want exit 2 and a usage message on stderr:\n%s", c.args, r)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("sluice %v: stderr lacks %q:\n%s", c.args, w, r)
			}
		}
		if r.stdout != "" {
			t.Errorf("sluice %v: unexpected stdout:\n%s", c.args, r)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("the commands left files behind in the working directory: %v", entries)
	}
}

// wants reads the expectations of a bad pipeline file from its .want
// sidecar: one per line, a substring of stderr, or a regular expression
// after "re:". Lines starting with # are comments.
func wants(t *testing.T, path string) (subs []string, res []*regexp.Regexp) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("every testdata/bad/*.yaml needs a .want file: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.TrimSpace(line) == "", strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "re:"):
			res = append(res, regexp.MustCompile(strings.TrimPrefix(line, "re:")))
		default:
			subs = append(subs, line)
		}
	}
	if len(subs)+len(res) == 0 {
		t.Fatalf("%s: no expectations", path)
	}
	return subs, res
}

func TestBadPipelineFiles(t *testing.T) {
	ctx := testCtx(t)
	srcDSN, dstDSN := pgtest.NewDB(t, pgtest.Source(t)), pgtest.NewDB(t, pgtest.Sink(t))
	env := dsnEnv(srcDSN, dstDSN)

	files, err := filepath.Glob(filepath.Join("testdata", "bad", "*.yaml"))
	if err != nil || len(files) < 8 {
		t.Fatalf("want at least 8 files in testdata/bad, got %d (%v)", len(files), err)
	}
	for _, file := range files {
		base := filepath.Base(file)
		t.Run(strings.TrimSuffix(base, ".yaml"), func(t *testing.T) {
			subs, res := wants(t, strings.TrimSuffix(file, ".yaml")+".want")
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			// Run in a directory of its own, on the file's base name, so
			// that messages name it as given and a state dir (which must
			// not be made) would show up there.
			dir := t.TempDir()
			writePipeline(t, dir, base, string(data))
			for _, cmd := range []string{"check", "run"} {
				r := sluice(t, dir, env, cmd, base)
				if r.code != 1 || !strings.HasPrefix(r.stderr, "sluice: ") {
					t.Errorf("sluice %s %s: want exit 1 and stderr starting with \"sluice: \":\n%s", cmd, base, r)
					continue
				}
				for _, s := range subs {
					if !strings.Contains(r.stderr, s) {
						t.Errorf("sluice %s %s: stderr lacks %q:\n%s", cmd, base, s, r)
					}
				}
				for _, re := range res {
					if !re.MatchString(r.stderr) {
						t.Errorf("sluice %s %s: stderr does not match %s:\n%s", cmd, base, re, r)
					}
				}
				for _, secret := range []string{srcDSN, dstDSN} {
					if strings.Contains(r.stdout+r.stderr, secret) {
						t.Errorf("sluice %s %s: output shows a DSN:\n%s", cmd, base, r)
					}
				}
			}
			if hasSluiceSchema(t, ctx, dstDSN) {
				t.Errorf("sluice run %s created the sluice schema at the sink", base)
			}
			if n := queryInt(t, ctx, dstDSN, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`); n != 0 {
				t.Errorf("sluice run %s created %d relations at the sink", base, n)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("sluice run %s left files next to the pipeline file: %v", base, entries)
			}
		})
	}
	t.Run("password_hidden", func(t *testing.T) { testPasswordHidden(t, srcDSN) })
}

// testPasswordHidden points a DSN with a password (from a variable) at a
// closed port: the connection fails, and the password appears nowhere.
func testPasswordHidden(t *testing.T, srcDSN string) {
	const password = "Pw_q7Zx81Distinct"
	for _, c := range []struct {
		name, role string
		dsn        string
	}{
		{"url_sink", "sink", "postgres://app:" + password + "@127.0.0.1:1/shop?sslmode=disable&connect_timeout=5"},
		{"keyword_sink", "sink", "host=127.0.0.1 port=1 user=app password=" + password + " dbname=shop sslmode=disable connect_timeout=5"},
		{"url_source", "source", "postgres://app:" + password + "@127.0.0.1:1/shop?connect_timeout=5"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := writePipeline(t, dir, "p.yaml", `name: secrets
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: public
state_dir: state
`)
			env := dsnEnv(srcDSN, c.dsn)
			if c.role == "source" {
				env = dsnEnv(c.dsn, srcDSN)
			}
			for _, args := range [][]string{
				{"check", p},
				{"check", "--json", p},
				{"run", p},
				{"run", "--json", "--log-level", "debug", p},
				{"run", "--log-format", "json", "--log-level", "debug", p},
			} {
				var r result
				if args[0] == "run" {
					// run retries a lost connection within retry.connection
					// (at least 10m): let it retry a few times, logging
					// each cause, then stop it.
					p := startSluice(t, dir, env, args...)
					time.Sleep(4 * time.Second)
					p.signal(syscall.SIGTERM)
					r = p.wait(30 * time.Second)
					if r.code != 130 {
						t.Errorf("sluice %v: want exit 130 after SIGTERM:\n%s", args, r)
					}
				} else {
					r = sluice(t, dir, env, args...)
					if r.code != 1 {
						t.Errorf("sluice %v: want exit 1:\n%s", args, r)
					}
				}
				if strings.Contains(r.stdout+r.stderr, password) {
					t.Errorf("sluice %v shows the password:\n%s", args, r)
				}
				if args[0] == "run" && !strings.Contains(r.stderr, "connect to "+c.role) {
					t.Errorf("sluice %v: stderr does not say the %s connection failed:\n%s", args, c.role, r)
				}
				if args[0] == "check" && !strings.Contains(r.stdout, c.role+"_connection") {
					t.Errorf("sluice %v: the report has no %s_connection item:\n%s", args, c.role, r)
				}
			}
		})
	}
}

func TestDemoPipelineFile(t *testing.T) {
	const src, dst = "postgres://demo@127.0.0.1:15432/shop?sslmode=disable", "postgres://demo@127.0.0.1:15433/shop?sslmode=disable"
	env := func(k string) (string, bool) {
		switch k {
		case "SRC_DSN":
			return src, true
		case "DST_DSN":
			return dst, true
		}
		return "", false
	}
	file := filepath.Join("..", "..", "examples", "demo.yaml")
	p, err := pipelines.Load(file, env)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "demo" || p.Source.DSN.Reveal() != src || p.Sink.DSN.Reveal() != dst {
		t.Errorf("name %q, source %q, sink %q", p.Name, p.Source.DSN.Reveal(), p.Sink.DSN.Reveal())
	}
	if want := (pipelines.Sync{Schema: true, Full: true}); p.Sync != want {
		t.Errorf("sync = %+v, want %+v", p.Sync, want)
	}
	if len(p.Objects) != 1 || p.Objects[0].Schema != "shop" {
		t.Errorf("objects = %+v, want the schema shop", p.Objects)
	}
	if want := (pipelines.Copy{Parallel: 4, ChunkRows: 10000, ToastCompression: "auto", SharedScanMaxMB: 4096}); p.Copy != want {
		t.Errorf("copy = %+v, want %+v", p.Copy, want)
	}
	if want := filepath.Join("..", "..", ".demo", "state", "demo"); filepath.Clean(p.StateDir) != want {
		t.Errorf("state dir %q, want %q (relative to the file)", p.StateDir, want)
	}
	// And the CLI turns it into an engine config.
	cfg, err := engineConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Objects) != 1 || cfg.Objects[0].Schema != "shop" || cfg.SourceDSN != src || cfg.SinkDSN != dst ||
		cfg.Parallel != 4 || cfg.ChunkRows != 10000 || !cfg.Schema || !cfg.Full || cfg.Incremental {
		t.Errorf("engine config: %+v", cfg)
	}
}
