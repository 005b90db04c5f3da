package engine

import (
	"os"
	"runtime"
)

// relayStreamsPerProc is how many raw COPY streams one Go processor
// relays without becoming their bottleneck: relaying is a few copies
// and system calls per batch, about 0.6 CPU seconds for 290 MB on the
// bench machine (some 450 MB/s per core), while one sink writer takes in
// well under 150 MB/s.
const relayStreamsPerProc = 4

// relayProcs is how many processors (GOMAXPROCS) a full copy needs when
// every chunk is relayed raw by workers copy workers, and whether to cap
// the runtime at that: never when GOMAXPROCS is set in the environment
// (the operator's choice), nor when the runtime already has no more.
func relayProcs(workers, current int, envSet bool) (int, bool) {
	want := max(1, (workers+relayStreamsPerProc-1)/relayStreamsPerProc)
	if envSet || want >= current {
		return current, false
	}
	return want, true
}

// capProcsForRelay lowers GOMAXPROCS for a full copy whose chunks all pass
// through raw (no transform decodes a row), and returns the function that
// gives the runtime its default back.
//
// Relaying binary COPY streams is waiting on sockets. With a processor per
// core, each batch handed between goroutines wakes an idle processor's
// thread, which spins looking for work before it sleeps again; on a
// machine that also runs the databases, those cycles are taken from the
// source and sink backends, the copy's real bottleneck. Measured on 2
// cores (scale-20 bench, 2 workers): sluice's own CPU time fell from
// about 0.8 s to 0.65 s and its context switches from 25,000 to 17,000.
func (r *runner) capProcsForRelay(jobs []copyJob, workers int) (restore func()) {
	for _, j := range jobs {
		if _, _, raw := r.rawColumns(j); !raw {
			return func() {}
		}
	}
	_, envSet := os.LookupEnv("GOMAXPROCS")
	want, capped := relayProcs(workers, runtime.GOMAXPROCS(0), envSet)
	if !capped {
		return func() {}
	}
	runtime.GOMAXPROCS(want)
	r.log.Debug("full copy relays raw COPY streams: Go processors capped", "gomaxprocs", want, "workers", workers)
	return func() { runtime.SetDefaultGOMAXPROCS() }
}
