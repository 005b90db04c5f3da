package postgres

import (
	"errors"
	"fmt"
)

// prepareError is a failure to prepare a change's statement at the sink
// (a column or table missing there): it says nothing yet about the change.
type prepareError struct{ error }

func (e prepareError) Unwrap() error { return e.error }

// forChange names the change a failed prepare was for: its operation,
// table, key and the position of its source transaction. Other errors
// (from flushing earlier changes) already name theirs and pass unchanged.
func forChange(c check, err error) error {
	var pe prepareError
	if !errors.As(err, &pe) || c.rec == nil {
		return err
	}
	return fmt.Errorf("sink: apply %s on %s (key %s) from the source transaction committed at %s: %w",
		c.rec.Op, c.table.Target, keyText(c.table, c.rec), c.rec.Position, pe.error)
}
