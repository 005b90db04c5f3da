package main

import (
	"strings"
	"testing"
)

func TestCompareSums(t *testing.T) {
	src := map[string]tableSum{"a": {3, "x"}, "b": {1, "y"}}
	if err := compareSums(src, map[string]tableSum{"a": {3, "x"}, "b": {1, "y"}}); err != nil {
		t.Fatal(err)
	}
	err := compareSums(src, map[string]tableSum{"a": {2, "x"}, "c": {1, "z"}})
	if err == nil {
		t.Fatal("want a difference")
	}
	for _, want := range []string{"a: 3 rows at the source, 2 at the sink", "b: missing", "c: only at the sink"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if err := compareSums(src, map[string]tableSum{"a": {3, "x"}, "b": {1, "other"}}); err == nil || !strings.Contains(err.Error(), "b: checksums differ") {
		t.Errorf("checksum difference: %v", err)
	}
}

func TestFillRatios(t *testing.T) {
	rs := []result{
		{Phase: "copy", Method: "sluice", OK: true, Secs: 2},
		{Phase: "copy", Method: "psql", Native: true, OK: true, Secs: 3},
		{Phase: "copy", Method: "pg_dump", Native: true, OK: true, Secs: 4},
		{Phase: "copy", Method: "fast but wrong", Native: true, OK: false, Secs: 1},
		{Phase: "apply", Method: "sluice", OK: true, Secs: 4},
		{Phase: "apply", Method: "pg_recvlogical (decode only)", Native: true, OK: true, Secs: 1},
		{Phase: "apply", Method: "subscription", Native: true, OK: true, Secs: 3},
		{Phase: "lag", Method: "sluice", OK: true, Lag: &lagStats{P50: 0.05}},
		{Phase: "lag", Method: "subscription", Native: true, OK: true, Lag: &lagStats{P50: 0.1}},
		{Phase: "other", Method: "sluice", OK: true, Secs: 1},
	}
	fillRatios(rs)
	want := []float64{1.5, 1, 0.75, 0, 0.75, 0, 1, 2, 1, 0}
	wantCeil := []float64{0, 0, 0, 0, 0.25, 0, 1.0 / 3, 0, 0, 0}
	for i, r := range rs {
		if r.VsBestNative != want[i] {
			t.Errorf("%s/%s: ratio %v, want %v", r.Phase, r.Method, r.VsBestNative, want[i])
		}
		if r.VsCeiling != wantCeil[i] {
			t.Errorf("%s/%s: ratio to the ceiling %v, want %v", r.Phase, r.Method, r.VsCeiling, wantCeil[i])
		}
	}
	md := markdown(rs)
	if !strings.Contains(md, "| copy | sluice | 2.00 s |  | 1.50× |  |") || !strings.Contains(md, "FAILED") ||
		!strings.Contains(md, "| apply | sluice | 4.00 s |  | 0.75× | 0.25× |") {
		t.Errorf("markdown:\n%s", md)
	}
}

func TestPercentiles(t *testing.T) {
	if percentiles(nil) != nil {
		t.Fatal("no samples")
	}
	var s []float64
	for i := 100; i >= 1; i-- {
		s = append(s, float64(i))
	}
	p := percentiles(s)
	if p.Samples != 100 || p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("%+v", p)
	}
}

func TestFastestRounds(t *testing.T) {
	in := []result{
		{Phase: "full copy", Method: "a", OK: true, Secs: 3},
		{Phase: "full copy", Method: "b", OK: true, Secs: 5},
		{Phase: "other", Method: "x", OK: true, Secs: 1},
		{Phase: "full copy", Method: "a", OK: true, Secs: 2},
		{Phase: "full copy", Method: "b", Error: "mismatch"},
	}
	out := fastestRounds(in, "full copy", 2)
	if len(out) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(out), out)
	}
	if out[0].Method != "a" || out[0].Secs != 2 || out[0].Note != "fastest of 2 rounds" {
		t.Errorf("method a: %+v, want its 2 s run, noted", out[0])
	}
	if out[1].Method != "b" || out[1].OK || out[1].Error != "mismatch" {
		t.Errorf("method b: %+v, want its failure (a failed run is never hidden)", out[1])
	}
	if out[2].Method != "x" {
		t.Errorf("other phases are kept: %+v", out[2])
	}
}
