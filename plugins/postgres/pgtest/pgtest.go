// Package pgtest starts throwaway real PostgreSQL clusters from the installed
// server binaries (initdb, pg_ctl). It never mocks PostgreSQL.
//
// The core API (BinDir, Start, Cluster, Checksum) does not depend on package
// testing, so it is usable from the `make demo` driver, which keeps clusters
// in a persistent folder. The test conveniences (Main, Source, Sink, NewDB,
// NewCluster) live in shared.go.
//
// PostgreSQL refuses to run as root. When the current process runs as root,
// initdb and pg_ctl (and so the server) run as the OS user "postgres", via
// exec.Cmd.SysProcAttr.Credential; the cluster directory is chowned to that
// user and every directory on its path must be searchable by it.
//
// Layout of a cluster directory (Options.Dir):
//
//	Dir/data          the PostgreSQL data directory (PGDATA)
//	Dir/postgres.log  the server log (unless Options.LogFile says otherwise)
//	Dir/.s.PGSQL.N    the Unix socket (unless Dir is too long for a socket
//	                  path, then a short directory under /tmp is used)
package pgtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ServerUser is the OS user the server runs as when the current process is
// root, and also the database superuser created by initdb.
const ServerUser = "postgres"

// confFile is the file, inside the data directory, that Start rewrites with
// the cluster's settings on every start; postgresql.conf includes it.
const confFile = "pgtest.conf"

// includeLine is appended to postgresql.conf so that confFile is read.
const includeLine = "include_if_exists = '" + confFile + "'\t# added by sluice pgtest"

// maxSocketDirLen keeps "<socket dir>/.s.PGSQL.65535.lock" within the ~107
// byte limit of a Unix socket path, with some margin.
const maxSocketDirLen = 80

// startTimeout bounds pg_ctl -w waits (seconds) for start, stop and restart.
const startTimeout = 120

// BinDir finds the directory holding the PostgreSQL server binaries (initdb,
// pg_ctl, postgres). It uses, in order: $PG_BINDIR if set; the directory of
// `initdb` found on PATH (symlinks resolved); the highest-version
// /usr/lib/postgresql/*/bin. It returns an error telling how to install the
// server binaries when none is found.
func BinDir() (string, error) {
	if d := os.Getenv("PG_BINDIR"); d != "" {
		if err := checkBinDir(d); err != nil {
			return "", fmt.Errorf("pgtest: PG_BINDIR=%s: %w", d, err)
		}
		return d, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			// Debian's /usr/bin wrappers resolve to pg_wrapper, whose
			// directory holds no pg_ctl: fall through in that case.
			if d := filepath.Dir(r); checkBinDir(d) == nil {
				return d, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(dirs[j])), filepath.Base(filepath.Dir(dirs[i])))
	})
	for _, d := range dirs {
		if checkBinDir(d) == nil {
			return d, nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in $PG_BINDIR, on PATH, or in /usr/lib/postgresql/*/bin; " +
		"install them (Debian/Ubuntu: apt-get install postgresql) or set PG_BINDIR")
}

// checkBinDir reports whether d holds the binaries pgtest runs.
func checkBinDir(d string) error {
	for _, name := range []string{"initdb", "pg_ctl", "postgres"} {
		st, err := os.Stat(filepath.Join(d, name))
		if err != nil {
			return err
		}
		if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("%s is not an executable file", filepath.Join(d, name))
		}
	}
	return nil
}

// versionLess compares dotted version strings numerically ("9.6" < "15").
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return a < b
}

// Options configures Start.
type Options struct {
	// Dir is the cluster directory: the data directory is Dir/data. It is
	// created if missing. An existing data directory (one with PG_VERSION)
	// is reused; otherwise initdb creates it. Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Settings are extra postgresql.conf settings; they override the
	// defaults written by Start.
	Settings map[string]string
	// Fsync keeps fsync, synchronous_commit and full_page_writes on (and
	// initdb syncing). The default (false) turns them off, which is only
	// safe for throwaway clusters: an OS crash can corrupt them.
	Fsync bool
	// LogFile is the server log; default Dir/postgres.log. Start appends.
	LogFile string
	// Auth is how roles other than the superuser "postgres" authenticate:
	// "" (the default) trusts every role, as initdb's pg_hba.conf does;
	// "scram-sha-256" or "md5" makes them give their password (set one
	// with CREATE ROLE ... PASSWORD, and connect with DSNAs). The superuser
	// is always trusted, so DSN, Connect and Exec keep working. Like
	// Settings, it is applied on every Start (through hba_file).
	Auth string
}

// Password authentication methods for Options.Auth.
const (
	AuthTrust = ""
	AuthSCRAM = "scram-sha-256"
	AuthMD5   = "md5"
)

// hbaFile is the file, inside the data directory, that Start writes when
// Options.Auth asks for passwords; the hba_file setting points at it.
const hbaFile = "pgtest_hba.conf"

// Cluster is a running (or stopped) PostgreSQL cluster started by Start.
// Its methods are safe for concurrent use, but stopping or restarting a
// cluster of course affects every user of it.
type Cluster struct {
	dir       string
	dataDir   string
	binDir    string
	logFile   string
	socketDir string
	ownSocket bool // socketDir is a short dir under /tmp that Remove deletes
	port      int
	fsync     bool
	cred      *syscall.Credential // nil unless running the server as ServerUser
}

// Dir returns the cluster directory (Options.Dir, made absolute).
func (c *Cluster) Dir() string { return c.dir }

// DataDir returns the data directory (PGDATA), Dir()/data.
func (c *Cluster) DataDir() string { return c.dataDir }

// BinDir returns the directory of the binaries the cluster runs with.
func (c *Cluster) BinDir() string { return c.binDir }

// LogFile returns the server log file.
func (c *Cluster) LogFile() string { return c.logFile }

// SocketDir returns the directory holding the server's Unix socket.
func (c *Cluster) SocketDir() string { return c.socketDir }

// Port returns the TCP port the server listens on at 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// Tool returns the path of a client program (psql, pg_dump, pg_recvlogical,
// ...) of the same PostgreSQL version as the server.
func (c *Cluster) Tool(name string) string { return filepath.Join(c.binDir, name) }

// DSN returns the connection string for database db as the superuser
// "postgres" over TCP: postgres://postgres@127.0.0.1:PORT/db?sslmode=disable.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", ServerUser, c.port, url.PathEscape(db))
}

// DSNAs returns the connection string for database db as role user with
// password (omitted when empty) over TCP, like DSN.
func (c *Cluster) DSNAs(db, user, password string) string {
	u := url.User(user)
	if password != "" {
		u = url.UserPassword(user, password)
	}
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", u.String(), c.port, url.PathEscape(db))
}

// Start starts a cluster in opts.Dir: it runs initdb if the data directory
// does not exist yet (else reuses it), writes the settings, runs
// `pg_ctl start -w` and waits until the server accepts connections. If a
// server is already running on the data directory it is stopped first (fast).
// Errors from a failed start include the tail of the server log.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgtest: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	binDir, err := BinDir()
	if err != nil {
		return nil, err
	}
	switch opts.Auth {
	case AuthTrust, AuthSCRAM, AuthMD5:
	default:
		return nil, fmt.Errorf("pgtest: Options.Auth %q: want \"\", %q or %q", opts.Auth, AuthSCRAM, AuthMD5)
	}
	c := &Cluster{
		dir:     dir,
		dataDir: filepath.Join(dir, "data"),
		binDir:  binDir,
		logFile: opts.LogFile,
		fsync:   opts.Fsync,
	}
	if c.logFile == "" {
		c.logFile = filepath.Join(dir, "postgres.log")
	} else if c.logFile, err = filepath.Abs(c.logFile); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if os.Geteuid() == 0 {
		if c.cred, err = serverCredential(); err != nil {
			return nil, err
		}
	}
	if err := c.prepareDirs(); err != nil {
		return nil, err
	}

	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	} else if c.running(ctx) {
		if err := c.Stop(ctx); err != nil {
			return nil, err
		}
	}
	if err := c.ensureInclude(); err != nil {
		return nil, err
	}

	attempts := 1
	if opts.Port == 0 {
		attempts = 5 // another process may grab a free port before we bind it
	}
	for attempt := 1; ; attempt++ {
		c.port = opts.Port
		if c.port == 0 {
			if c.port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if err := c.writeConf(opts.Settings, opts.Auth); err != nil {
			return nil, err
		}
		logTail, err := c.pgCtl(ctx, "start", "-w", "-t", strconv.Itoa(startTimeout), "-D", c.dataDir, "-l", c.logFile)
		if err == nil {
			break
		}
		if attempt < attempts && strings.Contains(logTail, "could not bind") {
			continue
		}
		return nil, fmt.Errorf("pgtest: starting cluster in %s: %w", c.dir, err)
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// serverCredential returns the credential of ServerUser.
func serverCredential() (*syscall.Credential, error) {
	u, err := user.Lookup(ServerUser)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, PostgreSQL must run as OS user %q: %w", ServerUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: OS user %q has non-numeric uid/gid %s/%s", ServerUser, u.Uid, u.Gid)
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				cred.Groups = append(cred.Groups, uint32(n))
			}
		}
	}
	if len(cred.Groups) == 0 {
		cred.Groups = []uint32{cred.Gid}
	}
	return cred, nil
}

// prepareDirs creates the cluster directory, the log file and the socket
// directory, and, when the server runs as another user, hands them to it
// and checks that it can reach them.
func (c *Cluster) prepareDirs() error {
	// Check before creating anything, so that a failure leaves nothing.
	for _, d := range []string{c.dir, filepath.Dir(c.logFile)} {
		if err := c.checkReachable(existingAncestor(d)); err != nil {
			return err
		}
	}
	if err := mkdirAll(c.dir); err != nil {
		return err
	}
	if err := c.chown(c.dir); err != nil {
		return err
	}
	if err := mkdirAll(filepath.Dir(c.logFile)); err != nil {
		return err
	}
	for _, d := range []string{c.dir, filepath.Dir(c.logFile)} {
		if err := c.checkReachable(d); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(c.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	f.Close()
	if err := c.chown(c.logFile); err != nil {
		return err
	}

	c.socketDir = c.dir
	if len(c.dir) > maxSocketDirLen {
		// A stable short name per cluster directory, so that restarts of
		// a persistent cluster do not leave new directories behind.
		h := sha256.Sum256([]byte(c.dir))
		c.socketDir = filepath.Join("/tmp", "pgtest-sock-"+hex.EncodeToString(h[:6]))
		c.ownSocket = true
		if err := os.Mkdir(c.socketDir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("pgtest: socket directory: %w", err)
		}
		st, err := os.Lstat(c.socketDir)
		if err != nil {
			return fmt.Errorf("pgtest: socket directory: %w", err)
		}
		sys, _ := st.Sys().(*syscall.Stat_t)
		want := uint32(os.Geteuid())
		if c.cred != nil {
			want = c.cred.Uid
		}
		if !st.IsDir() || sys == nil || (sys.Uid != want && sys.Uid != uint32(os.Geteuid())) {
			return fmt.Errorf("pgtest: socket directory %s exists and is not a directory of ours", c.socketDir)
		}
		if err := c.chown(c.socketDir); err != nil {
			return err
		}
	}
	return nil
}

// existingAncestor returns dir, or its closest ancestor that exists.
func existingAncestor(dir string) string {
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			return dir
		}
		dir = filepath.Dir(dir)
	}
}

// mkdirAll is os.MkdirAll, but the directories it creates are 0755
// whatever the umask, so that the server user can search them.
func mkdirAll(dir string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pgtest: %w", err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	for _, d := range missing {
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

// chown gives path to the server user when the server runs as another user.
func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// checkReachable checks that the server user can search every directory
// from / down to dir. Directories inside the temporary directory (such as
// t.TempDir()'s, which are 0700) are opened up (r-x for group and others);
// other directories are not ours to change, so they give an error.
func (c *Cluster) checkReachable(dir string) error {
	if c.cred == nil {
		return nil
	}
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		tmp = "/tmp"
	}
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		if !c.credCanSearch(st) {
			if strings.HasPrefix(d, tmp+string(filepath.Separator)) {
				if err := os.Chmod(d, st.Mode().Perm()|0o055); err != nil {
					return fmt.Errorf("pgtest: %w", err)
				}
			} else {
				return fmt.Errorf("pgtest: OS user %q (uid %d), which runs the server, cannot reach %s: %s (mode %v) is not searchable by it; use another directory or chmod o+x %s",
					ServerUser, c.cred.Uid, dir, d, st.Mode().Perm(), d)
			}
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

// credCanSearch reports whether the server user has search (x) permission
// on a directory with the given stat.
func (c *Cluster) credCanSearch(st os.FileInfo) bool {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := uint32(st.Mode().Perm())
	if sys.Uid == c.cred.Uid {
		return perm&0o100 != 0
	}
	inGroup := sys.Gid == c.cred.Gid
	for _, g := range c.cred.Groups {
		inGroup = inGroup || sys.Gid == g
	}
	if inGroup {
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

// initdb creates the data directory.
func (c *Cluster) initdb(ctx context.Context) error {
	run := func(locale string) (string, error) {
		args := []string{"-D", c.dataDir, "-U", ServerUser, "--auth=trust", "-E", "UTF8", "--locale=" + locale}
		if !c.fsync {
			args = append(args, "--no-sync")
		}
		cmd := c.serverCmd(ctx, "initdb", args...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("C.UTF-8")
	if err != nil && strings.Contains(strings.ToLower(out), "locale") {
		// Some systems lack C.UTF-8; C works everywhere. initdb removes
		// what it created on failure, but make sure.
		os.RemoveAll(c.dataDir)
		out, err = run("C")
	}
	if err != nil {
		return fmt.Errorf("pgtest: initdb in %s: %w\n%s", c.dataDir, err, strings.TrimSpace(out))
	}
	return nil
}

// ensureInclude makes postgresql.conf include confFile.
func (c *Cluster) ensureInclude() error {
	path := filepath.Join(c.dataDir, "postgresql.conf")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if bytes.Contains(b, []byte(includeLine)) {
		return nil
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n%s\n", includeLine)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// writeHBA writes hbaFile: the superuser is trusted, every other role
// authenticates with method, over TCP and the Unix socket, for normal and
// replication connections alike.
func (c *Cluster) writeHBA(method string) error {
	var b strings.Builder
	b.WriteString("# Written by sluice pgtest on every start; edits are lost.\n")
	for _, db := range []string{"all", "replication"} {
		fmt.Fprintf(&b, "local\t%s\t%s\ttrust\n", db, ServerUser)
		fmt.Fprintf(&b, "host\t%s\t%s\t127.0.0.1/32\ttrust\n", db, ServerUser)
		fmt.Fprintf(&b, "host\t%s\t%s\t::1/128\ttrust\n", db, ServerUser)
	}
	for _, db := range []string{"all", "replication"} {
		fmt.Fprintf(&b, "local\t%s\tall\t%s\n", db, method)
		fmt.Fprintf(&b, "host\t%s\tall\t127.0.0.1/32\t%s\n", db, method)
		fmt.Fprintf(&b, "host\t%s\tall\t::1/128\t%s\n", db, method)
	}
	path := filepath.Join(c.dataDir, hbaFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return c.chown(path)
}

// writeConf (re)writes confFile with the defaults and the given settings,
// and the pg_hba file for auth (see Options.Auth). ALTER SYSTEM settings
// (postgresql.auto.conf) still take precedence.
func (c *Cluster) writeConf(extra map[string]string, auth string) error {
	s := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(c.port),
		"unix_socket_directories": c.socketDir,
		"wal_level":               "logical",
		"max_replication_slots":   "20",
		"max_wal_senders":         "20",
		"max_connections":         "100",
		"shared_buffers":          "128MB",
		"log_min_messages":        "warning",
		"logging_collector":       "off",
	}
	if !c.fsync {
		s["fsync"] = "off"
		s["synchronous_commit"] = "off"
		s["full_page_writes"] = "off"
	}
	if auth != AuthTrust {
		if err := c.writeHBA(auth); err != nil {
			return err
		}
		s["hba_file"] = filepath.Join(c.dataDir, hbaFile)
		s["password_encryption"] = auth
	}
	for k, v := range extra {
		s[k] = v
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by sluice pgtest on every start; edits are lost.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(s[k], "'", "''"))
	}
	path := filepath.Join(c.dataDir, confFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return c.chown(path)
}

// freePort returns a TCP port on 127.0.0.1 that is free right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serverCmd returns a command running binDir/name as the server user, in
// the cluster directory, without PG* environment variables.
func (c *Cluster) serverCmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = cleanEnv()
	cmd.WaitDelay = 5 * time.Second
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

// cleanEnv returns the environment without PG* variables (PGDATA, PGPORT,
// PGOPTIONS...), which would change what the binaries do.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// pgCtl runs pg_ctl. On failure the error includes pg_ctl's output and the
// part of the server log written meanwhile (its tail); that log part is also
// returned so callers can look at it.
func (c *Cluster) pgCtl(ctx context.Context, args ...string) (string, error) {
	var offset int64
	if st, err := os.Stat(c.logFile); err == nil {
		offset = st.Size()
	}
	out, err := c.serverCmd(ctx, "pg_ctl", args...).CombinedOutput()
	if err == nil {
		return "", nil
	}
	logPart := readFrom(c.logFile, offset)
	return logPart, fmt.Errorf("pg_ctl %s: %w\n%s\n--- tail of server log %s ---\n%s",
		args[0], err, strings.TrimSpace(string(out)), c.logFile, tail(logPart, 30))
}

// readFrom returns the content of path from offset on (at most 64 KiB of
// its end).
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() < offset {
		offset = 0 // truncated meanwhile
	} else if err == nil && st.Size()-offset > 64<<10 {
		offset = st.Size() - 64<<10
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// LogTail returns the last n lines of the server log.
func (c *Cluster) LogTail(n int) string {
	return tail(readFrom(c.logFile, 0), n)
}

// waitReady waits until the server accepts connections to database
// "postgres", for at most a minute.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(cctx, c.DSN("postgres"))
		ccancel()
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgtest: server in %s does not accept connections: %w\n--- tail of server log %s ---\n%s",
				c.dir, err, c.logFile, c.LogTail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// running reports whether a server runs on the data directory
// (pg_ctl status).
func (c *Cluster) running(ctx context.Context) bool {
	return c.serverCmd(ctx, "pg_ctl", "status", "-D", c.dataDir).Run() == nil
}

// Running reports whether the cluster's server is running.
func (c *Cluster) Running(ctx context.Context) bool { return c.running(ctx) }

// EnsureRunning starts the server again if it is not running (for instance
// after Stop or Kill) and waits until it accepts connections.
func (c *Cluster) EnsureRunning(ctx context.Context) error {
	if c.running(ctx) {
		return nil
	}
	if _, err := c.pgCtl(ctx, "start", "-w", "-t", strconv.Itoa(startTimeout), "-D", c.dataDir, "-l", c.logFile); err != nil {
		return fmt.Errorf("pgtest: starting cluster in %s: %w", c.dir, err)
	}
	return c.waitReady(ctx)
}

// Stop stops the server (pg_ctl stop -m fast) and waits until it is down.
// Stopping a stopped cluster is not an error.
func (c *Cluster) Stop(ctx context.Context) error {
	return c.stop(ctx, "fast")
}

// Kill stops the server abruptly (pg_ctl stop -m immediate), as a crash
// would: the next start runs crash recovery.
func (c *Cluster) Kill() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*startTimeout*time.Second)
	defer cancel()
	return c.stop(ctx, "immediate")
}

func (c *Cluster) stop(ctx context.Context, mode string) error {
	if !c.running(ctx) {
		return nil
	}
	if _, err := c.pgCtl(ctx, "stop", "-w", "-t", strconv.Itoa(startTimeout), "-D", c.dataDir, "-m", mode); err != nil {
		if !c.running(ctx) {
			return nil // it went down meanwhile
		}
		return fmt.Errorf("pgtest: stopping cluster in %s: %w", c.dir, err)
	}
	return nil
}

// Restart restarts the server on the same port and data with pg_ctl
// restart -m mode ("smart", "fast" or "immediate"; "" means "fast") and
// waits until it accepts connections. It starts a stopped server too.
func (c *Cluster) Restart(ctx context.Context, mode string) error {
	switch mode {
	case "":
		mode = "fast"
	case "smart", "fast", "immediate":
	default:
		return fmt.Errorf("pgtest: restart mode %q: want smart, fast or immediate", mode)
	}
	if _, err := c.pgCtl(ctx, "restart", "-w", "-t", strconv.Itoa(startTimeout), "-D", c.dataDir, "-m", mode, "-l", c.logFile); err != nil {
		return fmt.Errorf("pgtest: restarting cluster in %s: %w", c.dir, err)
	}
	return c.waitReady(ctx)
}

// Remove stops the server if it runs (immediately: the data is going away)
// and deletes the cluster directory (and its short socket directory, if
// any). A LogFile outside the cluster directory is kept.
func (c *Cluster) Remove() error {
	kerr := c.Kill()
	if kerr != nil && c.running(context.Background()) {
		return kerr
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if c.ownSocket {
		if err := os.RemoveAll(c.socketDir); err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
	}
	return nil
}

// Connect opens a pgx connection to database db as the superuser.
func (c *Cluster) Connect(ctx context.Context, db string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, c.DSN(db))
	if err != nil {
		return nil, fmt.Errorf("pgtest: connecting to %s on port %d: %w", db, c.port, err)
	}
	return conn, nil
}

// Exec connects to database db and runs sql with the simple query protocol,
// so sql may hold several statements (run as one implicit transaction unless
// it has its own BEGIN/COMMIT).
func (c *Cluster) Exec(ctx context.Context, db, sql string) error {
	conn, err := c.Connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgtest: exec in %s: %w", db, err)
	}
	return nil
}

// CreateDatabase creates database name (quoted as an identifier, so any
// name works) and returns its DSN.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := c.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return c.DSN(name), nil
}

// DropDatabase drops database name if it exists, disconnecting its
// sessions (WITH (FORCE)).
func (c *Cluster) DropDatabase(ctx context.Context, name string) error {
	return c.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// LoadSQLFile runs the SQL file at path in database db with
// `psql -v ON_ERROR_STOP=1 -q -X -f path` (psql from the cluster's BinDir),
// so psql meta-commands such as \copy work. The error includes psql's
// stderr.
func (c *Cluster) LoadSQLFile(ctx context.Context, db, path string) error {
	cmd := exec.CommandContext(ctx, c.Tool("psql"), "-v", "ON_ERROR_STOP=1", "-q", "-X", "-f", path, "-d", c.DSN(db))
	cmd.Env = cleanEnv()
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pgtest: psql -f %s in %s: %w\n%s", path, db, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// DumpSchema returns `pg_dump --schema-only` of database db, made with the
// cluster's own pg_dump; extra arguments are added to the command line.
// Callers normalize it as they need before comparing.
func (c *Cluster) DumpSchema(ctx context.Context, db string, extra ...string) (string, error) {
	args := append([]string{"--schema-only", "-d", c.DSN(db)}, extra...)
	cmd := exec.CommandContext(ctx, c.Tool("pg_dump"), args...)
	cmd.Env = cleanEnv()
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("pgtest: pg_dump of %s: %w\n%s", db, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
