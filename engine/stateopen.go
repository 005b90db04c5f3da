package engine

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/checkpoint"
)

// stateOpening is the state dir being opened (badger takes some 10 ms)
// while the run dials both databases.
type stateOpening struct {
	r       *runner
	existed bool // the dir was there before this run opened it
	done    chan struct{}
	store   *checkpoint.Store
	err     error
}

// openStateAhead starts opening the state dir unless the runner holds it
// already (a retry); nil then. A dir that disappeared while the pipeline
// ran is an error at once: opening would make a new, empty one.
func (r *runner) openStateAhead(ctx context.Context) (*stateOpening, error) {
	if r.store != nil {
		return nil, nil
	}
	_, statErr := os.Stat(r.cfg.StateDir)
	if statErr != nil && r.stateOpened {
		return nil, permanent(fmt.Errorf("state dir %s disappeared while the pipeline ran (was it dropped?): %w", r.cfg.StateDir, statErr))
	}
	o := &stateOpening{r: r, existed: !errors.Is(statErr, os.ErrNotExist), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		o.store, o.err = checkpoint.Open(ctx, r.cfg.StateDir, r.cfg.Log)
	}()
	return o, nil
}

// wait gives the runner the opened store; from then on it stays open (and
// locked against other processes) across retries, until Run returns.
func (o *stateOpening) wait() error {
	if o == nil {
		return nil
	}
	<-o.done
	if o.err != nil {
		return permanent(o.err)
	}
	o.r.store, o.r.stateOpened = o.store, true
	return nil
}

// abandon closes the store again when the databases did not answer, and
// removes the dir if this run made it: a run that cannot connect leaves
// nothing behind. Only a dir this run opened (and so held locked) is
// removed: one that another process created meanwhile and holds is never
// touched.
func (o *stateOpening) abandon() {
	if o == nil {
		return
	}
	<-o.done
	if o.store == nil {
		return
	}
	if err := o.store.Close(); err != nil {
		o.r.log.Debug("close the state dir after a failed connection", "error", err)
	}
	if !o.existed {
		if err := os.RemoveAll(o.r.cfg.StateDir); err != nil {
			o.r.log.Warn("remove the state dir this run created before it failed to connect", "dir", o.r.cfg.StateDir, "error", err)
		}
	}
}
