package engine_test

// Integration test of alerts against real clusters: lag is made by
// throttling the stream below a burst of writes, failure by a sink that
// refuses a row. The receivers are the test's own: an HTTP
// server on 127.0.0.1 and a shell command writing a file.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/alert"
	"github.com/sluicehq/sluice/engine/throttle"
)

// webhook records the JSON bodies posted to it.
type webhook struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []map[string]any
	errs []string
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &webhook{}
	w.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m map[string]any
		w.mu.Lock()
		defer w.mu.Unlock()
		if r.Method != http.MethodPost || json.Unmarshal(body, &m) != nil {
			w.errs = append(w.errs, r.Method+" "+string(body))
			return
		}
		w.got = append(w.got, m)
	})}}
	w.srv.Start()
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) kinds() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, m := range w.got {
		k, _ := m["kind"].(string)
		out = append(out, k)
	}
	return out
}

// waitKinds waits until the webhook has received n alerts.
func (w *webhook) waitKinds(t *testing.T, n int, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if k := w.kinds(); len(k) >= n {
			return k
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("webhook: %d alerts within %s, want %d: %v", len(w.kinds()), within, n, w.kinds())
	return nil
}

// TestAlerts streams with rows_per_sec 1000 and a lag threshold of 2s.
// Two bursts of 6000 rows each make a lag incident (about 6s behind):
// exactly one lag alert each, the second only after lag went back under
// the threshold. Then the sink refuses a row (a check constraint the
// source lacks), applying fails until the retry window ends, and exactly
// one failure alert goes out. The command
// hook writes each alert to a file.
func TestAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20-second streaming test")
	}
	e := newEnv(t)
	const pipeline = "alerts"
	t.Cleanup(func() { dropSlotsOf(t, e.src, e.srcDB) })
	e.srcExec(`CREATE SCHEMA app; CREATE TABLE app.s (id bigserial PRIMARY KEY, pad text)`)
	hook := newWebhook(t)
	out := filepath.Join(t.TempDir(), "alerts.log")
	cfg := e.config(schemaSel("app")...)
	cfg.Name = pipeline
	cfg.Incremental = true
	cfg.Heartbeat = 200 * time.Millisecond
	cfg.StatusInterval = time.Second
	// Shorter than the lag threshold: the stuck stream must not open a
	// third lag incident before the run gives up.
	cfg.RetryOther = 500 * time.Millisecond
	cfg.Throttle = throttle.New(throttle.Limits{}, throttle.Limits{Rows: 1000})
	var logBuf lockedBuffer
	cfg.Log = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("engine log:\n%s", logBuf.String())
		}
	})
	cfg.Alerts = alert.Config{
		LagSeconds: 2,
		Webhook:    hook.srv.URL + "/hook",
		Command:    `echo "$SLUICE_ALERT_KIND $SLUICE_ALERT_PIPELINE" >> '` + out + `'`,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { _, err := engine.Run(ctx, cfg); runErr <- err }()
	waitSlotActive(t, e.srcDSN, "sluice_"+pipeline, runErr)

	caughtUp := func() {
		t.Helper()
		want := queryInt(t, e.srcDSN, "SELECT count(*) FROM app.s")
		deadline := time.Now().Add(time.Minute)
		for queryInt(t, e.dstDSN, "SELECT count(*) FROM app.s") < want {
			if time.Now().After(deadline) {
				t.Fatal("the sink did not catch up")
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Heartbeats every 200ms bring lag back under the threshold.
		time.Sleep(1500 * time.Millisecond)
	}
	for i := 1; i <= 2; i++ {
		e.srcExec(`INSERT INTO app.s (pad) SELECT 'burst' FROM generate_series(1, 6000)`)
		hook.waitKinds(t, i, 20*time.Second)
		caughtUp()
		if k := hook.kinds(); len(k) != i {
			t.Fatalf("after lag incident %d the webhook got %v; want %d lag alerts", i, k, i)
		}
	}

	// Failure: the sink refuses the next row; the run stops at once
	// (parked: a rejected row is not retried).
	e.dstExec(`ALTER TABLE app.s ADD CONSTRAINT sink_refuses CHECK (pad <> 'refused')`)
	e.srcExec(`INSERT INTO app.s (pad) VALUES ('refused')`)
	select {
	case err := <-runErr:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("engine.Run ended with %v, want the apply error", err)
		}
		t.Logf("run failed as it should: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the run did not stop after the sink refused a row")
	}
	// Run delivers the failure alert before it returns.
	if got, want := strings.Join(hook.kinds(), ","), "lag,lag,failure"; got != want {
		t.Errorf("webhook got %s, want %s", got, want)
	}
	hook.mu.Lock()
	if len(hook.errs) > 0 {
		t.Errorf("webhook got bad requests: %v", hook.errs)
	}
	for _, m := range hook.got {
		if m["pipeline"] != pipeline {
			t.Errorf("alert for pipeline %v: %v", m["pipeline"], m)
		}
		if m["kind"] == "lag" && (m["lag_seconds"].(float64) < 2 || m["threshold_seconds"].(float64) != 2) {
			t.Errorf("lag alert: %v", m)
		}
		if m["kind"] == "failure" && !strings.Contains(m["error"].(string), "sink_refuses") {
			t.Errorf("failure alert does not name the table: %v", m)
		}
	}
	hook.mu.Unlock()
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("the alert command wrote nothing: %v", err)
	}
	if got, want := string(raw), "lag alerts\nlag alerts\nfailure alerts\n"; got != want {
		t.Errorf("the alert command wrote %q, want %q", got, want)
	}
	// The status file records the failure.
	st, found, err := engine.ReadStatus(cfg.StateDir)
	if err != nil || !found {
		t.Fatalf("status file: found %v, %v", found, err)
	}
	if st.Running || !strings.Contains(st.Error, "sink_refuses") || st.Phase != "stream" || st.Stream == nil || st.Stream.Rows < 12000 || !strings.Contains(st.Error, "parked") {
		t.Errorf("status after the failure: %+v (stream %+v)", st, st.Stream)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
