package pipelines

import (
	"net"
	"net/url"
	"time"
)

// Stream tunes the streaming phase.
type Stream struct {
	// Heartbeat is how often the source's heartbeat row is written, so an
	// idle source still shows lag and its slot keeps advancing. Default 10s.
	Heartbeat time.Duration `yaml:"heartbeat" default:"10s"`
	// SequenceSync is how often the sink's sequences are set to the
	// source's values while streaming (cutover sets them exactly); 0s
	// turns it off. Default 30s.
	SequenceSync time.Duration `yaml:"sequence_sync" default:"30s"`
}

// Throttle limits how hard the pipeline works the databases, with separate
// limits for the full copy and for streaming. Zero means no limit.
type Throttle struct {
	Full        Limits `yaml:"full"`
	Incremental Limits `yaml:"incremental"`
}

// Limits are rates; zero is unlimited.
type Limits struct {
	// RowsPerSec caps rows (copied rows, or applied row changes) per second.
	RowsPerSec float64 `yaml:"rows_per_sec"`
	// MBPerSec caps data volume in MiB per second.
	MBPerSec float64 `yaml:"mb_per_sec"`
	// SourceQPS caps queries per second sent to the source (full copy
	// only).
	SourceQPS float64 `yaml:"source_qps"`
}

// Retry says how long the pipeline keeps retrying after an error before it
// stops: connection errors and other errors each have their own window.
type Retry struct {
	// Connection is the window for lost or refused connections, 10m to
	// 1440m. Default 720m.
	Connection time.Duration `yaml:"connection" default:"720m"`
	// Other is the window for other errors (a failed statement, say), 1m to
	// 1440m and shorter than Connection. Default 10m.
	Other time.Duration `yaml:"other" default:"10m"`
}

// Metrics configures the Prometheus endpoint; off when Listen is empty.
type Metrics struct {
	// Listen is the host:port to serve /metrics on, e.g. 127.0.0.1:9187.
	Listen string `yaml:"listen"`
}

// Alerts fire once per incident when lag passes a threshold or the
// pipeline fails.
type Alerts struct {
	// LagSeconds is the lag threshold; zero disables the lag alert.
	LagSeconds float64 `yaml:"lag_seconds"`
	// Command is run (through sh -c) with the alert in its environment.
	Command string `yaml:"command"`
	// Webhook receives the alert as an HTTP POST of JSON.
	Webhook string `yaml:"webhook"`
}

func (s Stream) validate(d *decoder, path string) {
	if s.Heartbeat < 100*time.Millisecond || s.Heartbeat > time.Hour {
		d.problem(path+".heartbeat", "must be between 100ms and 1h, got %s", d.show(path+".heartbeat", s.Heartbeat))
	}
	if s.SequenceSync != 0 && (s.SequenceSync < 100*time.Millisecond || s.SequenceSync > 24*time.Hour) {
		d.problem(path+".sequence_sync", "must be 0s (off) or between 100ms and 24h, got %s", d.show(path+".sequence_sync", s.SequenceSync))
	}
}

func (t Throttle) validate(d *decoder, path string) {
	for name, l := range map[string]Limits{"full": t.Full, "incremental": t.Incremental} {
		p := path + "." + name
		if l.RowsPerSec < 0 {
			d.problem(p+".rows_per_sec", "must be 0 (no limit) or more")
		}
		if l.MBPerSec < 0 {
			d.problem(p+".mb_per_sec", "must be 0 (no limit) or more")
		}
		if l.SourceQPS < 0 {
			d.problem(p+".source_qps", "must be 0 (no limit) or more")
		}
	}
	if t.Incremental.SourceQPS != 0 {
		d.problem(path+".incremental.source_qps", "applies to the full copy only (throttle.full.source_qps); streaming sends no queries per row")
	}
}

func (r Retry) validate(d *decoder, path string) {
	if r.Connection < 10*time.Minute || r.Connection > 1440*time.Minute {
		d.problem(path+".connection", "must be between 10m and 1440m, got %s", d.show(path+".connection", r.Connection))
	}
	if r.Other < time.Minute || r.Other > 1440*time.Minute {
		d.problem(path+".other", "must be between 1m and 1440m, got %s", d.show(path+".other", r.Other))
	}
	if r.Other >= r.Connection {
		d.problem(path+".other", "must be shorter than retry.connection (%s), got %s", r.Connection, r.Other)
	}
}

func (m Metrics) validate(d *decoder, path string) {
	if m.Listen == "" {
		return
	}
	if _, _, err := net.SplitHostPort(m.Listen); err != nil {
		d.problem(path+".listen", "want host:port such as 127.0.0.1:9187: %v", err)
	}
}

func (a Alerts) validate(d *decoder, path string) {
	if a.LagSeconds < 0 {
		d.problem(path+".lag_seconds", "must be 0 (off) or more")
	}
	if a.Webhook != "" {
		u, err := url.Parse(a.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.problem(path+".webhook", "want an http:// or https:// URL")
		}
	}
}
