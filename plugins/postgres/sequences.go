package postgres

// Sequence values: the sink's sequences are set to the source's, so that
// ids drawn at the sink after a switch never collide with copied rows.

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/engine/record"
)

// SequenceSet is one sink sequence set to a source sequence's state.
type SequenceSet struct {
	Source, Sink record.TableName
	// Value is the source's last_value; IsCalled whether it was handed
	// out (the next nextval returns Value + increment) or not (Value).
	Value    int64
	IsCalled bool
	// Kept is true when the sink's sequence was already past the source's
	// and was left alone (Value is then the sink's).
	Kept bool
}

// ahead reports whether a sequence at (last, called) would hand out a value
// past the one at (srcLast, srcCalled), for a sequence counting by inc.
func ahead(last int64, called bool, srcLast int64, srcCalled bool, inc int64) bool {
	next := func(l int64, c bool) int64 {
		if c {
			return l + inc
		}
		return l
	}
	if inc < 0 {
		return next(last, called) < next(srcLast, srcCalled)
	}
	return next(last, called) > next(srcLast, srcCalled)
}

// SyncAllSequences sets the sink's sequences to the source's state: the
// sequences the tables' columns use (defaults, serial, identity), matched
// through the columns so renamed tables and columns are followed, and
// every other sequence of a selected schema, matched by name (sequences
// are not renamed). A standalone sequence missing at the sink is returned
// in missing rather than failing. All values are set in one sink
// transaction.
func SyncAllSequences(ctx context.Context, src, dst *pgx.Conn, sel []Selection, tables []*Table, target TargetName, columns ColumnName) (set []SequenceSet, missing []string, err error) {
	pairs, err := columnSequencePairs(ctx, src, dst, tables, target, columns)
	if err != nil {
		return nil, nil, err
	}
	var schemas []string
	for _, s := range sel {
		if s.Schema != "" {
			schemas = append(schemas, s.Schema)
		}
	}
	if len(schemas) > 0 {
		handled := make([]uint32, 0, len(pairs))
		for _, p := range pairs {
			handled = append(handled, p.src.Seq)
		}
		rows, err := src.Query(ctx, `SELECT s.oid, n.nspname::text, s.relname::text FROM pg_catalog.pg_class s
			JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
			WHERE s.relkind = 'S' AND n.nspname = ANY($1) AND s.oid <> ALL($2)
			ORDER BY 2, 3`, schemas, handled)
		if err != nil {
			return nil, nil, fmt.Errorf("source: list the sequences of the selected schemas: %w", err)
		}
		seqs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (columnSequence, error) {
			var c columnSequence
			err := r.Scan(&c.Seq, &c.Schema, &c.Name)
			return c, err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("source: list the sequences of the selected schemas: %w", err)
		}
		for _, s := range seqs {
			d := columnSequence{Schema: s.Schema, Name: s.Name}
			err := dst.QueryRow(ctx, `SELECT s.oid FROM pg_catalog.pg_class s JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
				WHERE s.relkind = 'S' AND n.nspname = $1 AND s.relname = $2`, s.Schema, s.Name).Scan(&d.Seq)
			if err == pgx.ErrNoRows {
				missing = append(missing, dispName(s.Schema, s.Name))
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("sink: look up sequence %s: %w", dispName(s.Schema, s.Name), err)
			}
			pairs = append(pairs, seqPair{s, d})
		}
	}
	set, err = setSequences(ctx, src, dst, pairs)
	return set, missing, err
}
