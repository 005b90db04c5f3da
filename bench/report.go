package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// tableSum is one table's row count and SQL checksum (pgtest.Checksum).
type tableSum struct {
	Rows int64
	Sum  string
}

// compareSums returns nil when sink holds exactly the tables of source with
// equal counts and checksums, otherwise an error naming every difference.
func compareSums(source, sink map[string]tableSum) error {
	var diffs []string
	names := make([]string, 0, len(source))
	for t := range source {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		s := source[t]
		d, ok := sink[t]
		switch {
		case !ok:
			diffs = append(diffs, t+": missing at the sink")
		case s.Rows != d.Rows:
			diffs = append(diffs, fmt.Sprintf("%s: %d rows at the source, %d at the sink", t, s.Rows, d.Rows))
		case s.Sum != d.Sum:
			diffs = append(diffs, fmt.Sprintf("%s: checksums differ (%d rows)", t, s.Rows))
		}
	}
	for t := range sink {
		if _, ok := source[t]; !ok {
			diffs = append(diffs, t+": only at the sink")
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("not verified: %s", strings.Join(diffs, "; "))
	}
	return nil
}

// result is one measured method in one phase.
type result struct {
	Phase  string `json:"phase"`
	Method string `json:"method"`
	Native bool   `json:"native"` // a PostgreSQL tool, a candidate for "best native"
	// Part is a measurement of a part of another figure (sluice's start-up),
	// not a method: it gets no ratios.
	Part  bool    `json:"part,omitempty"`
	OK    bool    `json:"ok"` // ran and verified
	Error string  `json:"error,omitempty"`
	Secs  float64 `json:"seconds,omitempty"`
	Rows  int64   `json:"rows,omitempty"`
	// Lag percentiles in seconds (lag phase only).
	Lag *lagStats `json:"lag,omitempty"`
	// Speed relative to the best native method of the phase:
	// best native seconds / these seconds (lag: best native p50 / this p50),
	// so 1.25 means 25 % faster than the best native tool. 0 when unknown.
	VsBestNative float64 `json:"vs_best_native,omitempty"`
	// Speed relative to decoding alone (pg_recvlogical into /dev/null) in
	// a phase that measured it: ceiling seconds / these seconds, at most
	// about 1 for a method that applies. 0 when unknown.
	VsCeiling float64 `json:"vs_decode_ceiling,omitempty"`
	// sluice child process resources (getrusage).
	MaxRSSKB int64   `json:"max_rss_kb,omitempty"`
	CPUSecs  float64 `json:"cpu_seconds,omitempty"`
	// CPU is the CPU time of every process taking part (see cpuUse).
	CPU  *cpuUse `json:"cpu_all_processes,omitempty"`
	Note string  `json:"note,omitempty"`
}

type lagStats struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
}

// percentiles summarises lag samples (seconds); nil for no samples.
// Nearest-rank: the p-th percentile is the smallest sample with at least
// p % of the samples at or below it.
func percentiles(samples []float64) *lagStats {
	if len(samples) == 0 {
		return nil
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	rank := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		if i < 0 {
			i = 0
		}
		return s[i]
	}
	return &lagStats{Samples: len(s), P50: rank(50), P90: rank(90), P99: rank(99), Max: s[len(s)-1]}
}

// metric is what the ratio compares: seconds, or p50 lag for the lag phase.
func (r result) metric() float64 {
	if r.Lag != nil {
		return r.Lag.P50
	}
	return r.Secs
}

// isCeiling tells the decode-only measurement (pg_recvlogical), which
// applies nothing.
func (r result) isCeiling() bool { return strings.HasPrefix(r.Method, "pg_recvlogical") }

// fillRatios sets VsBestNative on every verified result of a phase that has
// at least one verified native result, and VsCeiling on every verified
// result of a phase with a verified decode-only ceiling. The ceiling
// applies nothing, so it is no candidate for best native and gets no ratio
// itself.
func fillRatios(rs []result) {
	best := map[string]float64{}
	ceiling := map[string]float64{}
	for _, r := range rs {
		if r.OK && r.isCeiling() && r.metric() > 0 {
			ceiling[r.Phase] = r.metric()
		}
		if !r.OK || !r.Native || r.metric() <= 0 || r.isCeiling() {
			continue
		}
		if b, ok := best[r.Phase]; !ok || r.metric() < b {
			best[r.Phase] = r.metric()
		}
	}
	for i := range rs {
		rs[i].VsBestNative, rs[i].VsCeiling = 0, 0
		if !rs[i].OK || rs[i].metric() <= 0 || rs[i].isCeiling() || rs[i].Part {
			continue
		}
		if b, ok := best[rs[i].Phase]; ok {
			rs[i].VsBestNative = b / rs[i].metric()
		}
		if c, ok := ceiling[rs[i].Phase]; ok {
			rs[i].VsCeiling = c / rs[i].metric()
		}
	}
}

// markdown renders the results as a table.
func markdown(rs []result) string {
	var b strings.Builder
	b.WriteString("| phase | method | result | rows/s | vs best native | vs decode ceiling | sluice peak RSS | sluice CPU s | CPU s, all processes: source + sink + clients = total |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rs {
		res, rate, ratio, ceil, rss, cpu, all := "", "", "", "", "", "", ""
		switch {
		case !r.OK:
			res = "FAILED: " + strings.ReplaceAll(r.Error, "|", "\\|")
		case r.Lag != nil:
			res = fmt.Sprintf("p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms (%d samples)",
				r.Lag.P50*1000, r.Lag.P90*1000, r.Lag.P99*1000, r.Lag.Max*1000, r.Lag.Samples)
		default:
			res = fmt.Sprintf("%.2f s", r.Secs)
			if r.Rows > 0 && r.Secs > 0 {
				rate = fmt.Sprintf("%.0f", float64(r.Rows)/r.Secs)
			}
		}
		if r.VsBestNative > 0 {
			ratio = fmt.Sprintf("%.2f×", r.VsBestNative)
		}
		if r.VsCeiling > 0 {
			ceil = fmt.Sprintf("%.2f×", r.VsCeiling)
		}
		if r.MaxRSSKB > 0 {
			rss = fmt.Sprintf("%.0f MB", float64(r.MaxRSSKB)/1024)
			cpu = fmt.Sprintf("%.2f", r.CPUSecs)
		}
		if r.CPU != nil && r.OK {
			all = fmt.Sprintf("%.2f + %.2f + %.2f = %.2f", r.CPU.Source, r.CPU.Sink, r.CPU.Client, r.CPU.total())
		}
		m := r.Method
		if r.Note != "" {
			m += " (" + r.Note + ")"
		}
		m = strings.ReplaceAll(m, "|", "\\|")
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Phase, m, res, rate, ratio, ceil, rss, cpu, all)
	}
	return b.String()
}

// fastestRounds merges the results of phase measured in rounds rounds
// into one per method, in their first order: the fastest verified run
// (its note says of how many), or the first failure when any run of the
// method failed (a run that does not verify is never hidden by a faster
// one that does).
func fastestRounds(results []result, phase string, rounds int) []result {
	if rounds < 2 {
		return results
	}
	var out []result
	at := map[string]int{} // method -> index in out
	runs := map[string]int{}
	for _, r := range results {
		if r.Phase != phase {
			out = append(out, r)
			continue
		}
		runs[r.Method]++
		i, seen := at[r.Method]
		switch {
		case !seen:
			at[r.Method] = len(out)
			out = append(out, r)
		case !out[i].OK:
			// a failure stays
		case !r.OK || r.Secs < out[i].Secs:
			out[i] = r
		}
	}
	for m, i := range at {
		if out[i].OK {
			note := fmt.Sprintf("fastest of %d rounds", runs[m])
			if out[i].Note != "" {
				note = out[i].Note + "; " + note
			}
			out[i].Note = note
		}
	}
	return out
}
