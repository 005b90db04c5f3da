package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Identity is what ties a state dir to one pipeline, source and sink. The
// engine compares it on start so that a state dir is never reused for
// another source or slot.
type Identity struct {
	// Pipeline is the pipeline's name.
	Pipeline string
	// SourceSystemID is the source cluster's system identifier
	// (IDENTIFY_SYSTEM), as text.
	SourceSystemID string
	// SourceDatabase is the source database name.
	SourceDatabase string
	// SinkDatabase is the sink database name.
	SinkDatabase string
	// Slot is the replication slot at the source.
	Slot string
	// Publication is the publication at the source.
	Publication string
	// CreatedAt is when the pipeline was first started.
	CreatedAt time.Time
}

// Identity returns the stored identity; found is false when none is stored.
func (s *Store) Identity() (*Identity, bool, error) {
	var id Identity
	found, err := s.Get(keyIdentity, &id)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint: read identity: %w", err)
	}
	if !found {
		return nil, false, nil
	}
	return &id, true, nil
}

// SetIdentity stores id, replacing any stored identity.
func (s *Store) SetIdentity(id *Identity) error {
	if id == nil {
		return errors.New("checkpoint: write identity: nil identity")
	}
	if err := s.Put(keyIdentity, id); err != nil {
		return fmt.Errorf("checkpoint: write identity: %w", err)
	}
	return nil
}

// Phase is where a pipeline is in its lifecycle.
type Phase string

// The phases, in lifecycle order.
const (
	// PhaseNew: nothing done yet.
	PhaseNew Phase = "new"
	// PhaseSchema: creating the pre-data schema in the sink.
	PhaseSchema Phase = "schema"
	// PhaseCopy: full copy of the tables at the slot's snapshot.
	PhaseCopy Phase = "copy"
	// PhasePostData: building indexes, constraints, triggers and the rest.
	PhasePostData Phase = "post_data"
	// PhaseStream: streaming changes from the slot.
	PhaseStream Phase = "stream"
	// PhaseDone: cut over; the pipeline has finished.
	PhaseDone Phase = "done"
)

// Valid reports whether p is one of the known phases.
func (p Phase) Valid() bool {
	switch p {
	case PhaseNew, PhaseSchema, PhaseCopy, PhasePostData, PhaseStream, PhaseDone:
		return true
	}
	return false
}

// Phase returns the stored phase, PhaseNew when none is stored.
func (s *Store) Phase() (Phase, error) {
	var p Phase
	found, err := s.Get(keyPhase, &p)
	if err != nil {
		return "", fmt.Errorf("checkpoint: read phase: %w", err)
	}
	if !found {
		return PhaseNew, nil
	}
	if !p.Valid() {
		return "", fmt.Errorf("checkpoint: read phase: unknown phase %q in %s (written by a newer sluice?)", p, s.dir)
	}
	return p, nil
}

// SetPhase stores p, which must be one of the known phases.
func (s *Store) SetPhase(p Phase) error {
	if !p.Valid() {
		return fmt.Errorf("checkpoint: write phase: unknown phase %q", p)
	}
	if err := s.Put(keyPhase, p); err != nil {
		return fmt.Errorf("checkpoint: write phase %s: %w", p, err)
	}
	return nil
}

// PostDataDone reports whether the post-data schema (indexes, constraints,
// triggers, views, ...) was built at the sink by an earlier run.
func (s *Store) PostDataDone() (bool, error) {
	var done bool
	if _, err := s.Get(keyPostData, &done); err != nil {
		return false, fmt.Errorf("checkpoint: read post-data mark: %w", err)
	}
	return done, nil
}

// SetPostDataDone records that the post-data schema is built at the sink.
func (s *Store) SetPostDataDone() error {
	if err := s.Put(keyPostData, true); err != nil {
		return fmt.Errorf("checkpoint: write post-data mark: %w", err)
	}
	return nil
}

// Methods of splitting a table for its full copy (TablePlan.Method).
const (
	// MethodKey splits on ranges of the key columns.
	MethodKey = "key"
	// MethodCTID splits on ranges of heap blocks (ctid).
	MethodCTID = "ctid"
	// MethodWhole copies the table in one chunk.
	MethodWhole = "whole"
	// MethodScan reads the table once and spreads its rows over several
	// writers, each share a chunk without bounds.
	MethodScan = "scan"
)

// A TablePlan is how one table's full copy was split into chunks. It is
// stored once and reused on resume, so a restarted copy uses the same
// chunk boundaries as the interrupted one.
type TablePlan struct {
	// Table is the quoted, qualified source name, e.g. "public"."orders";
	// it is the plan's key.
	Table string
	// Method is MethodKey, MethodCTID, MethodWhole or MethodScan.
	Method string
	// KeyColumns are the columns the chunk bounds refer to (MethodKey).
	KeyColumns []string
	// Chunks are the chunks, each with a distinct ID.
	Chunks []Chunk
	// SnapshotID is the exported snapshot the copy reads.
	SnapshotID string
	// PlannedAt is when the plan was made.
	PlannedAt time.Time
}

// Chunk is one part of a table's full copy.
type Chunk struct {
	// ID identifies the chunk within its plan; not negative.
	ID int
	// Lo is the inclusive lower bound, nil for unbounded: the text form of
	// the key columns, or for MethodCTID the block number as a string.
	Lo []string
	// Hi is the exclusive upper bound, nil for unbounded, in the same form
	// as Lo.
	Hi []string
	// EstRows is the estimated number of rows in the chunk.
	EstRows int64
}

// validate checks what the store relies on.
func (p *TablePlan) validate() error {
	if p.Table == "" {
		return errors.New("no table name")
	}
	switch p.Method {
	case MethodKey, MethodCTID, MethodWhole, MethodScan:
	default:
		return fmt.Errorf("unknown method %q (want %q, %q, %q or %q)", p.Method, MethodKey, MethodCTID, MethodWhole, MethodScan)
	}
	seen := make(map[int]bool, len(p.Chunks))
	for _, c := range p.Chunks {
		if c.ID < 0 {
			return fmt.Errorf("negative chunk id %d", c.ID)
		}
		if seen[c.ID] {
			return fmt.Errorf("chunk id %d used twice", c.ID)
		}
		seen[c.ID] = true
	}
	return nil
}

// TablePlan returns the stored plan of table; found is false when there is
// none.
func (s *Store) TablePlan(table string) (*TablePlan, bool, error) {
	var p TablePlan
	found, err := s.Get(planKey(table), &p)
	if err != nil {
		return nil, false, fmt.Errorf("checkpoint: read plan for %s: %w", table, err)
	}
	if !found {
		return nil, false, nil
	}
	return &p, true, nil
}

// PutTablePlan stores p as the plan of p.Table. Done marks belong to the
// plan they were made under, so any done marks left of the table are
// removed in the same write (a new plan starts with no chunk done).
func (s *Store) PutTablePlan(p *TablePlan) error {
	if p == nil {
		return errors.New("checkpoint: write plan: nil plan")
	}
	if err := p.validate(); err != nil {
		return fmt.Errorf("checkpoint: write plan for %s: %w", p.Table, err)
	}
	if err := s.check(); err != nil {
		return err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("checkpoint: write plan for %s: encode: %w", p.Table, err)
	}
	key := []byte(planKey(p.Table))
	// Stale marks go first, the plan last: if the marks do not fit one
	// transaction, a crash in between leaves either the old plan with
	// fewer marks (its chunks are copied again) or the new plan with none.
	err = s.deletePrefix([]byte(donePrefix(p.Table)), nil, func(txn *badger.Txn) error {
		return txn.Set(key, raw)
	})
	if err != nil {
		return fmt.Errorf("checkpoint: write plan for %s: %w", p.Table, err)
	}
	return nil
}

// TablePlans returns every stored plan, ordered by their keys.
func (s *Store) TablePlans() ([]*TablePlan, error) {
	var plans []*TablePlan
	err := s.Scan(prefixPlan, func(key string, raw []byte) error {
		var p TablePlan
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("decode %q: %w", key, err)
		}
		plans = append(plans, &p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: read plans: %w", err)
	}
	return plans, nil
}

// ChunkDone records that one chunk of a table's full copy is durably in
// the sink.
type ChunkDone struct {
	// Rows is the number of rows copied.
	Rows int64
	// Bytes is the number of bytes copied.
	Bytes int64
	// At is when the chunk was finished.
	At time.Time
}

// MarkChunkDone records that chunk of table is done.
func (s *Store) MarkChunkDone(table string, chunk int, d ChunkDone) error {
	if chunk < 0 {
		return fmt.Errorf("checkpoint: mark chunk %d of %s done: negative chunk id", chunk, table)
	}
	if err := s.Put(doneKey(table, chunk), d); err != nil {
		return fmt.Errorf("checkpoint: mark chunk %d of %s done: %w", chunk, table, err)
	}
	return nil
}

// DoneChunks returns the done marks of table, by chunk id.
func (s *Store) DoneChunks(table string) (map[int]ChunkDone, error) {
	prefix := donePrefix(table)
	done := make(map[int]ChunkDone)
	err := s.Scan(prefix, func(key string, raw []byte) error {
		id, err := chunkFromDoneKey(key, prefix)
		if err != nil {
			return err
		}
		var d ChunkDone
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("decode %q: %w", key, err)
		}
		done[id] = d
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint: read done chunks of %s: %w", table, err)
	}
	return done, nil
}

// ResetTable removes the plan and the done marks of table, atomically: the
// table's copy starts over. (With more marks than fit one transaction, the
// plan goes first and the marks after it; PutTablePlan removes any marks
// a crash left behind, so they are never taken for the new plan's.)
func (s *Store) ResetTable(table string) error {
	if err := s.check(); err != nil {
		return err
	}
	key := []byte(planKey(table))
	err := s.deletePrefix([]byte(donePrefix(table)), func(txn *badger.Txn) error {
		return txn.Delete(key)
	}, nil)
	if err != nil {
		return fmt.Errorf("checkpoint: reset %s: %w", table, err)
	}
	return nil
}

// Position returns the last source commit LSN that the engine saw the sink
// make durable; 0 when none is stored.
func (s *Store) Position() (uint64, error) {
	var lsn uint64
	if _, err := s.Get(keyPosition, &lsn); err != nil {
		return 0, fmt.Errorf("checkpoint: read position: %w", err)
	}
	return lsn, nil
}

// SetPosition stores lsn as the last source commit LSN the sink has
// durably applied. Call it only after the sink committed that position.
func (s *Store) SetPosition(lsn uint64) error {
	if err := s.Put(keyPosition, lsn); err != nil {
		return fmt.Errorf("checkpoint: write position %d: %w", lsn, err)
	}
	return nil
}
