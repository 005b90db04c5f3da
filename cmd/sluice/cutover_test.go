package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// cutoverJSON is the part of `sluice cutover --json` the tests read.
type cutoverJSON struct {
	SourceLSN    string `json:"source_lsn"`
	AppliedLSN   string `json:"applied_lsn"`
	LagBytes     int64  `json:"lag_bytes"`
	StreamedHere bool   `json:"streamed_here"`
	SourceLocked bool   `json:"source_locked"`
	RevokedNow   int    `json:"revoked_now"`
	Revoked      []struct {
		Table     string `json:"table"`
		Column    string `json:"column"`
		Role      string `json:"role"`
		Privilege string `json:"privilege"`
	} `json:"revoked"`
	Tables []struct {
		Source     string `json:"source"`
		SourceRows int64  `json:"source_rows"`
		SinkRows   int64  `json:"sink_rows"`
	} `json:"tables"`
	Superusers []string                `json:"superusers"`
	Sequences  []struct{ Sink string } `json:"sequences"`
	Mismatched []string                `json:"mismatched"`
	Next       []string                `json:"next"`
}

// execAs runs sql as the DSN's user and returns its error.
func execAs(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// TestCutover drives `sluice cutover` against a live `sluice run`: with
// --lock-source the application role's writes at the source fail with
// permission denied while the sink has every row and its sequences are
// past the source's (inserts at the sink through the defaults succeed); a
// second cutover revokes nothing new and succeeds; with the live run
// stopped (SIGSTOP) a short --timeout fails with a clear error;
// --unlock-source gives the privileges back.
func TestCutover(t *testing.T) {
	ctx := testCtx(t)
	src, snk := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, snk)
	dropSlotsAtCleanup(t, srcDSN)
	db := dbOf(t, srcDSN)
	role := "cut_app_" + db // roles are cluster-wide: one per test database
	if err := src.Exec(ctx, db, `CREATE TABLE public.items (id serial PRIMARY KEY, v text);
		CREATE TABLE public.orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item int, note text);
		INSERT INTO public.items (v) SELECT 'v' || g FROM generate_series(1, 500) g;
		INSERT INTO public.orders (item) SELECT g FROM generate_series(1, 300) g;
		CREATE ROLE `+role+` LOGIN;
		GRANT SELECT, INSERT, UPDATE, DELETE ON public.items, public.orders TO `+role+`;
		GRANT UPDATE (note) ON public.orders TO `+role+`;
		GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO `+role+`;
		CREATE ROLE `+role+`_all LOGIN IN ROLE pg_write_all_data;`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = src.Exec(context.Background(), db, "DROP OWNED BY "+role+"; DROP ROLE IF EXISTS "+role+"; DROP ROLE IF EXISTS "+role+"_all")
	})
	appDSN := src.DSNAs(db, role, "")
	if err := execAs(ctx, appDSN, "INSERT INTO public.items (v) VALUES ('app')"); err != nil {
		t.Fatalf("fixture: the application role cannot write: %v", err)
	}
	const name, slot = "cutover", "sluice_cutover"
	dir := t.TempDir()
	file := writePipeline(t, dir, "cut.yaml", streamPipeline(name, "{parallel: 2}"))
	env := dsnEnv(srcDSN, dstDSN)
	runCaughtUp(t, dir, env, file, 2*time.Minute)

	live := startSluice(t, dir, env, "run", file)
	waitStreaming(t, ctx, live, srcDSN, slot, time.Minute)
	waitStatusRunning(t, filepath.Join(dir, "state"), time.Minute)
	// Writes while streaming advance both sequences.
	if err := execAs(ctx, appDSN, `INSERT INTO public.items (v) SELECT 'late' || g FROM generate_series(1, 200) g;
		INSERT INTO public.orders (item) SELECT g FROM generate_series(1, 100) g`); err != nil {
		t.Fatal(err)
	}

	r := sluice(t, dir, env, "cutover", "--lock-source", "--json", file)
	if r.code != 0 {
		t.Fatalf("sluice cutover --lock-source: %s", r)
	}
	var rep cutoverJSON
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("cutover --json: %v\n%s", err, r.stdout)
	}
	t.Logf("cutover: %s", r.stdout)
	if rep.StreamedHere || !rep.SourceLocked || rep.RevokedNow == 0 || rep.LagBytes != 0 || len(rep.Mismatched) != 0 || len(rep.Sequences) < 2 || len(rep.Tables) != 2 {
		t.Errorf("cutover report: want the live run to have applied (streamed_here false), the source locked, privileges revoked, lag 0, no mismatch, 2 sequences, 2 tables; got %+v", rep)
	}
	var sawColumn, sawApp bool
	for _, rv := range rep.Revoked {
		sawApp = sawApp || (rv.Role == role && rv.Privilege == "INSERT" && rv.Table == "public.items")
		sawColumn = sawColumn || (rv.Role == role && rv.Column == "note" && rv.Privilege == "UPDATE")
	}
	if !sawApp || !sawColumn {
		t.Errorf("revoked: want INSERT on public.items and UPDATE (note) on public.orders from %s; got %+v", role, rep.Revoked)
	}
	if !slices.Contains(rep.Superusers, role+"_all (member of pg_write_all_data)") || !slices.Contains(rep.Superusers, "postgres") {
		t.Errorf("report: the roles that can still write are %q, want postgres and %s_all (member of pg_write_all_data)", rep.Superusers, role)
	}
	for _, tb := range rep.Tables {
		if tb.SourceRows != tb.SinkRows || tb.SourceRows == 0 {
			t.Errorf("table %s: source %d rows, sink %d", tb.Source, tb.SourceRows, tb.SinkRows)
		}
	}
	assertSameData(t, ctx, srcDSN, dstDSN, "public.items", "public.orders")
	// The application can no longer write at the source.
	for _, sql := range []string{"INSERT INTO public.items (v) VALUES ('after')", "UPDATE public.orders SET note = 'x' WHERE id = 1", "DELETE FROM public.items WHERE id = 1"} {
		err := execAs(ctx, appDSN, sql)
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("at the locked source, %s as %s: got %v, want permission denied", sql, role, err)
		}
	}
	// At the sink, new ids from the defaults do not collide.
	for _, sql := range []string{"INSERT INTO public.items (v) VALUES ('at sink')", "INSERT INTO public.orders (item) VALUES (1)"} {
		if err := execAs(ctx, dstDSN, sql); err != nil {
			t.Errorf("at the sink after cutover, %s: %v", sql, err)
		}
	}

	// Again: safe, nothing revoked twice.
	r = sluice(t, dir, env, "cutover", "--lock-source", "--no-count", file)
	if r.code != 0 || !strings.Contains(r.stdout, "caught up") || !strings.Contains(r.stdout, "(0 by this run)") || !strings.Contains(r.stdout, "sluice drop") || !strings.Contains(r.stdout, "not counted") {
		t.Errorf("second cutover (--no-count): want exit 0, caught up, nothing newly revoked, tables not counted, and the next steps:\n%s", r)
	}
	t.Logf("second cutover:\n%s", r.stdout)
	// The sink handed out ids past the source's: the second cutover kept
	// its sequences (never backwards), so new ids still do not collide.
	if !strings.Contains(r.stdout, "kept: already past the source's") {
		t.Errorf("second cutover: the sink's sequences are past the source's, want them reported as kept:\n%s", r.stdout)
	}
	if err := execAs(ctx, dstDSN, "INSERT INTO public.items (v) VALUES ('at sink again'); INSERT INTO public.orders (item) VALUES (2)"); err != nil {
		t.Errorf("at the sink after a second cutover: %v", err)
	}

	// A run that does not apply: the cutover times out, saying so.
	live.signal(syscall.SIGSTOP)
	r = sluice(t, dir, env, "cutover", "--timeout", "3s", file)
	live.signal(syscall.SIGCONT)
	if r.code != 1 || !strings.Contains(r.stderr, "--timeout 3s") || !strings.Contains(r.stderr, "applied up to") || !strings.Contains(r.stderr, "--unlock-source") {
		t.Errorf("cutover with a stopped run and --timeout 3s: want exit 1 naming the timeout, the positions and the lock:\n%s", r)
	}
	t.Logf("timeout: %s", strings.TrimSpace(r.stderr))

	r = sluice(t, dir, env, "cutover", "--unlock-source", file)
	if r.code != 0 || !strings.Contains(r.stdout, "granted: GRANT INSERT ON \"public\".\"items\"") {
		t.Errorf("cutover --unlock-source: %s", r)
	}
	if err := execAs(ctx, appDSN, "INSERT INTO public.items (v) VALUES ('unlocked')"); err != nil {
		t.Errorf("after --unlock-source the application role still cannot write: %v", err)
	}
	live.signal(syscall.SIGTERM)
	live.wait(time.Minute)
}

// waitStatusRunning waits until the state dir's status file says a run is
// live.
func waitStatusRunning(t *testing.T, stateDir string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(filepath.Join(stateDir, "status.json"))
		if err == nil {
			var st struct {
				Running bool `json:"running"`
			}
			if json.Unmarshal(data, &st) == nil && st.Running {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no live run in %s's status after %s", stateDir, timeout)
}
