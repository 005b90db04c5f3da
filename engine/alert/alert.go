// Package alert tells someone when a pipeline needs attention: its lag
// passed a threshold, or its run stopped with an error. An alert runs a
// command (through sh -c, the alert in SLUICE_ALERT_* environment
// variables) and/or POSTs the alert as JSON to a webhook.
//
// Each incident fires once: the lag alert fires when lag reaches the
// threshold and re-arms only after lag drops below it again; the failure
// alert fires once per run that stops with an error.
package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kinds of alert.
const (
	KindLag     = "lag"
	KindFailure = "failure"
)

// Config says when and how to alert. The zero value never alerts.
type Config struct {
	// LagSeconds is the lag threshold; zero disables the lag alert.
	LagSeconds float64
	// Command is run through sh -c with the alert in its environment.
	Command string
	// Webhook receives the alert as an HTTP POST of JSON.
	Webhook string
	// Timeout bounds each delivery (command or webhook); default 30s.
	Timeout time.Duration
}

// Enabled reports whether any delivery is configured.
func (c Config) Enabled() bool { return c.Command != "" || c.Webhook != "" }

// Alert is what a hook receives: as JSON for the webhook, as SLUICE_ALERT_*
// variables for the command (SLUICE_ALERT_KIND, _PIPELINE, _MESSAGE, _TIME,
// _LAG_SECONDS, _THRESHOLD_SECONDS, _ERROR).
type Alert struct {
	Kind     string    `json:"kind"`
	Pipeline string    `json:"pipeline"`
	Message  string    `json:"message"`
	Time     time.Time `json:"time"`
	// LagSeconds and ThresholdSeconds are set for lag alerts.
	LagSeconds       float64 `json:"lag_seconds,omitempty"`
	ThresholdSeconds float64 `json:"threshold_seconds,omitempty"`
	// Error is set for failure alerts.
	Error string `json:"error,omitempty"`
}

// env returns the alert as environment variables.
func (a Alert) env() []string {
	vars := []string{
		"SLUICE_ALERT_KIND=" + a.Kind,
		"SLUICE_ALERT_PIPELINE=" + a.Pipeline,
		"SLUICE_ALERT_MESSAGE=" + a.Message,
		"SLUICE_ALERT_TIME=" + a.Time.UTC().Format(time.RFC3339),
	}
	if a.Kind == KindLag {
		vars = append(vars,
			"SLUICE_ALERT_LAG_SECONDS="+strconv.FormatFloat(a.LagSeconds, 'f', 1, 64),
			"SLUICE_ALERT_THRESHOLD_SECONDS="+strconv.FormatFloat(a.ThresholdSeconds, 'f', -1, 64))
	}
	if a.Error != "" {
		vars = append(vars, "SLUICE_ALERT_ERROR="+a.Error)
	}
	return vars
}

// Alerter fires a pipeline's alerts. Safe for concurrent use. A nil
// *Alerter does nothing.
type Alerter struct {
	cfg      Config
	pipeline string
	log      *slog.Logger
	client   *http.Client

	mu        sync.Mutex
	lagFiring bool // a lag incident is open: no new lag alert until it ends
	failed    bool
	wg        sync.WaitGroup
}

// New returns an alerter for the pipeline; nil when cfg delivers nowhere.
func New(pipeline string, cfg Config, log *slog.Logger) *Alerter {
	if !cfg.Enabled() {
		return nil
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Alerter{cfg: cfg, pipeline: pipeline, log: log, client: &http.Client{Timeout: cfg.Timeout}}
}

// Lag reports the current lag. The first report at or above the threshold
// opens an incident and fires a lag alert (in the background); the
// incident closes when lag drops below the threshold.
func (a *Alerter) Lag(ctx context.Context, seconds float64) {
	if a == nil || a.cfg.LagSeconds <= 0 {
		return
	}
	a.mu.Lock()
	fire := false
	switch {
	case seconds >= a.cfg.LagSeconds && !a.lagFiring:
		a.lagFiring, fire = true, true
	case seconds < a.cfg.LagSeconds && a.lagFiring:
		a.lagFiring = false
		a.log.Info("lag back under the alert threshold", "lag_seconds", round1(seconds), "threshold_seconds", a.cfg.LagSeconds)
	}
	a.mu.Unlock()
	if !fire {
		return
	}
	al := Alert{
		Kind: KindLag, Pipeline: a.pipeline, Time: time.Now().UTC(),
		LagSeconds: round1(seconds), ThresholdSeconds: a.cfg.LagSeconds,
		Message: fmt.Sprintf("pipeline %s lags %.1fs behind the source (threshold %gs)", a.pipeline, seconds, a.cfg.LagSeconds),
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.deliver(context.WithoutCancel(ctx), al)
	}()
}

// Failure fires the failure alert for err and waits for its delivery. It
// fires at most once per Alerter.
func (a *Alerter) Failure(ctx context.Context, err error) {
	if a == nil || err == nil {
		return
	}
	a.mu.Lock()
	if a.failed {
		a.mu.Unlock()
		return
	}
	a.failed = true
	a.mu.Unlock()
	msg := strings.Join(strings.Fields(err.Error()), " ")
	a.deliver(context.WithoutCancel(ctx), Alert{
		Kind: KindFailure, Pipeline: a.pipeline, Time: time.Now().UTC(), Error: msg,
		Message: fmt.Sprintf("pipeline %s stopped with an error: %s", a.pipeline, msg),
	})
}

// Wait waits for alerts still being delivered.
func (a *Alerter) Wait() {
	if a == nil {
		return
	}
	a.wg.Wait()
}

// deliver runs the command and posts to the webhook, logging the outcome;
// a failed delivery is logged, never returned: alerting must not stop the
// pipeline.
func (a *Alerter) deliver(ctx context.Context, al Alert) {
	a.log.Warn("alert", "kind", al.Kind, "message", al.Message)
	var wg sync.WaitGroup
	if a.cfg.Command != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.runCommand(ctx, al); err != nil {
				a.log.Error("alert command failed", "kind", al.Kind, "error", err)
			}
		}()
	}
	if a.cfg.Webhook != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.post(ctx, al); err != nil {
				a.log.Error("alert webhook failed", "kind", al.Kind, "error", err)
			}
		}()
	}
	wg.Wait()
}

func (a *Alerter) runCommand(ctx context.Context, al Alert) error {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", a.cfg.Command)
	cmd.Env = append(os.Environ(), al.env()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("alerts.command did not finish within %s", a.cfg.Timeout)
		}
		return fmt.Errorf("alerts.command: %w: %s", err, tail(out.String(), 500))
	}
	return nil
}

func (a *Alerter) post(ctx context.Context, al Alert) error {
	body, err := json.Marshal(al)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alerts.webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sluice")
	resp, err := a.client.Do(req)
	if err != nil {
		// The URL may carry credentials: name only its host.
		return fmt.Errorf("alerts.webhook (host %s): %w", req.URL.Host, unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("alerts.webhook (host %s): answered %s", req.URL.Host, resp.Status)
	}
	return nil
}

// unwrapURLError drops *url.Error's wrapping, whose text repeats the URL.
func unwrapURLError(err error) error {
	if u, ok := err.(interface{ Unwrap() error }); ok && strings.Contains(err.Error(), "://") {
		if inner := u.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
