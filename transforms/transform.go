// Package transforms defines the interface every transform stage
// implements, built in and external alike: a built-in transform is a Go
// value in the sluice binary, an external one (package transforms/plugin)
// a separate executable behind the same interface.
package transforms

import (
	"context"
	"errors"

	"github.com/sluicehq/sluice/engine/record"
)

// Transform changes batches between source and sink. The engine calls
// Process once per batch, in both the full copy and the stream, and Close
// once when the pipeline stops.
//
// Contract of Process:
//
//   - It returns the batch to apply in place of b. It may return b itself,
//     changed in place, or a new batch. A nil batch with a nil error means
//     every record was dropped.
//   - Records may be dropped (filtered) and their values changed; records
//     keep their relative order, which is the source's commit order. A
//     transform does not reorder records and does not add records of
//     another transaction. A record keeps its Position: in the stream it
//     is the commit position of the record's transaction, which the
//     engine places it in by.
//   - Values keep the record's Format: a transform that rewrites a value of
//     a Binary record writes PostgreSQL's binary representation of the
//     column's type. Null and Unchanged values are left as they are unless
//     the transform means to change them; a value with Null false has
//     non-nil Data.
//   - A *record.Relation is shared by every record of its table, across
//     batches and stages: it is never modified in place. A transform that
//     changes a table's shape (renames, drops or adds a column) makes a new
//     Relation and points every record of that table at the same new
//     pointer, with values lined up with its columns, in this batch and the
//     following ones.
//   - The result keeps b's End, the source position reached once the batch
//     is applied: a transform never moves it. Bytes may stay b's: it is
//     the source's measure, for throttling and progress.
//   - An error means the batch is not applied. The engine retries the batch
//     (from the checkpoint) within its retry window, or, when the error is
//     permanent (see Permanent), stops the pipeline at once: the pipeline
//     parks with its position saved and no data lost.
//   - Process may be called concurrently for different batches (the full
//     copy reads tables in parallel); an implementation is safe for that.
//   - ctx ends the call: Process returns soon after it is done.
//
// Close releases what the transform holds (an external process, a
// connection). Process is not called after Close.
type Transform interface {
	Process(ctx context.Context, b *record.Batch) (*record.Batch, error)
	Close() error
}

// Func adapts a function to a Transform whose Close does nothing. Its
// signature is the one a plugin author passes to plugin.Serve, so the same
// function runs in process or out of process.
type Func func(ctx context.Context, b *record.Batch) (*record.Batch, error)

// Process calls f.
func (f Func) Process(ctx context.Context, b *record.Batch) (*record.Batch, error) {
	return f(ctx, b)
}

// Close does nothing.
func (f Func) Close() error { return nil }

// PermanentError marks a transform error that retrying cannot fix: a
// plugin that keeps crashing, a binary whose checksum does not match its
// pin, a configuration the transform refuses. The engine stops the
// pipeline on it instead of retrying; the pipeline's position is saved, so
// it resumes once the cause is fixed.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err, or any error it wraps, is a
// PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// ForTables applies t to the records of the tables match accepts only;
// records of other tables, and records without a relation (DDL), pass
// through as they are. The batch is cut into runs of consecutive records
// that t sees or not, and t gets one call per run it sees: one per batch
// in the full copy, where a batch holds one table. So records keep their
// order whatever t drops. A run's batch has the batch's End and zero
// Bytes. Close closes t.
func ForTables(t Transform, match func(record.TableName) bool) Transform {
	return &forTables{t: t, match: match}
}

type forTables struct {
	t     Transform
	match func(record.TableName) bool
}

func (f *forTables) sees(r *record.Record) bool { return r.Rel != nil && f.match(r.Rel.Table) }

func (f *forTables) Process(ctx context.Context, b *record.Batch) (*record.Batch, error) {
	n := 0
	for i := range b.Records {
		if f.sees(&b.Records[i]) {
			n++
		}
	}
	switch n {
	case 0:
		return b, nil
	case len(b.Records):
		out, err := f.t.Process(ctx, b)
		if out == nil && err == nil {
			out = &record.Batch{End: b.End, Bytes: b.Bytes}
		}
		return out, err
	}
	out := &record.Batch{Records: make([]record.Record, 0, len(b.Records)), End: b.End, Bytes: b.Bytes}
	for i := 0; i < len(b.Records); {
		sees := f.sees(&b.Records[i])
		j := i + 1
		for j < len(b.Records) && f.sees(&b.Records[j]) == sees {
			j++
		}
		if !sees {
			out.Records = append(out.Records, b.Records[i:j]...)
			i = j
			continue
		}
		res, err := f.t.Process(ctx, &record.Batch{Records: b.Records[i:j:j], End: b.End})
		if err != nil {
			return nil, err
		}
		if res != nil {
			out.Records = append(out.Records, res.Records...)
		}
		i = j
	}
	return out, nil
}

func (f *forTables) Close() error { return f.t.Close() }
