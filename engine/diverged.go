package engine

import "fmt"

// divergedParked turns the applier's report that the sink diverged from
// the source (a postgres.DivergedError: a change of a table without a key
// found no row at the sink) into a permanent error: retrying would find
// the same sink, and going on would apply later changes to the wrong rows.
// The sink transaction holding the change was rolled back, so the
// pipeline stays at its last checkpoint.
func divergedParked(err error) error {
	return permanent(fmt.Errorf("the sink diverged from the source, so the pipeline stopped (parked at its last checkpoint: nothing after it was applied, nothing was skipped): %w", err))
}
