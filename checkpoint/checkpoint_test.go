package checkpoint

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a child process: with childModeEnv set,
// TestMain runs runChild instead of the tests.
const (
	childModeEnv = "SLUICE_CHECKPOINT_TEST_CHILD"
	childDirEnv  = "SLUICE_CHECKPOINT_TEST_DIR"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(runChild(mode, os.Getenv(childDirEnv)))
	}
	os.Exit(m.Run())
}

// runChild is the body of a child process. It reports on stdout and returns
// the exit code.
func runChild(mode, dir string) int {
	ctx := context.Background()
	switch mode {
	case "crash-exit", "crash-kill":
		s, err := Open(ctx, dir, nil)
		if err != nil {
			fmt.Println("open:", err)
			return 2
		}
		if err := s.Put("v1/test/crash", "survives"); err != nil {
			fmt.Println("put:", err)
			return 2
		}
		if err := s.SetPosition(0x16B3748); err != nil {
			fmt.Println("position:", err)
			return 2
		}
		if err := s.MarkChunkDone(`"public"."t"`, 7, ChunkDone{Rows: 70}); err != nil {
			fmt.Println("mark:", err)
			return 2
		}
		fmt.Println("written")
		// No Close: the process ends as abruptly as a crash.
		if mode == "crash-kill" {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
		os.Exit(0)
	case "tryopen":
		s, err := Open(ctx, dir, nil)
		if err == nil {
			s.Close()
			fmt.Println("opened")
			return 1
		}
		fmt.Println(err)
		var inUse *InUseError
		if !errors.As(err, &inUse) {
			return 1
		}
		return 0
	case "rss":
		fmt.Println("before", procStatus("VmHWM"), procStatus("VmRSS"))
		start := time.Now()
		s, err := Open(ctx, dir, nil)
		if err != nil {
			fmt.Println("open:", err)
			return 2
		}
		fmt.Println("opened", procStatus("VmHWM"), procStatus("VmRSS"))
		const n = 10000
		for i := range n {
			d := ChunkDone{Rows: int64(i) * 1000, Bytes: int64(i) * 65536, At: time.Now()}
			if err := s.MarkChunkDone(fmt.Sprintf(`"public"."table_%03d"`, i%100), i, d); err != nil {
				fmt.Println("mark:", err)
				return 2
			}
		}
		fmt.Println("written", procStatus("VmHWM"), procStatus("VmRSS"), procStatus("RssAnon"), procStatus("RssFile"), "elapsed", time.Since(start).Round(time.Millisecond))
		if err := s.Close(); err != nil {
			fmt.Println("close:", err)
			return 2
		}
		fmt.Println("closed", procStatus("VmHWM"), procStatus("VmRSS"))
		return 0
	}
	fmt.Println("unknown child mode", mode)
	return 2
}

// procStatus returns "Name=value" of one field of /proc/self/status.
func procStatus(name string) string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return name + "=?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return name + "=" + strings.Join(strings.Fields(v), "")
		}
	}
	return name + "=?"
}

// runChildProcess runs the test binary in mode on dir and returns its
// output and exit error.
func runChildProcess(t *testing.T, mode, dir string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childModeEnv+"="+mode, childDirEnv+"="+dir)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func openStore(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testWriter sends badger's warnings to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func samplePlan(table string) *TablePlan {
	return &TablePlan{
		Table:      table,
		Method:     MethodKey,
		KeyColumns: []string{"id", "tenant"},
		Chunks: []Chunk{
			{ID: 0, Lo: nil, Hi: []string{"100", "a"}, EstRows: 100},
			{ID: 1, Lo: []string{"100", "a"}, Hi: []string{"200", "b/\"c"}, EstRows: 100},
			{ID: 2, Lo: []string{"200", "b/\"c"}, Hi: nil, EstRows: 50},
			{ID: 3, Lo: []string{}, Hi: []string{""}, EstRows: 0},
		},
		SnapshotID: "00000003-00000002-1",
		PlannedAt:  time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.UTC),
	}
}

func plansEqual(a, b *TablePlan) bool {
	if !a.PlannedAt.Equal(b.PlannedAt) {
		return false
	}
	ac, bc := *a, *b
	ac.PlannedAt, bc.PlannedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(ac, bc)
}

func TestRoundTrips(t *testing.T) {
	s := openStore(t, t.TempDir())

	if s.Dir() == "" {
		t.Error("Dir() is empty")
	}

	// Identity.
	if _, found, err := s.Identity(); err != nil || found {
		t.Fatalf("Identity on empty store = found %v, err %v", found, err)
	}
	id := &Identity{
		Pipeline: "orders", SourceSystemID: "7312345678901234567", SourceDatabase: "app",
		SinkDatabase: "app_copy", Slot: "sluice_orders", Publication: "sluice_orders",
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600)),
	}
	must(t, s.SetIdentity(id))
	got, found, err := s.Identity()
	if err != nil || !found {
		t.Fatalf("Identity = found %v, err %v", found, err)
	}
	if !got.CreatedAt.Equal(id.CreatedAt) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, id.CreatedAt)
	}
	g, w := *got, *id
	g.CreatedAt, w.CreatedAt = time.Time{}, time.Time{}
	if g != w {
		t.Errorf("Identity = %+v, want %+v", g, w)
	}
	if err := s.SetIdentity(nil); err == nil {
		t.Error("SetIdentity(nil) succeeded")
	}

	// Phase.
	if p, err := s.Phase(); err != nil || p != PhaseNew {
		t.Fatalf("Phase on empty store = %q, %v; want %q", p, err, PhaseNew)
	}
	for _, p := range []Phase{PhaseSchema, PhaseCopy, PhasePostData, PhaseStream, PhaseDone, PhaseNew} {
		must(t, s.SetPhase(p))
		if got, err := s.Phase(); err != nil || got != p {
			t.Errorf("Phase = %q, %v; want %q", got, err, p)
		}
	}
	if err := s.SetPhase("copying"); err == nil {
		t.Error(`SetPhase("copying") succeeded`)
	}

	// Position.
	if lsn, err := s.Position(); err != nil || lsn != 0 {
		t.Fatalf("Position on empty store = %d, %v", lsn, err)
	}
	for _, lsn := range []uint64{1, 0x16B3748, math.MaxUint64, 1<<53 + 1} {
		must(t, s.SetPosition(lsn))
		if got, err := s.Position(); err != nil || got != lsn {
			t.Errorf("Position = %d, %v; want %d", got, err, lsn)
		}
	}

	// Plans.
	table := `"public"."orders"`
	if _, found, err := s.TablePlan(table); err != nil || found {
		t.Fatalf("TablePlan on empty store = found %v, err %v", found, err)
	}
	plan := samplePlan(table)
	must(t, s.PutTablePlan(plan))
	gotPlan, found, err := s.TablePlan(table)
	if err != nil || !found {
		t.Fatalf("TablePlan = found %v, err %v", found, err)
	}
	if !plansEqual(gotPlan, plan) {
		t.Errorf("TablePlan = %+v\nwant %+v", gotPlan, plan)
	}
	if gotPlan.Chunks[0].Lo != nil || gotPlan.Chunks[2].Hi != nil {
		t.Error("unbounded (nil) chunk bounds did not stay nil")
	}
	if gotPlan.Chunks[3].Lo == nil {
		t.Error("empty (non-nil) chunk bound came back nil")
	}
	other := samplePlan(`"public"."customers"`)
	other.Method = MethodCTID
	must(t, s.PutTablePlan(other))
	plans, err := s.TablePlans()
	must(t, err)
	if len(plans) != 2 {
		t.Fatalf("TablePlans returned %d plans, want 2", len(plans))
	}
	for _, p := range plans {
		want := plan
		if p.Table == other.Table {
			want = other
		}
		if !plansEqual(p, want) {
			t.Errorf("TablePlans has %+v, want %+v", p, want)
		}
	}
	for _, bad := range []*TablePlan{
		nil,
		{Method: MethodKey},
		{Table: "t", Method: "range"},
		{Table: "t", Method: MethodWhole, Chunks: []Chunk{{ID: 1}, {ID: 1}}},
		{Table: "t", Method: MethodWhole, Chunks: []Chunk{{ID: -1}}},
	} {
		if err := s.PutTablePlan(bad); err == nil {
			t.Errorf("PutTablePlan(%+v) succeeded", bad)
		}
	}

	// Done marks.
	at := time.Date(2025, 3, 1, 13, 0, 0, 0, time.UTC)
	must(t, s.MarkChunkDone(table, 2, ChunkDone{Rows: 50, Bytes: 5000, At: at}))
	must(t, s.MarkChunkDone(table, 0, ChunkDone{Rows: 100, Bytes: 10000, At: at}))
	done, err := s.DoneChunks(table)
	must(t, err)
	if len(done) != 2 || done[0].Rows != 100 || done[2].Bytes != 5000 || !done[2].At.Equal(at) {
		t.Errorf("DoneChunks = %+v", done)
	}
	if err := s.MarkChunkDone(table, -1, ChunkDone{}); err == nil {
		t.Error("MarkChunkDone with negative chunk succeeded")
	}

	// Generic API.
	type rec struct {
		A string
		B []int
	}
	var r rec
	if found, err := s.Get("v1/test/missing", &r); err != nil || found {
		t.Fatalf("Get missing = %v, %v", found, err)
	}
	must(t, s.Put("v1/test/x", rec{A: "a", B: []int{1, 2}}))
	if found, err := s.Get("v1/test/x", &r); err != nil || !found || r.A != "a" || len(r.B) != 2 {
		t.Fatalf("Get = %v, %v, %+v", found, err, r)
	}
	if found, err := s.Get("v1/test/x", nil); err != nil || !found {
		t.Fatalf("Get with nil value = %v, %v", found, err)
	}
	var wrong int
	if _, err := s.Get("v1/test/x", &wrong); err == nil || !strings.Contains(err.Error(), "v1/test/x") {
		t.Errorf("Get into wrong type: err = %v, want a decode error naming the key", err)
	}
	must(t, s.Delete("v1/test/x"))
	must(t, s.Delete("v1/test/never-there"))
	if found, err := s.Get("v1/test/x", &r); err != nil || found {
		t.Fatalf("Get after Delete = %v, %v", found, err)
	}
	if err := s.Put("", 1); err == nil {
		t.Error("Put with empty key succeeded")
	}
	if err := s.Put("v1/test/bad", func() {}); err == nil {
		t.Error("Put of a value JSON cannot encode succeeded")
	}

	// Scan is in key order and limited to the prefix.
	for _, k := range []string{"v1/scan/b", "v1/scan/a", "v1/scan/c/1", "v1/scan/c", "v1/scan", "v1/scanner"} {
		must(t, s.Put(k, k))
	}
	var keys []string
	must(t, s.Scan("v1/scan/", func(key string, raw []byte) error {
		if want := `"` + key + `"`; string(raw) != want {
			t.Errorf("Scan raw for %s = %s, want %s", key, raw, want)
		}
		keys = append(keys, key)
		return nil
	}))
	if want := []string{"v1/scan/a", "v1/scan/b", "v1/scan/c", "v1/scan/c/1"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("Scan keys = %q, want %q", keys, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Scan("v1/scan/", func(string, []byte) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("Scan with failing fn = %v after %d calls; want the fn's error after 1", err, n)
	}

	// DeletePrefix.
	must(t, s.DeletePrefix("v1/scan/"))
	keys = nil
	must(t, s.Scan("v1/scan", func(key string, _ []byte) error { keys = append(keys, key); return nil }))
	if want := []string{"v1/scan", "v1/scanner"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("after DeletePrefix keys = %q, want %q", keys, want)
	}
	if err := s.DeletePrefix(""); err == nil {
		t.Error("DeletePrefix(\"\") succeeded")
	}
}

func TestUpdateAtomic(t *testing.T) {
	s := openStore(t, t.TempDir())
	must(t, s.Put("v1/test/old", 1))

	// A failing fn writes nothing.
	boom := errors.New("boom")
	err := s.Update(func(tx *Tx) error {
		must(t, tx.Put("v1/test/a", 1))
		must(t, tx.Delete("v1/test/old"))
		return boom
	})
	if err != boom {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if found, _ := s.Get("v1/test/a", nil); found {
		t.Error("write of a failed Update is visible")
	}
	if found, _ := s.Get("v1/test/old", nil); !found {
		t.Error("delete of a failed Update took effect")
	}

	// A successful fn commits everything; Tx.Get sees the tx's own writes.
	must(t, s.Update(func(tx *Tx) error {
		must(t, tx.Put("v1/test/a", 1))
		must(t, tx.Put("v1/test/b", "two"))
		must(t, tx.Delete("v1/test/old"))
		var v int
		if found, err := tx.Get("v1/test/a", &v); err != nil || !found || v != 1 {
			t.Errorf("Tx.Get of own write = %v, %v, %d", found, err, v)
		}
		if found, err := tx.Get("v1/test/old", nil); err != nil || found {
			t.Errorf("Tx.Get of own delete = %v, %v", found, err)
		}
		return nil
	}))
	var b string
	if found, _ := s.Get("v1/test/b", &b); !found || b != "two" {
		t.Errorf("after Update b = %q (found %v)", b, found)
	}
	if found, _ := s.Get("v1/test/old", nil); found {
		t.Error("delete in Update did not take effect")
	}

	// Concurrent read-modify-write Updates conflict and are retried, so
	// no increment is lost.
	const workers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				errs <- s.Update(func(tx *Tx) error {
					var n int
					if _, err := tx.Get("v1/test/counter", &n); err != nil {
						return err
					}
					return tx.Put("v1/test/counter", n+1)
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if _, err := s.Get("v1/test/counter", &n); err != nil || n != workers*each {
		t.Errorf("counter = %d, %v; want %d", n, err, workers*each)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir, nil)
	must(t, err)
	id := &Identity{Pipeline: "p", Slot: "sluice_p", CreatedAt: time.Now().UTC()}
	must(t, s.SetIdentity(id))
	must(t, s.SetPhase(PhaseCopy))
	must(t, s.SetPosition(123456))
	plan := samplePlan(`"s"."t"`)
	must(t, s.PutTablePlan(plan))
	must(t, s.MarkChunkDone(plan.Table, 1, ChunkDone{Rows: 9}))
	big := strings.Repeat("x", valueThreshold*2) // lives in the value log
	must(t, s.Put("v1/test/big", big))
	must(t, s.Close())
	must(t, s.Close()) // a second Close is a no-op
	if err := s.Put("v1/test/after", 1); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Put after Close: err = %v, want a closed error", err)
	}
	if err := s.RunGC(); err == nil {
		t.Error("RunGC after Close succeeded")
	}

	s = openStore(t, dir)
	gotID, found, err := s.Identity()
	if err != nil || !found || gotID.Slot != "sluice_p" || !gotID.CreatedAt.Equal(id.CreatedAt) {
		t.Errorf("Identity after reopen = %+v, %v, %v", gotID, found, err)
	}
	if p, err := s.Phase(); err != nil || p != PhaseCopy {
		t.Errorf("Phase after reopen = %q, %v", p, err)
	}
	if lsn, err := s.Position(); err != nil || lsn != 123456 {
		t.Errorf("Position after reopen = %d, %v", lsn, err)
	}
	gotPlan, found, err := s.TablePlan(plan.Table)
	if err != nil || !found || !plansEqual(gotPlan, plan) {
		t.Errorf("TablePlan after reopen = %+v, %v, %v", gotPlan, found, err)
	}
	done, err := s.DoneChunks(plan.Table)
	if err != nil || len(done) != 1 || done[1].Rows != 9 {
		t.Errorf("DoneChunks after reopen = %+v, %v", done, err)
	}
	var gotBig string
	if found, err := s.Get("v1/test/big", &gotBig); err != nil || !found || gotBig != big {
		t.Errorf("big value after reopen: found %v, err %v, len %d", found, err, len(gotBig))
	}
}

// Tables whose names are prefixes of each other, or hold slashes, quotes,
// percent signs or unicode, never see each other's plans or done marks.
func TestTablesDoNotLeak(t *testing.T) {
	s := openStore(t, t.TempDir())
	tables := []string{
		"a", "ab", "a/", "a/b", "a%2Fb", "a%2F", `"a"`, `"public"."a"`, `"public"."a"."b"`,
		`"public"."a/b"`, `"sch/ema"."t"`, `"ü"."tàble 名"`, `"x""y"`, "a.b", "a b", "",
	}
	for i, tb := range tables {
		if tb == "" {
			continue
		}
		p := samplePlan(tb)
		p.SnapshotID = fmt.Sprint("snap-", i)
		must(t, s.PutTablePlan(p))
		for c := 0; c <= i; c++ {
			must(t, s.MarkChunkDone(tb, c, ChunkDone{Rows: int64(i)}))
		}
	}
	check := func(reset map[string]bool) {
		t.Helper()
		for i, tb := range tables {
			if tb == "" {
				continue
			}
			done, err := s.DoneChunks(tb)
			must(t, err)
			want := i + 1
			if reset[tb] {
				want = 0
			}
			if len(done) != want {
				t.Errorf("DoneChunks(%q) has %d marks, want %d", tb, len(done), want)
			}
			for c, d := range done {
				if d.Rows != int64(i) || c > i {
					t.Errorf("DoneChunks(%q) has chunk %d of another table: %+v", tb, c, d)
				}
			}
			p, found, err := s.TablePlan(tb)
			must(t, err)
			if found == reset[tb] {
				t.Errorf("TablePlan(%q) found = %v after reset of %v", tb, found, reset)
			}
			if found && p.SnapshotID != fmt.Sprint("snap-", i) {
				t.Errorf("TablePlan(%q) is another table's plan: %+v", tb, p)
			}
		}
	}
	check(nil)
	plans, err := s.TablePlans()
	must(t, err)
	if len(plans) != len(tables)-1 {
		t.Errorf("TablePlans returned %d plans, want %d", len(plans), len(tables)-1)
	}

	must(t, s.ResetTable("a"))
	must(t, s.ResetTable(`"public"."a"`))
	must(t, s.ResetTable("a/"))
	check(map[string]bool{"a": true, `"public"."a"`: true, "a/": true})

	for _, tb := range tables {
		if strings.Contains(KeyPart(tb), "/") {
			t.Errorf("KeyPart(%q) = %q contains a slash", tb, KeyPart(tb))
		}
	}
}

// A new plan starts with no chunk done, and ResetTable works with more done
// marks than fit in one transaction.
func TestPlanReplacementAndBigReset(t *testing.T) {
	s := openStore(t, t.TempDir())
	const table = `"public"."big"`
	must(t, s.PutTablePlan(samplePlan(table)))
	must(t, s.MarkChunkDone(table, 1, ChunkDone{Rows: 1}))
	must(t, s.PutTablePlan(samplePlan(table)))
	if done, err := s.DoneChunks(table); err != nil || len(done) != 0 {
		t.Fatalf("DoneChunks after a new plan = %v, %v; want none", done, err)
	}

	// Many marks, written in bulk (each MarkChunkDone would sync).
	const marks = 2*deleteBatch + 123
	for lo := 0; lo < marks; lo += 5000 {
		must(t, s.Update(func(tx *Tx) error {
			for c := lo; c < min(lo+5000, marks); c++ {
				if err := tx.Put(doneKey(table, c), ChunkDone{Rows: int64(c)}); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	must(t, s.MarkChunkDone("other", 1, ChunkDone{}))
	done, err := s.DoneChunks(table)
	must(t, err)
	if len(done) != marks || done[marks-1].Rows != marks-1 {
		t.Fatalf("DoneChunks has %d marks, want %d", len(done), marks)
	}
	must(t, s.ResetTable(table))
	if done, err := s.DoneChunks(table); err != nil || len(done) != 0 {
		t.Errorf("DoneChunks after ResetTable has %d marks, %v", len(done), err)
	}
	if _, found, err := s.TablePlan(table); err != nil || found {
		t.Errorf("TablePlan after ResetTable: found %v, %v", found, err)
	}
	if done, err := s.DoneChunks("other"); err != nil || len(done) != 1 {
		t.Errorf("DoneChunks(other) after ResetTable = %v, %v", done, err)
	}
}

func TestSecondOpenFailsInUse(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	must(t, s.Put("v1/test/k", 1))

	// In this process.
	_, err := Open(context.Background(), dir, nil)
	if err == nil {
		t.Fatal("second Open of an open state dir succeeded")
	}
	want := "state dir " + dir + " is in use by another sluice process ("
	if !strings.Contains(err.Error(), want) {
		t.Errorf("second Open: %v\nwant it to contain %q", err, want)
	}
	var inUse *InUseError
	if !errors.As(err, &inUse) || inUse.PID != os.Getpid() {
		t.Errorf("second Open: error %#v is not an InUseError with our pid", err)
	}
	t.Log("same process:", err)

	// In another process.
	out, err := runChildProcess(t, "tryopen", dir)
	if err != nil || !strings.Contains(out, want) || !strings.Contains(out, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("Open in a child process: exit %v, output %q; want the in-use error naming pid %d", err, out, os.Getpid())
	}
	t.Log("other process:", strings.TrimSpace(out))

	// The first store still works, and once closed the dir opens again.
	must(t, s.Put("v1/test/k", 2))
	must(t, s.Close())
	s2 := openStore(t, dir)
	var v int
	if found, err := s2.Get("v1/test/k", &v); err != nil || !found || v != 2 {
		t.Errorf("after reopen k = %d, %v, %v", v, found, err)
	}
}

func TestDirPermissions(t *testing.T) {
	base := t.TempDir()
	ctx := context.Background()

	fresh := filepath.Join(base, "new", "state")
	s, err := Open(ctx, fresh, nil)
	must(t, err)
	must(t, s.Close())
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("new state dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}

	existing := filepath.Join(base, "existing")
	must(t, os.Mkdir(existing, 0o755))
	must(t, os.Chmod(existing, 0o755))
	s, err = Open(ctx, existing, nil)
	must(t, err)
	must(t, s.Close())
	if fi, err := os.Stat(existing); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("existing state dir mode = %v, %v; want 0700", fi.Mode().Perm(), err)
	}

	file := filepath.Join(base, "file")
	must(t, os.WriteFile(file, nil, 0o600))
	if _, err := Open(ctx, file, nil); err == nil {
		t.Error("Open of a regular file succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Open(cancelled, filepath.Join(base, "c"), nil); err == nil {
		t.Error("Open with a cancelled context succeeded")
	}
}

// A write is durable when Put returns: a process that writes and then dies
// without Close leaves the value for the next Open.
func TestCrashKeepsWrites(t *testing.T) {
	for _, mode := range []string{"crash-exit", "crash-kill"} {
		t.Run(mode, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			out, err := runChildProcess(t, mode, dir)
			if !strings.Contains(out, "written") {
				t.Fatalf("child did not write: exit %v, output %q", err, out)
			}
			if mode == "crash-exit" && err != nil {
				t.Fatalf("child: %v, output %q", err, out)
			}
			if mode == "crash-kill" {
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("child was not killed: %v, output %q", err, out)
				}
			}
			s := openStore(t, dir)
			var v string
			if found, err := s.Get("v1/test/crash", &v); err != nil || !found || v != "survives" {
				t.Errorf("after crash: found %v, err %v, value %q", found, err, v)
			}
			if lsn, err := s.Position(); err != nil || lsn != 0x16B3748 {
				t.Errorf("Position after crash = %X, %v", lsn, err)
			}
			if done, err := s.DoneChunks(`"public"."t"`); err != nil || done[7].Rows != 70 {
				t.Errorf("DoneChunks after crash = %v, %v", done, err)
			}
		})
	}
}

func TestRunGC(t *testing.T) {
	s := openStore(t, t.TempDir())
	must(t, s.RunGC()) // empty store

	// Fill several value log files with big values, then make most of them
	// garbage.
	val := strings.Repeat("v", valueThreshold+1)
	for round := range 3 {
		must(t, s.Update(func(tx *Tx) error {
			for i := range 40 {
				if err := tx.Put(fmt.Sprintf("v1/test/big/%02d", i), fmt.Sprint(round, val)); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	must(t, s.DeletePrefix("v1/test/big/1"))
	must(t, s.RunGC())

	ctx, cancel := context.WithCancel(context.Background())
	s.StartGC(ctx, 10*time.Millisecond)
	s.StartGC(context.Background(), time.Hour) // stopped by Close
	time.Sleep(50 * time.Millisecond)
	cancel()
	var v string
	if found, err := s.Get("v1/test/big/05", &v); err != nil || !found || v != fmt.Sprint(2, val) {
		t.Errorf("value after GC: found %v, err %v, len %d", found, err, len(v))
	}
	must(t, s.Close())
	s.StartGC(context.Background(), time.Millisecond) // no-op after Close
}

// TestFootprint reports the memory of a process that opens a store and
// writes 10k keys (one synced write each), measured in a child process so
// the other tests do not count.
func TestFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	out, err := runChildProcess(t, "rss", filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		t.Log("footprint:", line)
	}
}

func TestKeyPart(t *testing.T) {
	for in, want := range map[string]string{
		"orders":             "orders",
		`"public"."orders"`:  "%22public%22.%22orders%22",
		"a/b":                "a%2Fb",
		"a%2Fb":              "a%252Fb",
		"é":                  "%C3%A9",
		"":                   "",
		"Tab_1-x.y":          "Tab_1-x.y",
		"sp ace":             "sp%20ace",
		string([]byte{0xff}): "%FF",
	} {
		if got := KeyPart(in); got != want {
			t.Errorf("KeyPart(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := doneKey(`"s"."t"`, 42), "v1/done/%22s%22.%22t%22/0000000042"; got != want {
		t.Errorf("doneKey = %q, want %q", got, want)
	}
	if got, want := planKey("a/b"), "v1/plan/a%2Fb"; got != want {
		t.Errorf("planKey = %q, want %q", got, want)
	}
}
