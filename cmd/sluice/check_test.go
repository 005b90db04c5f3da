package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// checkLine returns the fields of the report line of item, or nil.
func checkLine(stdout, item string) []string {
	for _, line := range strings.Split(stdout, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == item {
			return f
		}
	}
	return nil
}

// sluice check reads ignore_checks from the pipeline file, prints one line
// per item (multi-line details flattened) and a count, or JSON; it exits 1
// on a failure, which ignore_checks cannot hide, and 0 otherwise.
func TestCheckCommand(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE TABLE public.bag (v int); INSERT INTO public.bag VALUES (1);
CREATE TABLE public.keyed (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if err := snk.Exec(ctx, dbOf(t, dstDSN), `CREATE TABLE public.keyed (id int PRIMARY KEY); INSERT INTO public.keyed VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := dsnEnv(srcDSN, dstDSN)
	body := `name: chk
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: public
ignore_checks: [tables_without_key, conflicting_tables, no_such_check]
state_dir: state
`
	p := writePipeline(t, dir, "chk.yaml", body)

	// A conflicting table: exit 1, even though ignore_checks names it.
	r := sluice(t, dir, env, "check", p)
	if r.code != 1 || !strings.Contains(r.stderr, "check failed") {
		t.Fatalf("sluice check with a conflicting table: want exit 1:\n%s", r)
	}
	for item, status := range map[string]string{
		"conflicting_tables": "FAIL", "tables_without_key": "PASS", "ignore_checks": "WARN",
		"source_connection": "PASS", "wal_level": "PASS", "filters_and_transforms": "PASS",
	} {
		if f := checkLine(r.stdout, item); f == nil || f[1] != status {
			t.Errorf("%s: want %s, got %v:\n%s", item, status, f, r.stdout)
		}
	}
	for _, want := range []string{"CHECK", "STATUS", "DETAIL", "public.keyed", "failures cannot be ignored", "— fix:",
		"(acknowledged in ignore_checks)", `"no_such_check"`, "not needed: incremental is off", "warnings, 1 failed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}

	r = sluice(t, dir, env, "check", "--json", p)
	var rep struct {
		Pipeline string `json:"pipeline"`
		Items    []struct {
			Name, Status, Detail, Fix string
			Acknowledged              bool
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
		t.Fatalf("sluice check --json: want exit 1 and JSON (%v):\n%s", err, r)
	}
	got := map[string]string{}
	for _, it := range rep.Items {
		got[it.Name] = it.Status
		if it.Name == "tables_without_key" && !it.Acknowledged {
			t.Errorf("tables_without_key not acknowledged in JSON: %+v", it)
		}
		if it.Status != "pass" && it.Fix == "" {
			t.Errorf("%s is %s without a fix", it.Name, it.Status)
		}
	}
	if rep.Pipeline != "chk" || got["conflicting_tables"] != "fail" || got["tables_without_key"] != "pass" || got["ignore_checks"] != "warn" || len(got) < 20 {
		t.Errorf("JSON report: %+v", rep)
	}

	// Fixed: exit 0, remaining warnings shown.
	if err := snk.Exec(ctx, dbOf(t, dstDSN), `TRUNCATE public.keyed`); err != nil {
		t.Fatal(err)
	}
	r = sluice(t, dir, env, "check", p)
	if r.code != 0 {
		t.Fatalf("sluice check after emptying the table: want exit 0:\n%s", r)
	}
	if f := checkLine(r.stdout, "conflicting_tables"); f == nil || f[1] != "PASS" {
		t.Errorf("conflicting_tables: %v\n%s", f, r.stdout)
	}
	if !strings.Contains(r.stdout, "1 warnings, 0 failed") {
		t.Errorf("want one warning (the unknown ignore_checks name):\n%s", r.stdout)
	}
	// Without ignore_checks the keyless table warns.
	p = writePipeline(t, dir, "chk2.yaml", strings.Replace(body, "ignore_checks: [tables_without_key, conflicting_tables, no_such_check]\n", "", 1))
	r = sluice(t, dir, env, "check", p)
	if f := checkLine(r.stdout, "tables_without_key"); r.code != 0 || f == nil || f[1] != "WARN" {
		t.Errorf("tables_without_key without ignore_checks: want WARN and exit 0:\n%s", r)
	}
	if hasSluiceSchema(t, ctx, dstDSN) {
		t.Error("sluice check changed the sink: it has a sluice schema")
	}
}
