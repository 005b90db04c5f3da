package engine

// The name each table took its objects item's options (where, operations)
// by. Options are decided once per table, by the name the table has where
// it enters the pipeline (discovered at the full copy's start, or joining
// at its place in the stream), and stay with the table, by OID, across
// its renames. A run that starts again (a restart, or a retry after an
// error) discovers the tables in the source's catalog as it is now,
// renamed tables under their new names: it looks their options up by the
// names recorded here, so that a rename never adds or removes a table's
// row filter.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sluicehq/sluice/checkpoint"
	"github.com/sluicehq/sluice/engine/record"
	"github.com/sluicehq/sluice/plugins/postgres"
)

// prefixOptName is the state's key prefix of the recorded names, by OID.
const prefixOptName = "v1/optname/"

func optNameKey(oid uint32) string { return prefixOptName + strconv.FormatUint(uint64(oid), 10) }

// optionNames reads the recorded names, by OID.
func (r *runner) optionNames() (map[uint32]record.TableName, error) {
	out := map[uint32]record.TableName{}
	if r.store == nil {
		return out, nil
	}
	err := r.store.Scan(prefixOptName, func(key string, raw []byte) error {
		oid, err := strconv.ParseUint(strings.TrimPrefix(key, prefixOptName), 10, 32)
		if err != nil {
			return nil // not ours
		}
		var n record.TableName
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("state: decode %s: %w", key, err)
		}
		out[uint32(oid)] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: read the tables' option names: %w", err)
	}
	return out, nil
}

// bindNew records the discovered tables that have no recorded name yet
// under their names in the catalog: at the full copy's start these are
// their names at the snapshot. A run that resumes the stream with DDL
// capture records none: the tables it does not know were created since the
// stream's position, and their CREATE in the stream records them.
func (r *runner) bindNew(tables []*postgres.Table, names map[uint32]record.TableName, resume bool) error {
	if r.store == nil || resume {
		return nil
	}
	return r.store.Update(func(tx *checkpoint.Tx) error {
		for _, t := range tables {
			if _, ok := names[t.OID]; !ok {
				if err := tx.Put(optNameKey(t.OID), t.Name); err != nil {
					return err
				}
				names[t.OID] = t.Name
			}
		}
		return nil
	})
}

// bindName records the name a table joined the pipeline under.
func (r *runner) bindName(oid uint32, name record.TableName) error {
	if r.store == nil {
		return nil
	}
	if err := r.store.Put(optNameKey(oid), name); err != nil {
		return fmt.Errorf("state: record the name table %s joined under: %w", name, err)
	}
	return nil
}

// unbindName forgets a table that left the pipeline.
func (r *runner) unbindName(oid uint32) error {
	if r.store == nil {
		return nil
	}
	if err := r.store.Delete(optNameKey(oid)); err != nil {
		return fmt.Errorf("state: forget the name of a table that left the pipeline: %w", err)
	}
	return nil
}

// optionsName is the name a table's options are looked up by: the
// recorded one, else its name in the catalog.
func optionsName(names map[uint32]record.TableName, oid uint32, catalog record.TableName) record.TableName {
	if n, ok := names[oid]; ok && n.Name != "" {
		return n
	}
	return catalog
}

// resolveMapping is resolveMappingAt for a run, with the tables' options
// looked up by their recorded names; it records the names of the tables
// that have none (see bindNew).
func (r *runner) resolveMapping(ctx context.Context, src *pgx.Conn, tables []*postgres.Table, resume bool) (*mapping, error) {
	names, err := r.optionNames()
	if err != nil {
		return nil, err
	}
	if err := r.bindNew(tables, names, resume); err != nil {
		return nil, fmt.Errorf("state: record the tables' option names: %w", err)
	}
	return resolveMappingNamed(ctx, src, &r.cfg, tables, resume, names)
}

// discover resolves the objects list in the source's catalog. A table
// item names its table as it was when the table entered the pipeline; a
// run that starts after the source renamed it (the stream may still be
// behind the rename) finds it by the OID recorded under that name, as the
// stream keeps replicating a renamed table, instead of stopping because
// the name is gone. An item whose name exists in the catalog is resolved
// by it as usual.
func (r *runner) discover(ctx context.Context, src *pgx.Conn) ([]*postgres.Table, error) {
	sels := r.cfg.Objects
	names, err := r.optionNames()
	if err != nil {
		return nil, err
	}
	cloned := false
	byName := map[record.TableName][]uint32{}
	for oid, n := range names {
		byName[n] = append(byName[n], oid)
	}
	for i, s := range sels {
		if s.Schema != "" || len(byName[s.Table]) == 0 {
			continue
		}
		var exists bool
		if err := src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2)`, s.Table.Schema, s.Table.Name).Scan(&exists); err != nil {
			return nil, fmt.Errorf("source: look up table %s: %w", s.Table, err)
		}
		if exists {
			continue
		}
		for _, oid := range byName[s.Table] {
			var now record.TableName
			err := src.QueryRow(ctx, `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE c.oid = $1 AND c.relkind IN ('r', 'p')`, oid).Scan(&now.Schema, &now.Name)
			if errors.Is(err, pgx.ErrNoRows) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("source: look up table %s by OID %d: %w", s.Table, oid, err)
			}
			if !cloned {
				sels, cloned = slices.Clone(sels), true // the config's list stays as written
			}
			sels[i].Table = now
			r.log.Info("objects item follows its table, renamed at the source since it entered the pipeline", "item", s.Where, "table", s.Table.String(), "now", now.String())
			break
		}
	}
	return postgres.Discover(ctx, src, sels)
}
