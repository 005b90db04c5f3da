package pgtest

// Test conveniences. Everything here that depends on package testing, and
// the only package-level mutable state of pgtest: the registry of the shared
// clusters of a test binary.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sharedCluster is one lazily started cluster shared by the tests of a
// test binary. Its own mutex lets Source and Sink start concurrently.
type sharedCluster struct {
	name     string
	mu       sync.Mutex
	c        *Cluster
	watchdog *os.File // write end of the watchdog's pipe; see startWatchdog
	skip     string   // reason to skip (binaries missing), once known
	err      error    // start failure, reported to every caller
	closed   bool     // Main has torn the shared clusters down
}

// registry is the package-level, mutex-guarded registry of the clusters
// shared per test binary (the one exception to the project's ban on
// package-level mutable state). Main tears them down after the tests.
var registry = struct {
	mu     sync.Mutex
	inMain bool
	source sharedCluster
	sink   sharedCluster
}{
	source: sharedCluster{name: "source"},
	sink:   sharedCluster{name: "sink"},
}

// Main is used from TestMain as `os.Exit(pgtest.Main(m))`. It runs the
// tests, then stops the clusters Source and Sink started and removes their
// directories. With PGTEST_KEEP set in the environment the clusters are
// stopped but their directories (data and server log) are kept and listed
// on stderr. If PostgreSQL binaries are missing the tests still run; those
// using Source, Sink or NewCluster skip, or fail if PGTEST_REQUIRE or
// PG_BINDIR is set.
func Main(m *testing.M) int {
	registry.mu.Lock()
	registry.inMain = true
	registry.mu.Unlock()

	code := m.Run()

	keep := os.Getenv("PGTEST_KEEP") != ""
	started := false
	for _, s := range []*sharedCluster{&registry.source, &registry.sink} {
		s.mu.Lock()
		if s.c != nil {
			started = true
			if keep {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				if err := s.c.Stop(ctx); err != nil {
					fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
				}
				cancel()
				fmt.Fprintf(os.Stderr, "pgtest: kept %s cluster in %s (log %s)\n", s.name, s.c.Dir(), s.c.LogFile())
			} else if err := s.c.Remove(); err != nil {
				fmt.Fprintf(os.Stderr, "pgtest: removing %s cluster: %v\n", s.name, err)
			}
			s.c = nil
		}
		if s.watchdog != nil {
			s.watchdog.Close()
			s.watchdog = nil
		}
		s.closed = true
		s.mu.Unlock()
	}
	if code != 0 && started && !keep {
		fmt.Fprintln(os.Stderr, "pgtest: set PGTEST_KEEP=1 to keep the clusters' data and server logs")
	}
	return code
}

// Source returns the shared "source" cluster of the test binary, started on
// first use in a temporary directory. Source and Sink are distinct clusters.
// If the server is down (a test stopped or killed it), it is started again.
// Without PostgreSQL binaries it skips the test (see Main). It needs
// TestMain to use Main. Tests that stop, kill or restart it must not run in
// parallel with other tests using it; NewCluster gives a private cluster
// instead.
func Source(t testing.TB) *Cluster {
	t.Helper()
	return registry.source.get(t)
}

// Sink returns the shared "sink" cluster of the test binary; see Source.
func Sink(t testing.TB) *Cluster {
	t.Helper()
	return registry.sink.get(t)
}

func (s *sharedCluster) get(t testing.TB) *Cluster {
	t.Helper()
	registry.mu.Lock()
	inMain := registry.inMain
	registry.mu.Unlock()
	if !inMain {
		t.Fatal("pgtest: Source/Sink need a TestMain calling os.Exit(pgtest.Main(m)), which removes the shared clusters")
	}

	c, skip, err := s.ensure(false)
	switch {
	case skip != "":
		t.Skip(skip)
	case err != nil:
		t.Fatalf("pgtest: shared %s cluster: %v", s.name, err)
	}
	return c
}

// sibling returns the other shared cluster.
func (s *sharedCluster) sibling() *sharedCluster {
	if s == &registry.source {
		return &registry.sink
	}
	return &registry.source
}

// ensure starts the shared cluster if it is not started yet, or starts its
// server again if it is down. Its first start also starts the sibling
// cluster in the background, since test packages nearly always use both:
// that halves the time to get both. (Main's teardown takes s.mu, so it waits
// for a start under way.) With onlyNew, as for that background start, it
// does nothing to a cluster started before.
func (s *sharedCluster) ensure(onlyNew bool) (c *Cluster, skip string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, "", errors.New("used after pgtest.Main tore the shared clusters down")
	}
	if s.skip != "" || s.err != nil {
		return nil, s.skip, s.err
	}
	if onlyNew && s.c != nil {
		return s.c, "", nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if s.c != nil {
		if err := s.c.EnsureRunning(ctx); err != nil {
			return nil, "", err
		}
		return s.c, "", nil
	}
	if _, err := BinDir(); err != nil {
		if mustHaveBinaries() {
			s.err = err
			return nil, "", err
		}
		s.skip = err.Error()
		return nil, s.skip, nil
	}
	go s.sibling().ensure(true)
	c, w, err := startTemp(ctx, s.name)
	if err != nil {
		s.err = fmt.Errorf("starting: %w", err)
		return nil, "", s.err
	}
	s.c, s.watchdog = c, w
	return c, "", nil
}

// NewCluster starts a private cluster in a temporary directory, removed by
// t.Cleanup: for tests that crash, stop or reconfigure their cluster.
// Settings are extra postgresql.conf settings. Without PostgreSQL binaries
// it skips the test (see Main).
func NewCluster(t testing.TB, settings map[string]string) *Cluster {
	t.Helper()
	return NewClusterOpts(t, Options{Settings: settings})
}

// NewClusterOpts is NewCluster with more options: Settings, Auth (password
// authentication for roles other than the superuser) and Fsync are used;
// Dir, Port and LogFile must be left empty (a temporary directory and a
// free port are used).
func NewClusterOpts(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir != "" || opts.Port != 0 || opts.LogFile != "" {
		t.Fatal("pgtest: NewClusterOpts picks Dir, Port and LogFile itself; leave them empty")
	}
	if _, err := BinDir(); err != nil {
		if mustHaveBinaries() {
			t.Fatal(err)
		}
		t.Skip(err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, w, err := startTemp(ctx, "private", func(o *Options) {
		o.Settings, o.Auth, o.Fsync = opts.Settings, opts.Auth, opts.Fsync
	})
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Remove(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
		if w != nil {
			w.Close()
		}
	})
	return c
}

// startTemp starts a cluster in a new temporary directory and a watchdog
// for it (unless PGTEST_KEEP is set).
func startTemp(ctx context.Context, name string, opt ...func(*Options)) (*Cluster, *os.File, error) {
	dir, err := os.MkdirTemp("", "pgtest-"+name+"-")
	if err != nil {
		return nil, nil, err
	}
	opts := Options{Dir: dir}
	for _, f := range opt {
		f(&opts)
	}
	c, err := Start(ctx, opts)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	if os.Getenv("PGTEST_KEEP") != "" {
		return c, nil, nil
	}
	w, err := startWatchdog(c)
	if err != nil {
		c.Remove()
		return nil, nil, err
	}
	return c, w, nil
}

// startWatchdog starts a detached shell that waits for the write end of a
// pipe (returned; the caller keeps it open) to close, then stops the
// cluster and deletes its directories. The write end closes when the caller
// closes it or when the test binary dies in any way (a panic, or go test's
// -timeout), so a crashed test binary leaves no server or temporary
// directory behind. It runs as the server's user.
func startWatchdog(c *Cluster) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pgtest: watchdog: %w", err)
	}
	defer r.Close()
	const script = `read -r _ignored
"$1" stop -D "$2" -m immediate -w >/dev/null 2>&1
rm -rf "$3" ${4:+"$4"} 2>/dev/null`
	sock := ""
	if c.ownSocket {
		sock = c.socketDir
	}
	cmd := exec.Command("/bin/sh", "-c", script, "pgtest-watchdog", c.Tool("pg_ctl"), c.dataDir, c.dir, sock)
	cmd.Dir = "/"
	cmd.Env = cleanEnv()
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: c.cred}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("pgtest: watchdog: %w", err)
	}
	go cmd.Wait()
	return w, nil
}

// mustHaveBinaries reports whether missing PostgreSQL binaries fail tests
// rather than skip them: when PGTEST_REQUIRE is set (for CI, where a silent
// skip would hide that nothing was tested) or PG_BINDIR is set (explicit
// configuration that is wrong).
func mustHaveBinaries() bool {
	return os.Getenv("PGTEST_REQUIRE") != "" || os.Getenv("PG_BINDIR") != ""
}

// NewDB creates a fresh, uniquely named database on c and returns its DSN.
// t.Cleanup drops it (WITH (FORCE)).
func NewDB(t testing.TB, c *Cluster) string {
	t.Helper()
	name := dbName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := c.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// A test may have left its cluster down; the database does not
		// matter then.
		if err := c.DropDatabase(ctx, name); err != nil && c.Running(ctx) {
			t.Errorf("pgtest: %v", err)
		}
	})
	return dsn
}

// dbName makes a database name from a test name: lower case letters,
// digits and underscores, plus a random suffix, within 63 bytes.
func dbName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 45 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	var rnd [4]byte
	rand.Read(rnd[:])
	b.WriteString("_" + hex.EncodeToString(rnd[:]))
	return b.String()
}
