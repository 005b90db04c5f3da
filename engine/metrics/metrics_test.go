package metrics

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/engine/throttle"
)

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return string(body)
}

func TestServe(t *testing.T) {
	m := New("orders")
	th := throttle.New(throttle.Limits{Rows: 1000}, throttle.Limits{})
	m.WatchThrottle(th)
	m.AddRows(PhaseFull, "public.t", 10, 100)
	m.AddRows(PhaseIncremental, "public.t", 3, 30)
	m.SetChunks(4, 1)
	m.ChunkDone()
	m.Applied(2, 3, 20*time.Millisecond)
	m.SetLag(1.5, 4096)
	m.SetSlotRetained(1 << 20)
	m.Retry("connection")
	m.SetPhase("copy")
	m.SetPhase("stream")
	if err := th.Full.Wait(context.Background(), 200, 0); err != nil {
		t.Fatal(err)
	}
	srv, err := Listen("127.0.0.1:0", m, func() any { return map[string]string{"phase": "stream"} }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	body := get(t, "http://"+srv.Addr()+"/metrics")
	for _, want := range []string{
		`sluice_rows_total{phase="full",pipeline="orders",table="public.t"} 10`,
		`sluice_bytes_total{phase="incremental",pipeline="orders",table="public.t"} 30`,
		`sluice_copy_chunks{pipeline="orders"} 4`,
		`sluice_copy_chunks_done_total{pipeline="orders"} 1`,
		`sluice_stream_transactions_total{pipeline="orders"} 2`,
		`sluice_apply_batch_rows_count{pipeline="orders"} 1`,
		`sluice_apply_batch_duration_seconds_sum{pipeline="orders"} 0.02`,
		`sluice_lag_seconds{pipeline="orders"} 1.5`,
		`sluice_lag_bytes{pipeline="orders"} 4096`,
		`sluice_slot_retained_wal_bytes{pipeline="orders"} 1.048576e+06`,
		`sluice_retries_total{class="connection",pipeline="orders"} 1`,
		`sluice_retries_total{class="other",pipeline="orders"} 0`,
		`sluice_phase{phase="copy",pipeline="orders"} 0`,
		`sluice_phase{phase="stream",pipeline="orders"} 1`,
		`sluice_throttle_waits_total{limit="rows",phase="full",pipeline="orders"} `,
		`sluice_throttle_wait_seconds_total{limit="rows",phase="incremental",pipeline="orders"} 0`,
		"\ngo_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, `sluice_throttle_waits_total{limit="rows",phase="full",pipeline="orders"} 0`) {
		t.Error("the throttle's wait is not counted")
	}
	var st map[string]string
	if err := json.Unmarshal([]byte(get(t, "http://"+srv.Addr()+"/status")), &st); err != nil || st["phase"] != "stream" {
		t.Errorf("/status: %v %v", st, err)
	}
	if _, err := Listen(srv.Addr(), m, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Errorf("listening twice on one address: %v", err)
	}
}

func TestNil(t *testing.T) {
	var m *Metrics
	m.AddRows(PhaseFull, "t", 1, 1)
	m.SetChunks(1, 0)
	m.ChunkDone()
	m.Applied(1, 1, time.Second)
	m.SetLag(1, 1)
	m.SetSlotRetained(1)
	m.Retry("other")
	m.SetPhase("copy")
	m.WatchThrottle(nil)
	if m.Registry() != nil {
		t.Error("nil metrics have a registry")
	}
}
