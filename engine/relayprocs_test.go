package engine

import "testing"

// TestRelayProcs: a raw full copy caps the Go processors at one per four
// workers, never raises them, and leaves an operator's GOMAXPROCS alone.
func TestRelayProcs(t *testing.T) {
	for _, tc := range []struct {
		workers, current int
		env              bool
		want             int
		capped           bool
	}{
		{2, 2, false, 1, true},
		{4, 8, false, 1, true},
		{5, 8, false, 2, true},
		{16, 32, false, 4, true},
		{16, 4, false, 4, false}, // never raised
		{1, 1, false, 1, false},
		{2, 8, true, 8, false}, // GOMAXPROCS set by the operator
	} {
		got, capped := relayProcs(tc.workers, tc.current, tc.env)
		if got != tc.want || capped != tc.capped {
			t.Errorf("relayProcs(%d workers, %d procs, env %v) = %d, %v; want %d, %v", tc.workers, tc.current, tc.env, got, capped, tc.want, tc.capped)
		}
	}
}
