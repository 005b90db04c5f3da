package main

// End-to-end test of metrics and `sluice status` through the binary:
// /metrics scraped during a throttled copy and during streaming, /status,
// and `sluice status` (text and JSON) before, during and after a run,
// with a password in the DSNs that must never be shown.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/postgres/pgtest"
)

// freeAddr returns a 127.0.0.1 address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpGet returns the body of a GET, or an error.
func httpGet(u string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return string(body), nil
}

// metricSum adds up the samples of a metric whose labels contain every
// one of labels (each like `phase="full"`), in the text exposition
// format. found is false when no sample matched.
func metricSum(body, name string, labels ...string) (sum float64, found bool) {
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		series, value, ok := strings.Cut(line, "} ")
		if !ok {
			series, value, _ = strings.Cut(line, " ")
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(series, l) {
				match = false
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// statusJSON is the part of `sluice status --json` the test reads.
type statusJSON struct {
	Pipeline string `json:"pipeline"`
	Live     bool   `json:"live"`
	Note     string `json:"note"`
	Run      *struct {
		PID     int    `json:"pid"`
		Running bool   `json:"running"`
		Phase   string `json:"phase"`
		Error   string `json:"error"`
		Tables  []struct {
			Table      string `json:"table"`
			Chunks     int    `json:"chunks"`
			ChunksDone int    `json:"chunks_done"`
			Rows       int64  `json:"rows"`
		} `json:"tables"`
		Stream *struct {
			AppliedLSN string  `json:"applied_lsn"`
			Rows       int64   `json:"rows"`
			LagSeconds float64 `json:"lag_seconds"`
		} `json:"stream"`
		Throttle *struct {
			Full struct {
				RowsPerSec float64 `json:"rows_per_sec"`
			} `json:"full"`
		} `json:"throttle"`
	} `json:"run"`
	Source struct {
		Error         string `json:"error"`
		SlotExists    bool   `json:"slot_exists"`
		ConfirmedLSN  string `json:"confirmed_lsn"`
		RetainedBytes int64  `json:"retained_wal_bytes"`
		Active        bool   `json:"active"`
		ActivePID     int    `json:"active_pid"`
	} `json:"source"`
	Sink struct {
		Error        string     `json:"error"`
		AppliedLSN   string     `json:"applied_lsn"`
		AppliedAt    *time.Time `json:"applied_at"`
		CopiedChunks int64      `json:"copied_chunks"`
	} `json:"sink"`
}

// TestMetricsAndStatus runs an incremental pipeline whose copy is throttled
// to 8000 rows/s (60000 rows: about 7s), with metrics on, and watches it
// from outside.
func TestMetricsAndStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20-second end-to-end run")
	}
	ctx := testCtx(t)
	const secret = "s3cr3t-Pa55"
	src, dst := pgtest.Source(t), pgtest.Sink(t)
	srcDSN, dstDSN := pgtest.NewDB(t, src), pgtest.NewDB(t, dst)
	obsDropSlots(t, srcDSN)
	if err := src.Exec(ctx, dbOf(t, srcDSN), `CREATE SCHEMA app;
		CREATE TABLE app.t (id bigserial PRIMARY KEY, pad text);
		INSERT INTO app.t (pad) SELECT repeat('m', 40) FROM generate_series(1, 60000);
		ANALYZE app.t;`); err != nil {
		t.Fatal(err)
	}
	// The servers trust local connections, so a password in the DSN is
	// accepted and ignored: it is there to be hidden.
	withPassword := func(dsn string) string {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), secret)
		return u.String()
	}
	env := dsnEnv(withPassword(srcDSN), withPassword(dstDSN))
	addr := freeAddr(t)
	dir := t.TempDir()
	file := writePipeline(t, dir, "obs.yaml", fmt.Sprintf(`name: obs_status
source: {dsn: "${SRC_DSN}"}
sink: {dsn: "${DST_DSN}"}
sync: {incremental: true}
objects:
  - schema: app
copy: {parallel: 2, chunk_rows: 1000}
stream: {heartbeat: 200ms}
throttle:
  full: {rows_per_sec: 8000}
metrics: {listen: "%s"}
state_dir: state
`, addr))
	var outputs []string
	status := func(args ...string) result {
		t.Helper()
		r := sluice(t, dir, env, append([]string{"status"}, append(args, file)...)...)
		outputs = append(outputs, r.stdout, r.stderr)
		if r.code != 0 {
			t.Fatalf("sluice status %v: want exit 0:\n%s", args, r)
		}
		return r
	}
	statusJ := func() statusJSON {
		t.Helper()
		r := status("--json")
		var s statusJSON
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("sluice status --json: %v\n%s", err, r.stdout)
		}
		return s
	}

	// Before any run.
	r := status()
	for _, want := range []string{"pipeline obs_status: not running", "has not run yet", "no replication slot sluice_obs_status"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status before the first run lacks %q:\n%s", want, r.stdout)
		}
	}

	p := startSluice(t, dir, env, "run", "--no-progress", file)
	scrape := func() string {
		t.Helper()
		body, err := httpGet("http://" + addr + "/metrics")
		if err != nil {
			t.Fatalf("scrape: %v\n%s", err, p.res)
		}
		return body
	}
	// Wait for the copy to move, then scrape twice a second apart.
	deadline := time.Now().Add(time.Minute)
	var copied1 float64
	for {
		if body, err := httpGet("http://" + addr + "/metrics"); err == nil {
			if v, ok := metricSum(body, "sluice_rows_total", `phase="full"`, `table="app.t"`); ok && v > 0 {
				copied1 = v
				break
			}
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("no copy progress on /metrics:\n%s", p.res)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	body := scrape()
	copied2, _ := metricSum(body, "sluice_rows_total", `phase="full"`, `table="app.t"`)
	chunksDone, _ := metricSum(body, "sluice_copy_chunks_done_total")
	chunks, _ := metricSum(body, "sluice_copy_chunks")
	t.Logf("copied rows on /metrics: %.0f, then %.0f a second later; chunks %.0f/%.0f", copied1, copied2, chunksDone, chunks)
	if copied2 <= copied1 || copied2-copied1 > 8000*1.5 {
		t.Errorf("copied rows went from %.0f to %.0f in a second at 8000 rows/s", copied1, copied2)
	}
	if chunks < 50 {
		t.Errorf("sluice_copy_chunks = %.0f, want about 60", chunks)
	}
	if v, ok := metricSum(body, "sluice_throttle_waits_total", `phase="full"`, `limit="rows"`); !ok || v == 0 {
		t.Errorf("no throttle waits on /metrics")
	}
	if v, _ := metricSum(body, "sluice_phase", `phase="copy"`); v != 1 {
		t.Errorf(`sluice_phase{phase="copy"} = %v during the copy`, v)
	}

	// `sluice status` during the copy.
	r = status()
	for _, want := range []string{"pipeline obs_status: running (pid", "phase: copy", "app.t", "throttle: full 8000 rows/s; incremental no limit"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status during the copy lacks %q:\n%s", want, r.stdout)
		}
	}
	s := statusJ()
	if !s.Live || s.Run == nil || s.Run.Phase != "copy" || len(s.Run.Tables) != 1 || s.Run.Tables[0].Chunks < 50 || s.Run.Tables[0].ChunksDone >= s.Run.Tables[0].Chunks {
		t.Errorf("status --json during the copy: %+v", s)
	} else if s.Run.PID != p.cmd.Process.Pid {
		t.Errorf("status names pid %d, the run is %d", s.Run.PID, p.cmd.Process.Pid)
	}

	// /status while streaming.
	deadline = time.Now().Add(time.Minute)
	for {
		body, err := httpGet("http://" + addr + "/status")
		var st struct {
			Phase string `json:"phase"`
		}
		if err == nil && json.Unmarshal([]byte(body), &st) == nil && st.Phase == "stream" {
			break
		}
		if p.exited() || time.Now().After(deadline) {
			t.Fatalf("/status never said phase stream (last: %s, %v):\n%s", body, err, p.res)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := src.Exec(ctx, dbOf(t, srcDSN), `INSERT INTO app.t (pad) SELECT 'streamed' FROM generate_series(1, 1000)`); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for queryInt(t, ctx, dstDSN, `SELECT count(*) FROM app.t`) < 61000 {
		if time.Now().After(deadline) {
			t.Fatalf("the streamed rows never arrived:\n%s", p.res)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Slot figures are read every 10s and the status every second.
	time.Sleep(1500 * time.Millisecond)
	body = scrape()
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"sluice_rows_total", []string{`phase="incremental"`, `table="app.t"`}, 1000},
		{"sluice_rows_total", []string{`phase="full"`, `table="app.t"`}, 60000},
		{"sluice_apply_batch_rows_count", nil, 1},
		{"sluice_apply_batch_duration_seconds_count", nil, 1},
		{"sluice_stream_transactions_total", nil, 1},
		{"sluice_phase", []string{`phase="stream"`}, 1},
		{"sluice_slot_retained_wal_bytes", nil, 1},
		{"sluice_lag_seconds", nil, 0},
		{"sluice_retries_total", []string{`class="connection"`}, 0},
	} {
		v, ok := metricSum(body, c.name, c.labels...)
		if !ok || v < c.min {
			t.Errorf("%s%v = %v (found %v), want at least %v", c.name, c.labels, v, ok, c.min)
		}
	}

	// `sluice status` while streaming.
	r = status()
	for _, want := range []string{"running (pid", "phase: stream", "stream: applied", "source: slot sluice_obs_status confirmed", "active (pid", "sink: applied up to"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status while streaming lacks %q:\n%s", want, r.stdout)
		}
	}
	s = statusJ()
	if !s.Live || s.Run.Phase != "stream" || s.Run.Stream == nil || s.Run.Stream.Rows < 1000 || !s.Source.Active || s.Source.ActivePID == 0 ||
		s.Source.RetainedBytes <= 0 || s.Sink.AppliedLSN == "" || s.Sink.AppliedAt == nil || s.Sink.CopiedChunks < 50 {
		t.Errorf("status --json while streaming: %+v (run %+v, stream %+v)", s, s.Run, s.Run.Stream)
	}

	// After the run.
	p.signal(syscall.SIGINT)
	res := p.wait(time.Minute)
	outputs = append(outputs, res.stdout, res.stderr)
	if res.code != 130 {
		t.Fatalf("sluice run after SIGINT: want exit 130:\n%s", res)
	}
	if _, err := httpGet("http://" + addr + "/metrics"); err == nil {
		t.Error("/metrics still answers after the run ended")
	}
	r = status()
	for _, want := range []string{"pipeline obs_status: not running; the last run was stopped", "phase: stream", "app.t", "inactive", "sink: applied up to"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status after the run lacks %q:\n%s", want, r.stdout)
		}
	}
	s = statusJ()
	if s.Live || s.Run == nil || s.Run.Running || s.Run.Phase != "stream" || s.Source.Active || !s.Source.SlotExists ||
		len(s.Run.Tables) != 1 || s.Run.Tables[0].ChunksDone != s.Run.Tables[0].Chunks || s.Run.Tables[0].Rows != 60000 {
		t.Errorf("status --json after the run: %+v (run %+v)", s, s.Run)
	}
	t.Logf("status after the run:\n%s", r.stdout)
	for _, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("the password shows in sluice's output:\n%s", out)
		}
	}
}
