package main

// Security through the binary: passwords never shown anywhere, the state
// dir private to its owner, and check warning about unencrypted traffic to
// another machine.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// TestSecretsNeverShown runs a pipeline end to end against a cluster that
// checks passwords (SCRAM): the source's password is in its DSN, the
// sink's comes from a ${VAR} inside the pipeline file's DSN. Neither, nor
// a wrong password tried on the way, appears in any output (text and JSON
// logs at debug level, check, status, verify, errors of failed
// connections), on /metrics or /status, or in any file of the state dir
// (badger's files included); the state dir is owner-only (0700).
func TestSecretsNeverShown(t *testing.T) {
	ctx := testCtx(t)
	c := pgtest.NewClusterOpts(t, pgtest.Options{Auth: pgtest.AuthSCRAM})
	const (
		srcPW   = "SrcPw_7Qz9xK2mLw"
		dstPW   = "SinkPw_4Rt8vN1pYe"
		wrongPW = "WrongPw_3Hs6jD0uTa"
	)
	secrets := []string{srcPW, dstPW, wrongPW}
	for _, sql := range []string{
		fmt.Sprintf(`CREATE ROLE app_src LOGIN SUPERUSER PASSWORD '%s'`, srcPW),
		fmt.Sprintf(`CREATE ROLE app_dst LOGIN SUPERUSER PASSWORD '%s'`, dstPW),
		`CREATE DATABASE src OWNER app_src`,
		`CREATE DATABASE dst OWNER app_dst`,
	} {
		if err := c.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Exec(ctx, "src", `CREATE TABLE public.t (id int PRIMARY KEY, v text);
		INSERT INTO public.t SELECT g, 'v' || g FROM generate_series(1, 3000) g;`); err != nil {
		t.Fatal(err)
	}
	srcDSN := c.DSNAs("src", "app_src", srcPW)
	dstNoPW := c.DSNAs("dst", "app_dst", "")
	dstTemplate := strings.Replace(dstNoPW, "app_dst@", "app_dst:${SINK_PASSWORD}@", 1)
	if dstTemplate == dstNoPW {
		t.Fatalf("cannot splice a password variable into %s", dstNoPW)
	}
	t.Cleanup(func() {
		_ = c.Exec(ctx, "src", `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE NOT active`)
	})

	dir := t.TempDir()
	addr := freeAddr(t)
	pipeline := func(name, sinkDSN string) string {
		return fmt.Sprintf(`name: %s
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "%s"}
sync: {incremental: true}
objects:
  - schema: public
stream: {heartbeat: 200ms}
metrics: {listen: "%s"}
state_dir: state
`, name, sinkDSN, addr)
	}
	file := writePipeline(t, dir, "secret.yaml", pipeline("secret", dstTemplate))
	env := map[string]string{"SRC_DSN": srcDSN, "SINK_PASSWORD": dstPW}

	var shown []string // every output to search
	keep := func(what string, r result) result {
		shown = append(shown, what+":\n"+r.stdout+r.stderr)
		return r
	}
	mustOK := func(what string, r result) {
		t.Helper()
		keep(what, r)
		if r.code != 0 {
			t.Fatalf("%s: want exit 0:\n%s", what, r)
		}
	}
	mustOK("check", sluice(t, dir, env, "check", file))
	mustOK("check --json", sluice(t, dir, env, "check", "--json", file))
	mustOK("run", startSluice(t, dir, env, "run", "--until-caught-up", "--log-level", "debug", file).wait(2*time.Minute))

	// A live run: JSON logs at debug level; /metrics and /status scraped
	// while it streams; status and verify beside it.
	p := startSluice(t, dir, env, "run", "--log-format", "json", "--log-level", "debug", file)
	waitStreaming(t, ctx, p, srcDSN, "sluice_secret", time.Minute)
	if err := c.Exec(ctx, "src", `UPDATE public.t SET v = v || '!' WHERE id % 7 = 0`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for _, path := range []string{"/metrics", "/status"} {
		body, err := httpGet("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		shown = append(shown, path+":\n"+body)
	}
	mustOK("status", sluice(t, dir, env, "status", file))
	mustOK("status --json", sluice(t, dir, env, "status", "--json", file))
	p.signal(syscall.SIGTERM)
	keep("run --log-format json", p.wait(time.Minute))
	mustOK("verify", sluice(t, dir, env, "verify", file))

	// Failed connections: a wrong password (authentication fails), and
	// a closed port, for each side.
	badPW := writePipeline(t, dir, "badpw.yaml", pipeline("secret", strings.Replace(dstTemplate, "${SINK_PASSWORD}", wrongPW, 1)))
	for _, args := range [][]string{{"check", badPW}, {"check", "--json", badPW}} {
		r := keep(strings.Join(args, " "), sluice(t, dir, env, args...))
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "authentication failed") {
			t.Errorf("sluice %v with a wrong sink password: want a failure naming authentication:\n%s", args, r)
		}
	}
	for _, e := range []map[string]string{
		withEnv(env, "SRC_DSN", strings.Replace(srcDSN, srcPW, wrongPW, 1)),
		withEnv(env, "SRC_DSN", strings.Replace(srcDSN, fmt.Sprintf(":%d/", c.Port()), ":1/", 1)),
	} {
		for _, args := range [][]string{{"run", file}, {"run", "--log-format", "json", "--log-level", "debug", file}} {
			p := startSluice(t, dir, e, args...)
			time.Sleep(3 * time.Second)
			p.signal(syscall.SIGTERM)
			r := keep(strings.Join(args, " "), p.wait(30*time.Second))
			if r.code == 0 || !strings.Contains(r.stderr, "connect to source") {
				t.Errorf("sluice %v with a failing source connection: want an error naming the source connection:\n%s", args, r)
			}
		}
	}
	for _, out := range shown {
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("a password (%s…) is shown in %s", s[:6], out)
			}
		}
	}

	// The state dir: owner-only, and no file in it holds a password.
	state := filepath.Join(dir, "state")
	st, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("state dir %s has mode %v, want 0700", state, perm)
	}
	files := 0
	err = filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for _, s := range secrets {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("state file %s holds a password (%s…)", path, s[:6])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Errorf("state dir has %d files; want badger's files to search", files)
	}
	t.Logf("searched %d outputs and %d state files for %d passwords", len(shown), files, len(secrets))
}

// TestStateDirMadePrivate: a state dir that exists with open permissions
// is made owner-only by the first run.
func TestStateDirMadePrivate(t *testing.T) {
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(state, 0o777); err != nil {
		t.Fatal(err)
	}
	file := writePipeline(t, dir, "p.yaml", `name: private_state
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: public
state_dir: state
`)
	if err := src.Exec(testCtx(t), dbOf(t, srcDSN), `CREATE TABLE public.t (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if r := sluice(t, dir, dsnEnv(srcDSN, dstDSN), "run", file); r.code != 0 {
		t.Fatalf("sluice run: %s", r)
	}
	st, err := os.Stat(state)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("state dir has mode %v after a run, want 0700", perm)
	}
}

// outsideIP returns an IPv4 address of this machine that is not loopback,
// or skips the test.
func outsideIP(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to reach the sink through")
	return ""
}

// TestCheckWarnsUnencrypted: check warns (item encryption) when a DSN lets
// traffic to another host travel in plain text — here the sink reached
// through a proxy on this machine's outside address — and passes for
// local connections.
func TestCheckWarnsUnencrypted(t *testing.T) {
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	ip := outsideIP(t)
	zerolog.SetGlobalLevel(zerolog.Disabled)
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	px := toxiproxy.NewProxy(srv, "outside", ip+":0", fmt.Sprintf("127.0.0.1:%d", snk.Port()))
	if err := px.Start(); err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	t.Cleanup(px.Stop)
	_, port, _ := net.SplitHostPort(px.Listen)
	remote := strings.Replace(dstDSN, fmt.Sprintf("127.0.0.1:%d", snk.Port()), ip+":"+port, 1)
	dir := t.TempDir()
	file := writePipeline(t, dir, "p.yaml", `name: tls_check
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
objects:
  - schema: public
`)
	item := func(env map[string]string) checkItemJSON {
		t.Helper()
		r := sluice(t, dir, env, "check", "--json", file)
		var rep struct {
			Items []checkItemJSON `json:"items"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("check --json: %v\n%s", err, r)
		}
		for _, it := range rep.Items {
			if it.Name == "encryption" {
				return it
			}
		}
		t.Fatalf("check --json has no encryption item:\n%s", r.stdout)
		return checkItemJSON{}
	}
	it := item(dsnEnv(srcDSN, remote))
	if it.Status != "warn" || !strings.Contains(it.Detail, "sink DSN") || !strings.Contains(it.Detail, ip) || !strings.Contains(it.Fix, "sslmode=verify-full") {
		t.Errorf("sink over plain TCP to %s: want a warning naming the sink, the host and sslmode=verify-full, got %+v", ip, it)
	}
	t.Logf("remote: %s: %s (fix: %s)", it.Status, it.Detail, it.Fix)
	it = item(dsnEnv(srcDSN, dstDSN))
	if it.Status != "pass" {
		t.Errorf("both sides on this machine: want pass, got %+v", it)
	}
	t.Logf("local: %s: %s", it.Status, it.Detail)
}

// checkItemJSON is one item of `check --json`.
type checkItemJSON struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
}
