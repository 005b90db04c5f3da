// Package failpoint lets tests stop the engine at named places (crash
// points) to prove that a restart loses and duplicates nothing. A nil *Set
// is valid and does nothing, so the engine pays one nil check per point when
// failpoints are off.
//
// A spec is a comma-separated list of name=action[@n]: the action runs on
// the n-th time (default 1) the point is reached. Actions: kill (SIGKILL the
// process, as a crash would), exit (exit code 3), error (the point returns
// an error), sleep:DURATION.
//
//	SLUICE_FAILPOINTS="copy.chunk.after_commit=kill@3"
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvVar is the environment variable the CLI reads failpoints from.
const EnvVar = "SLUICE_FAILPOINTS"

// Set is a parsed set of failpoints.
type Set struct {
	mu     sync.Mutex
	points map[string]*point
}

type point struct {
	action string
	arg    time.Duration
	at     int
	hits   int
}

// Parse parses a failpoint spec. An empty spec gives a nil Set.
func Parse(spec string) (*Set, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	s := &Set{points: map[string]*point{}}
	for _, item := range strings.Split(spec, ",") {
		name, act, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("failpoint %q: want name=action[@n]", item)
		}
		p := &point{at: 1}
		if a, n, ok := strings.Cut(act, "@"); ok {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 {
				return nil, fmt.Errorf("failpoint %q: bad count %q", item, n)
			}
			act, p.at = a, v
		}
		switch {
		case act == "kill", act == "exit", act == "error":
			p.action = act
		case strings.HasPrefix(act, "sleep:"):
			d, err := time.ParseDuration(strings.TrimPrefix(act, "sleep:"))
			if err != nil {
				return nil, fmt.Errorf("failpoint %q: %w", item, err)
			}
			p.action, p.arg = "sleep", d
		default:
			return nil, fmt.Errorf("failpoint %q: unknown action %q (kill, exit, error, sleep:DURATION)", item, act)
		}
		s.points[name] = p
	}
	return s, nil
}

// Hit marks that the named point was reached and runs its action when due.
// It returns an error only for the "error" action.
func (s *Set) Hit(name string) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	p := s.points[name]
	if p == nil {
		s.mu.Unlock()
		return nil
	}
	p.hits++
	due := p.hits == p.at || (p.action == "sleep" && p.hits >= p.at)
	s.mu.Unlock()
	if !due {
		return nil
	}
	switch p.action {
	case "kill":
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Hour) // the signal is on its way
	case "exit":
		os.Exit(3)
	case "error":
		return fmt.Errorf("failpoint %s", name)
	case "sleep":
		time.Sleep(p.arg)
	}
	return nil
}
