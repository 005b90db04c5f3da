package pgtest_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m))
}

const fixture = `
CREATE TABLE public."Items" (id int PRIMARY KEY, name text, price numeric(10,2), tags text[], at timestamptz);
INSERT INTO public."Items"
SELECT g, 'item ' || g, g * 1.5, ARRAY['a', 'b' || g], timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour'
FROM generate_series(1, 1000) g;
CREATE TABLE public.empty (id int);
`

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestSourceAndSinkAreDistinct(t *testing.T) {
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	if src == snk || src.Port() == snk.Port() || src.Dir() == snk.Dir() {
		t.Fatalf("source and sink are not distinct: ports %d/%d dirs %s/%s", src.Port(), snk.Port(), src.Dir(), snk.Dir())
	}
	if pgtest.Source(t) != src {
		t.Fatal("Source returned a different cluster on the second call")
	}
	if want := "postgres://postgres@127.0.0.1:"; !strings.HasPrefix(src.DSN("x"), want) {
		t.Fatalf("DSN %q", src.DSN("x"))
	}
}

func TestChecksum(t *testing.T) {
	ctx := ctx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, snkDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	srcDB, snkDB := dbOf(t, srcDSN), dbOf(t, snkDSN)
	if err := src.Exec(ctx, srcDB, fixture); err != nil {
		t.Fatal(err)
	}
	// The sink gets the same data through a file and psql.
	path := filepath.Join(t.TempDir(), "fixture.sql")
	if err := os.WriteFile(path, []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := snk.LoadSQLFile(ctx, snkDB, path); err != nil {
		t.Fatal(err)
	}

	const table = `public."Items"`
	n1, s1, err := pgtest.ChecksumDSN(ctx, srcDSN, table)
	if err != nil {
		t.Fatal(err)
	}
	n2, s2, err := pgtest.ChecksumDSN(ctx, snkDSN, table)
	if err != nil {
		t.Fatal(err)
	}
	if n1 != 1000 || n1 != n2 || s1 != s2 || len(s1) != 32 {
		t.Fatalf("checksums differ for equal data: %d %s vs %d %s", n1, s1, n2, s2)
	}

	// Same checksum through a caller's connection.
	conn, err := snk.Connect(ctx, snkDB)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	if n, s, err := pgtest.Checksum(ctx, conn, table); err != nil || n != n1 || s != s1 {
		t.Fatalf("Checksum on a conn: %d %s %v, want %d %s", n, s, err, n1, s1)
	}

	// A one-character change shows.
	if err := snk.Exec(ctx, snkDB, `UPDATE public."Items" SET name = 'item 50!' WHERE id = 50`); err != nil {
		t.Fatal(err)
	}
	n3, s3, err := pgtest.ChecksumDSN(ctx, snkDSN, table)
	if err != nil {
		t.Fatal(err)
	}
	if n3 != n1 || s3 == s1 {
		t.Fatalf("checksum did not change after an update: %d %s", n3, s3)
	}
	// So does a duplicated row.
	if err := src.Exec(ctx, srcDB, `ALTER TABLE public."Items" DROP CONSTRAINT "Items_pkey"; INSERT INTO public."Items" SELECT * FROM public."Items" WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	if n, s, err := pgtest.ChecksumDSN(ctx, srcDSN, table); err != nil || n != 1001 || s == s1 {
		t.Fatalf("after duplicating a row: %d %s %v", n, s, err)
	}

	if n, s, err := pgtest.ChecksumDSN(ctx, srcDSN, "public.empty"); err != nil || n != 0 || s != "" {
		t.Fatalf("empty table: %d %q %v", n, s, err)
	}
	if _, _, err := pgtest.ChecksumDSN(ctx, srcDSN, "public.missing"); err == nil {
		t.Fatal("no error for a missing table")
	}
}

func TestSettings(t *testing.T) {
	ctx := ctx(t)
	for _, c := range []*pgtest.Cluster{pgtest.Source(t), pgtest.Sink(t)} {
		conn, err := c.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{
			"wal_level":             "logical",
			"max_replication_slots": "20",
			"fsync":                 "off",
			"server_encoding":       "UTF8",
			"listen_addresses":      "127.0.0.1",
		} {
			var got string
			if err := conn.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		conn.Close(ctx)
		if _, err := os.Stat(filepath.Join(c.SocketDir(), ".s.PGSQL."+itoa(c.Port()))); err != nil {
			t.Errorf("unix socket: %v", err)
		}
	}
}

func TestLoadSQLFileError(t *testing.T) {
	ctx := ctx(t)
	c := pgtest.Source(t)
	db := dbOf(t, pgtest.NewDB(t, c))
	path := filepath.Join(t.TempDir(), "bad.sql")
	os.WriteFile(path, []byte("CREATE TABLE ok (id int);\nSELEC 1;\nCREATE TABLE never (id int);\n"), 0o644)
	err := c.LoadSQLFile(ctx, db, path)
	if err == nil || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("want a syntax error with psql's stderr, got %v", err)
	}
	if err := c.Exec(ctx, db, "SELECT 1 FROM never"); err == nil {
		t.Fatal("psql went on after an error")
	}
}

func TestCreateDropDatabase(t *testing.T) {
	ctx := ctx(t)
	c := pgtest.Sink(t)
	name := `Odd "name" ` + t.Name()
	dsn, err := c.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgtestConnect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&got); err != nil || got != name {
		t.Fatalf("current_database() = %q, %v", got, err)
	}
	// WITH (FORCE) disconnects conn.
	if err := c.DropDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := c.DropDatabase(ctx, name); err != nil {
		t.Fatalf("dropping a missing database: %v", err)
	}
}

// TestRestartAndKill uses a private cluster, since it takes it down.
func TestRestartAndKill(t *testing.T) {
	ctx := ctx(t)
	c := pgtest.NewCluster(t, map[string]string{"work_mem": "8MB"})
	port := c.Port()
	dsn, err := c.CreateDatabase(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Exec(ctx, "keep", "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g"); err != nil {
		t.Fatal(err)
	}
	n0, s0, err := pgtest.ChecksumDSN(ctx, dsn, "t")
	if err != nil {
		t.Fatal(err)
	}
	check := func(step string) {
		t.Helper()
		if c.Port() != port {
			t.Fatalf("%s: port changed from %d to %d", step, port, c.Port())
		}
		n, s, err := pgtest.ChecksumDSN(ctx, c.DSN("keep"), "t")
		if err != nil || n != n0 || s != s0 {
			t.Fatalf("%s: data changed: %d %s %v", step, n, s, err)
		}
	}
	for _, mode := range []string{"fast", "immediate"} {
		if err := c.Restart(ctx, mode); err != nil {
			t.Fatal(err)
		}
		check("restart " + mode)
	}
	var workMem string
	conn, err := c.Connect(ctx, "keep")
	if err != nil {
		t.Fatal(err)
	}
	conn.QueryRow(ctx, "SHOW work_mem").Scan(&workMem)
	conn.Close(ctx)
	if workMem != "8MB" {
		t.Errorf("work_mem = %q, want the Settings value 8MB", workMem)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if c.Running(ctx) {
		t.Fatal("running after Kill")
	}
	if err := c.Exec(ctx, "keep", "SELECT 1"); err == nil {
		t.Fatal("Exec worked on a killed cluster")
	}
	if err := c.EnsureRunning(ctx); err != nil {
		t.Fatal(err)
	}
	check("start after kill")
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stopping a stopped cluster: %v", err)
	}
	if err := c.Restart(ctx, "bogus"); err == nil {
		t.Fatal("bogus restart mode accepted")
	}
}

// TestReuseDataDir starts a cluster in a long-named directory (socket path
// limit), stops it and starts it again from the same data directory, as the
// demo driver does with its persistent folder.
func TestReuseDataDir(t *testing.T) {
	ctx := ctx(t)
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip(err)
	}
	// t.TempDir() is 0700: Start opens it up for the server user.
	base := t.TempDir()
	dir := filepath.Join(base, strings.Repeat("long-directory-name-", 5), "cluster")
	c, err := pgtest.Start(ctx, pgtest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Remove() })
	if c.SocketDir() == dir || len(c.SocketDir()) > 80 {
		t.Errorf("socket dir %s for long dir %s", c.SocketDir(), dir)
	}
	if err := c.Exec(ctx, "postgres", "CREATE TABLE kept (id int); INSERT INTO kept VALUES (1), (2)"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c2, err := pgtest.Start(ctx, pgtest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := pgtest.ChecksumDSN(ctx, c2.DSN("postgres"), "kept"); err != nil || n != 2 {
		t.Fatalf("reused data dir: %d rows, %v", n, err)
	}
	// Start on a running cluster stops it first and starts it again.
	c3, err := pgtest.Start(ctx, pgtest.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := c3.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("dir still there after Remove: %v", err)
	}
	if _, err := os.Stat(c3.SocketDir()); !os.IsNotExist(err) {
		t.Fatalf("socket dir still there after Remove: %v", err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	ctx := ctx(t)
	if _, err := pgtest.BinDir(); err != nil {
		t.Skip(err)
	}
	dir, err := os.MkdirTemp("", "pgtest-bad-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err := pgtest.Start(ctx, pgtest.Options{Dir: dir, Settings: map[string]string{"no_such_setting": "1"}})
	if err == nil {
		c.Remove()
		t.Fatal("started with a bogus setting")
	}
	if !strings.Contains(err.Error(), "no_such_setting") {
		t.Fatalf("error lacks the server log: %v", err)
	}
}

func TestBinDirEnv(t *testing.T) {
	t.Setenv("PG_BINDIR", t.TempDir())
	if _, err := pgtest.BinDir(); err == nil {
		t.Fatal("PG_BINDIR without binaries accepted")
	}
}

// dbOf returns the database name of a DSN.
func dbOf(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func itoa(n int) string { return strconv.Itoa(n) }

func pgtestConnect(ctx context.Context, dsn string) (*pgx.Conn, error) { return pgx.Connect(ctx, dsn) }

func TestPasswordAuth(t *testing.T) {
	ctx := ctx(t)
	for _, method := range []string{pgtest.AuthSCRAM, pgtest.AuthMD5} {
		t.Run(method, func(t *testing.T) {
			c := pgtest.NewClusterOpts(t, pgtest.Options{Auth: method, Settings: map[string]string{"max_connections": "20"}})
			// The superuser is still trusted.
			if err := c.Exec(ctx, "postgres", "CREATE ROLE alice LOGIN REPLICATION PASSWORD 'right pw:@/'"); err != nil {
				t.Fatal(err)
			}
			var got string
			conn, err := pgx.Connect(ctx, c.DSNAs("postgres", "alice", "right pw:@/"))
			if err != nil {
				t.Fatalf("right password refused: %v", err)
			}
			if err := conn.QueryRow(ctx, "SELECT current_user || ' ' || current_setting('password_encryption') || ' ' || current_setting('max_connections')").Scan(&got); err != nil {
				t.Fatal(err)
			}
			conn.Close(ctx)
			if got != "alice "+method+" 20" {
				t.Errorf("got %q", got)
			}
			for _, dsn := range []string{c.DSNAs("postgres", "alice", "wrong"), c.DSNAs("postgres", "alice", "")} {
				if conn, err := pgx.Connect(ctx, dsn); err == nil {
					conn.Close(ctx)
					t.Errorf("%s: connected without the right password", dsn)
				} else if !strings.Contains(err.Error(), "password authentication failed") && !strings.Contains(err.Error(), "password") {
					t.Errorf("%s: want a password error, got %v", dsn, err)
				}
			}
			// Replication connections ask for the password too.
			rdsn := c.DSNAs("postgres", "alice", "wrong") + "&replication=database"
			if conn, err := pgx.Connect(ctx, rdsn); err == nil {
				conn.Close(ctx)
				t.Error("replication connection without the right password")
			}
			// Restart keeps the rules.
			if err := c.Restart(ctx, ""); err != nil {
				t.Fatal(err)
			}
			if conn, err := pgx.Connect(ctx, c.DSNAs("postgres", "alice", "wrong")); err == nil {
				conn.Close(ctx)
				t.Error("after restart: connected with a wrong password")
			}
		})
	}
	if _, err := pgtest.Start(ctx, pgtest.Options{Dir: t.TempDir(), Auth: "password"}); err == nil || !strings.Contains(err.Error(), "Auth") {
		t.Errorf("Auth \"password\": want an error, got %v", err)
	}
}
