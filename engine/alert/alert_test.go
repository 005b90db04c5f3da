package alert

import (
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
)

// hook is a webhook receiver on 127.0.0.1 that keeps what it got.
type hook struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []Alert
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a Alert
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &a) != nil {
			t.Errorf("webhook got %s %s %q", r.Method, r.Header.Get("Content-Type"), body)
		}
		h.mu.Lock()
		h.got = append(h.got, a)
		h.mu.Unlock()
	})}}
	h.srv.Start()
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) kinds() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, a := range h.got {
		out = append(out, a.Kind)
	}
	return out
}

func TestOncePerIncident(t *testing.T) {
	h := newHook(t)
	out := filepath.Join(t.TempDir(), "alerts.txt")
	a := New("orders", Config{
		LagSeconds: 10,
		Webhook:    h.srv.URL + "/hook",
		Command:    `printf '%s %s %s\n' "$SLUICE_ALERT_KIND" "$SLUICE_ALERT_PIPELINE" "$SLUICE_ALERT_LAG_SECONDS$SLUICE_ALERT_ERROR" >> ` + out,
	}, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	// Incident one: 12, 15, 11 fire once; 3 ends it. Incident two: 20.
	for _, lag := range []float64{0, 2, 12, 15, 11, 3, 4, 20, 25} {
		a.Lag(ctx, lag)
		a.Wait()
	}
	a.Failure(ctx, errors.New("sink: apply insert on\n\tpublic.t: boom"))
	a.Failure(ctx, errors.New("again"))
	a.Wait()

	if got, want := strings.Join(h.kinds(), ","), "lag,lag,failure"; got != want {
		t.Errorf("webhook got %s, want %s", got, want)
	}
	h.mu.Lock()
	first, fail := h.got[0], h.got[2]
	h.mu.Unlock()
	if first.Pipeline != "orders" || first.LagSeconds != 12 || first.ThresholdSeconds != 10 || !strings.Contains(first.Message, "12.0s") {
		t.Errorf("lag alert: %+v", first)
	}
	if fail.Error != "sink: apply insert on public.t: boom" {
		t.Errorf("failure alert error %q", fail.Error)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "lag orders 12.0\nlag orders 20.0\nfailure orders sink: apply insert on public.t: boom\n"
	if string(raw) != want {
		t.Errorf("command wrote %q, want %q", raw, want)
	}
}

func TestDisabled(t *testing.T) {
	if a := New("p", Config{LagSeconds: 5}, nil); a != nil {
		t.Fatal("an alerter with nowhere to deliver should be nil")
	}
	var a *Alerter
	a.Lag(context.Background(), 100)
	a.Failure(context.Background(), errors.New("x"))
	a.Wait()
}

func TestDeliveryFailuresAreLogged(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	var log strings.Builder
	var mu sync.Mutex
	a := New("p", Config{Webhook: srv.URL + "/secret-path?token=hunter2", Command: "exit 3", Timeout: 5 * time.Second},
		slog.New(slog.NewTextHandler(&lockedWriter{w: &log, mu: &mu}, nil)))
	start := time.Now()
	a.Failure(context.Background(), errors.New("boom"))
	if time.Since(start) > 5*time.Second {
		t.Error("failed deliveries took too long")
	}
	mu.Lock()
	defer mu.Unlock()
	for _, want := range []string{"alert webhook failed", "500", "alert command failed", "exit status 3"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if strings.Contains(log.String(), "hunter2") {
		t.Errorf("log shows the webhook's query string:\n%s", log.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
