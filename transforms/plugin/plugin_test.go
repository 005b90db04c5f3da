package plugin_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/transforms"
	"github.com/sluicehq/sluice/transforms/plugin"
)

// panicky is the test plugin testdata/panicky, built once by TestMain.
var panicky string

func TestMain(m *testing.M) {
	if p := os.Getenv("SLUICE_TEST_HOST_PLUGIN"); p != "" {
		hostAndWait(p)
		return
	}
	dir, err := os.MkdirTemp("", "sluice-plugin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	panicky, err = Build(dir, "./testdata/panicky")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Build runs `go build` on pkg into dir and returns the binary's path.
func Build(dir, pkg string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go build %s: the go command is not on PATH: %w", pkg, err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command(gobin, "build", "-o", out, pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out, nil
}

// syncBuffer is a log destination safe for the plugin's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func open(t *testing.T, cfg plugin.Config) (*plugin.Transform, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	if cfg.Path == "" {
		cfg.Path = panicky
	}
	cfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := plugin.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v\nlog:\n%s", err, logs)
	}
	t.Cleanup(func() { tr.Close() })
	return tr, logs
}

var people = &record.Relation{ID: 1, Table: record.TableName{Schema: "public", Name: "people"}, Columns: []record.Column{
	{Name: "id", TypeOID: 23, TypeName: "integer", Key: true},
	{Name: "name", TypeOID: 25, TypeName: "text"},
}}

func batch() *record.Batch {
	return &record.Batch{End: 42, Bytes: 10, Records: []record.Record{
		{Op: record.Insert, Rel: people, New: []record.Value{{Data: []byte("1")}, {Data: []byte("ada")}}},
		{Op: record.Insert, Rel: people, New: []record.Value{{Data: []byte("2")}, {Null: true}}},
	}}
}

func process(t *testing.T, tr transforms.Transform, b *record.Batch) (*record.Batch, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return tr.Process(ctx, b)
}

func checkUpper(t *testing.T, out *record.Batch) {
	t.Helper()
	if out.Len() != 2 || out.End != 42 {
		t.Fatalf("got %d records ending at %s", out.Len(), out.End)
	}
	if got := string(out.Records[0].New[1].Data); got != "ADA" {
		t.Errorf("value %q, want ADA", got)
	}
	if !out.Records[1].New[1].Null {
		t.Error("null lost")
	}
	if out.Records[0].Rel != people || out.Records[1].Rel != people {
		t.Error("relation pointer not preserved")
	}
}

func TestProcess(t *testing.T) {
	tr, logs := open(t, plugin.Config{})
	in := batch()
	out, err := process(t, tr, in)
	if err != nil {
		t.Fatal(err)
	}
	checkUpper(t, out)
	if string(in.Records[0].New[1].Data) != "ada" {
		t.Error("the input batch was modified")
	}
	if tr.Restarts() != 0 {
		t.Errorf("%d restarts", tr.Restarts())
	}
	// Both ends say they set up mutual TLS (go-plugin's debug messages).
	for _, want := range []string{"configuring client automatic mTLS", "configuring server automatic mTLS"} {
		waitLog(t, logs, want)
	}
}

// waitLog waits for want in the log: what the plugin writes to stderr
// arrives in its own time, not in step with calls.
func waitLog(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, logs)
		}
	}
}

func TestProcessConcurrent(t *testing.T) {
	tr, _ := open(t, plugin.Config{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				out, err := process(t, tr, batch())
				if err != nil {
					t.Error(err)
					return
				}
				checkUpper(t, out)
			}
		})
	}
	wg.Wait()
}

// A plugin that panics once is started again and the batch retried.
func TestPanicOnceRestartsAndRetries(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "panicked")
	tr, logs := open(t, plugin.Config{Env: []string{"PANICKY_MARKER=" + marker}})
	out, err := process(t, tr, batch())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, logs)
	}
	checkUpper(t, out)
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the plugin never panicked: %v", err)
	}
	if n := tr.Restarts(); n != 1 {
		t.Errorf("%d restarts, want 1", n)
	}
	log := logs.String()
	for _, want := range []string{"plugin crashed; restarting it and retrying the batch", "panic: panicky: first call", "plugin=" + panicky} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// And it goes on working.
	if out, err := process(t, tr, batch()); err != nil {
		t.Fatal(err)
	} else {
		checkUpper(t, out)
	}
}

// A plugin that does not answer within Timeout is handled as a crash.
func TestHungPluginRestarted(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "hung")
	tr, logs := open(t, plugin.Config{Env: []string{"PANICKY_HANG=" + marker}, Timeout: 500 * time.Millisecond})
	out, err := process(t, tr, batch())
	if err != nil {
		t.Fatalf("%v\nlog:\n%s", err, logs)
	}
	checkUpper(t, out)
	if n := tr.Restarts(); n != 1 {
		t.Errorf("%d restarts, want 1", n)
	}
	if !strings.Contains(logs.String(), "no answer within 500ms") {
		t.Errorf("log does not say why:\n%s", logs)
	}
}

// A plugin that keeps crashing parks the pipeline: a permanent error after
// MaxRestarts restarts, with the panic in it.
func TestAlwaysPanicsIsPermanent(t *testing.T) {
	tr, logs := open(t, plugin.Config{Env: []string{"PANICKY_ALWAYS=1"}, MaxRestarts: 2})
	out, err := process(t, tr, batch())
	if err == nil {
		t.Fatalf("no error; got %+v", out)
	}
	if !transforms.IsPermanent(err) {
		t.Errorf("not permanent: %v", err)
	}
	var crash *plugin.CrashError
	if !errors.As(err, &crash) {
		t.Fatalf("not a *CrashError: %T %v", err, err)
	}
	if crash.Crashes != 3 || crash.Restarts != 2 || crash.Path != panicky {
		t.Errorf("crash %+v", crash)
	}
	if !strings.Contains(err.Error(), "panic: panicky: always") {
		t.Errorf("error lacks the panic: %v", err)
	}
	if n := tr.Restarts(); n != 2 {
		t.Errorf("%d restarts, want 2\nlog:\n%s", n, logs)
	}
}

func TestPluginError(t *testing.T) {
	tr, logs := open(t, plugin.Config{Env: []string{"PANICKY_ERROR=card column missing"}})
	_, err := process(t, tr, batch())
	var perr *plugin.Error
	if !errors.As(err, &perr) || perr.Message != "card column missing" || perr.Path != panicky {
		t.Fatalf("got %T %v", err, err)
	}
	if transforms.IsPermanent(err) {
		t.Error("a plugin's own error is permanent")
	}
	if want := "plugin " + panicky + ": card column missing"; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
	if tr.Restarts() != 0 {
		t.Error("restarted after an error")
	}
	// The plugin's slog record reaches the host's log with its level.
	waitLog(t, logs, `level=WARN msg="refusing the batch" plugin=`+panicky+` records=2 logger=panicky`)
}

// A relation the plugin replaces comes back as one pointer for all its
// records, and the same pointer in the next batch.
func TestReplacedRelationIsStable(t *testing.T) {
	tr, _ := open(t, plugin.Config{Env: []string{"PANICKY_RENAME=people_v2"}})
	first, err := process(t, tr, batch())
	if err != nil {
		t.Fatal(err)
	}
	second, err := process(t, tr, batch())
	if err != nil {
		t.Fatal(err)
	}
	r := first.Records[0].Rel
	if r == people || r.Table.Name != "people_v2" || first.Records[1].Rel != r || second.Records[0].Rel != r {
		t.Errorf("relations %p %p %p (input %p), %+v", r, first.Records[1].Rel, second.Records[0].Rel, people, r)
	}
}

func TestChecksumPin(t *testing.T) {
	data, err := os.ReadFile(panicky)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	good := hex.EncodeToString(sum[:])
	tr, _ := open(t, plugin.Config{SHA256: good})
	if _, err := process(t, tr, batch()); err != nil {
		t.Fatal(err)
	}

	bad := strings.Repeat("ab", 32)
	_, err = plugin.Open(context.Background(), plugin.Config{Path: panicky, SHA256: bad})
	var cerr *plugin.ChecksumError
	if !errors.As(err, &cerr) || !transforms.IsPermanent(err) {
		t.Fatalf("got %T %v", err, err)
	}
	for _, want := range []string{panicky, good, bad} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]plugin.Config{
		"no path":        {},
		"missing":        {Path: filepath.Join(t.TempDir(), "nope")},
		"not executable": {Path: notExec},
		"bad pin":        {Path: panicky, SHA256: "xyz"},
		"bad env":        {Path: panicky, Env: []string{"NOEQUALS"}},
	} {
		if _, err := plugin.Open(context.Background(), cfg); err == nil || !transforms.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error", name, err)
		}
	}
}

// A binary that is not a plugin fails to start with what it said.
func TestNotAPlugin(t *testing.T) {
	script := filepath.Join(t.TempDir(), "notaplugin")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'I am not a plugin' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := plugin.Open(context.Background(), plugin.Config{Path: script, StartTimeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "I am not a plugin") {
		t.Fatalf("got %v", err)
	}
}

func TestClose(t *testing.T) {
	tr, _ := open(t, plugin.Config{})
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := process(t, tr, batch()); err == nil {
		t.Error("Process after Close succeeded")
	}
}

func BenchmarkProcess(b *testing.B) {
	tr, err := plugin.Open(context.Background(), plugin.Config{Path: panicky})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	rel := &record.Relation{ID: 2, Table: record.TableName{Schema: "public", Name: "wide"}}
	for i := range 8 {
		rel.Columns = append(rel.Columns, record.Column{Name: fmt.Sprintf("c%d", i), TypeOID: 25, TypeName: "text"})
	}
	in := &record.Batch{}
	for i := range 1000 {
		vals := make([]record.Value, 8)
		for j := range vals {
			vals[j].Data = fmt.Appendf(nil, "some text value %d in column %d", i, j)
		}
		in.Records = append(in.Records, record.Record{Op: record.Insert, Rel: rel, Format: record.Binary, New: vals})
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tr.Process(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "rows/s")
}

// transforms.ForTables in front of a plugin: only the chosen table's
// records reach it, and the batch keeps its order. (The test lives here,
// with a real plugin behind the wrapper.)
func TestForTables(t *testing.T) {
	tr, _ := open(t, plugin.Config{})
	other := &record.Relation{ID: 2, Table: record.TableName{Schema: "public", Name: "other"}, Columns: people.Columns}
	rec := func(rel *record.Relation, id, name string) record.Record {
		return record.Record{Op: record.Insert, Rel: rel, New: []record.Value{{Data: []byte(id)}, {Data: []byte(name)}}}
	}
	in := &record.Batch{End: 7, Records: []record.Record{
		rec(people, "1", "ada"), rec(other, "2", "bob"), rec(other, "3", "cy"),
		{Op: record.DDL, DDL: "CREATE TABLE x ()"}, rec(people, "4", "dee"), rec(other, "5", "eve"),
	}}
	onlyPeople := transforms.ForTables(tr, func(n record.TableName) bool { return n.Name == "people" })
	out, err := process(t, onlyPeople, in)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range out.Records {
		if r.Op == record.DDL {
			got = append(got, "ddl")
			continue
		}
		got = append(got, string(r.New[1].Data))
	}
	if want := "ADA bob cy ddl DEE eve"; strings.Join(got, " ") != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if out.End != 7 {
		t.Errorf("end %s", out.End)
	}

	// A transform that drops everything it sees drops only those records.
	dropAll := transforms.ForTables(transforms.Func(func(context.Context, *record.Batch) (*record.Batch, error) { return nil, nil }),
		func(n record.TableName) bool { return n.Name == "people" })
	out, err = process(t, dropAll, in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 4 || out.Records[0].New[0].Data[0] != '2' || out.Records[2].Op != record.DDL {
		t.Errorf("after dropping people: %+v", out.Records)
	}
}

// hostAndWait is the test binary run as a host by TestPluginExitsWithKilledHost:
// it starts the plugin and waits to be killed.
func hostAndWait(path string) {
	tr, err := plugin.Open(context.Background(), plugin.Config{Path: path, Env: []string{"PANICKY_PIDFILE=" + os.Getenv("SLUICE_TEST_PIDFILE")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer tr.Close()
	time.Sleep(time.Minute)
}

// A host killed with SIGKILL leaves no plugin process behind.
func TestPluginExitsWithKilledHost(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	pidfile := filepath.Join(t.TempDir(), "pid")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	host := exec.Command(self, "-test.run=^$")
	host.Env = append(os.Environ(), "SLUICE_TEST_HOST_PLUGIN="+panicky, "SLUICE_TEST_PIDFILE="+pidfile)
	host.Stderr = os.Stderr
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for deadline := time.Now().Add(20 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			host.Process.Kill()
			t.Fatal("the plugin never wrote its pid")
		}
		data, _ := os.ReadFile(pidfile)
		fmt.Sscan(string(data), &pid)
	}
	if err := host.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	host.Wait()
	for deadline := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("plugin process %d still running 10s after its host was killed", pid)
		}
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(data), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}
