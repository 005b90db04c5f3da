package postgres

// Finding and running pg_dump, whose schema-only output is what post-data
// schema sync applies (see postdata.go).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// PgDump is a pg_dump executable and its major version.
type PgDump struct {
	Path  string
	Major int
}

var pgDumpVersionRe = regexp.MustCompile(`\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?`)

// pgDumpMajor runs `pg_dump --version` and returns its major version.
func pgDumpMajor(ctx context.Context, path string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", path, err)
	}
	m := pgDumpVersionRe.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%s --version: unexpected output %q", path, strings.TrimSpace(string(out)))
	}
	major, _ := strconv.Atoi(string(m[1]))
	if major < 10 && m[2] != nil { // 9.6 and older: two-part majors
		minor, _ := strconv.Atoi(string(m[2]))
		major = major*100 + minor
	}
	return major, nil
}

// pgDumpCandidates lists the pg_dump executables to consider, in order:
// $PG_BINDIR/pg_dump, pg_dump on PATH (symlinks resolved), then
// /usr/lib/postgresql/*/bin/pg_dump, newest first. Debian's pg_wrapper
// (what pg_dump on PATH is there) is left out: it only dispatches to one
// of the /usr/lib/postgresql/*/bin binaries, which are tried directly,
// and asking it for its version costs a Perl start-up on every run.
func pgDumpCandidates() []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if filepath.Base(p) == "pg_wrapper" {
			return
		}
		if st, err := os.Stat(p); err != nil || st.IsDir() || seen[p] {
			return
		}
		seen[p] = true
		out = append(out, p)
	}
	if d := os.Getenv("PG_BINDIR"); d != "" {
		add(filepath.Join(d, "pg_dump"))
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		add(p)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		a, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[i])), 64)
		b, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dirs[j])), 64)
		return a > b
	})
	for _, d := range dirs {
		add(filepath.Join(d, "pg_dump"))
	}
	return out
}

// FindPgDump finds a pg_dump that can dump servers of the given
// server_version_num values: one whose major version equals the first
// (the source's) is preferred; otherwise the oldest one not older than any
// of them. The error names what to install.
func FindPgDump(ctx context.Context, serverVersions ...int) (*PgDump, error) {
	if len(serverVersions) == 0 {
		return nil, errors.New("FindPgDump: no server version")
	}
	majorOf := func(v int) int {
		if v >= 100000 {
			return v / 10000
		}
		return v / 100
	}
	want := majorOf(serverVersions[0])
	need := 0
	for _, v := range serverVersions {
		need = max(need, majorOf(v))
	}
	var found []string
	var best *PgDump
	for _, p := range pgDumpCandidates() {
		major, err := pgDumpMajor(ctx, p)
		if err != nil {
			found = append(found, fmt.Sprintf("%s (%v)", p, err))
			continue
		}
		found = append(found, fmt.Sprintf("%s (version %d)", p, major))
		if major < need {
			continue
		}
		if major == want {
			return &PgDump{Path: p, Major: major}, nil
		}
		if best == nil || major < best.Major {
			best = &PgDump{Path: p, Major: major}
		}
	}
	if best != nil {
		return best, nil
	}
	msg := fmt.Sprintf("schema sync (sync.schema) needs pg_dump %d (the source server's major version) or newer, up to date with every server it reads (%d)", want, need)
	if len(found) == 0 {
		msg += "; none was found in $PG_BINDIR, on PATH or in /usr/lib/postgresql/*/bin"
	} else {
		msg += "; found only " + strings.Join(found, ", ")
	}
	msg += fmt.Sprintf(": install the PostgreSQL %d client tools (Debian/Ubuntu: apt-get install postgresql-client-%d; RHEL: postgresql%d) or set PG_BINDIR to their bin directory", want, want, want)
	return nil, errors.New(msg)
}

// Dump runs pg_dump --schema-only with args against the database dsn and
// returns its output. role names the side in errors; the DSN is never
// part of an error.
func (d *PgDump) Dump(ctx context.Context, dsn, role string, args ...string) (string, error) {
	all := append([]string{"--schema-only", "--no-publications", "--no-subscriptions"}, args...)
	// The password goes through the environment, never the command line
	// (which any local user can read with ps).
	rest, password := SplitPassword(dsn)
	all = append(all, "--dbname", rest)
	cmd := exec.CommandContext(ctx, d.Path, all...)
	cmd.Env = os.Environ()
	if password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+password)
	}
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if dsn != "" {
			msg = strings.ReplaceAll(msg, dsn, "<dsn>")
			msg = strings.ReplaceAll(msg, rest, "<dsn>")
		}
		if password != "" {
			msg = strings.ReplaceAll(msg, password, "xxxxx")
		}
		return "", fmt.Errorf("%s: pg_dump --schema-only (%s): %w\n%s", role, d.Path, err, msg)
	}
	return stdout.String(), nil
}

// FindPgDumpFor is FindPgDump for the servers of two open connections (the
// source first).
func FindPgDumpFor(ctx context.Context, src, dst *pgx.Conn) (*PgDump, error) {
	srcVer, err := serverVersion(ctx, src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	dstVer, err := serverVersion(ctx, dst)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return FindPgDump(ctx, srcVer, dstVer)
}
