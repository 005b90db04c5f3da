package postgres

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sluicehq/sluice/engine/record"
)

// Chunk methods: how a table's rows are split for the full copy.
const (
	// MethodWhole copies the table as one chunk.
	MethodWhole = "whole"
	// MethodKey splits by ranges of the table's key. A row's chunk depends
	// only on its key, so chunks stay disjoint across snapshots and an
	// interrupted copy can resume the unfinished ones.
	MethodKey = "key"
	// MethodCTID splits a table without a key by physical block ranges.
	// Membership depends on the snapshot, so a resumed copy of such a table
	// restarts it whole.
	MethodCTID = "ctid"
	// MethodScan reads the table with one sequential scan and spreads its
	// rows over several sink writers: each writer's share commits as one
	// chunk. A sequential scan costs the source less than key or block
	// ranges (it reads through a small ring of buffers instead of the
	// whole buffer pool), but which rows a share holds depends on timing,
	// so a resumed copy of such a table restarts it whole.
	MethodScan = "scan"
)

// Chunk is one piece of a table's full copy. Lo is the inclusive lower
// bound and Hi the exclusive upper bound: key values in text form (MethodKey)
// or a block number (MethodCTID); nil means unbounded.
type Chunk struct {
	ID      int
	Lo, Hi  []string
	EstRows int64
}

// Plan is how one table is split.
type Plan struct {
	Method string
	Key    []string
	Chunks []Chunk
}

// samplePagesPerChunk is how many sampled pages back each chunk boundary.
const samplePagesPerChunk = 32

// maxChunkBytes caps a chunk's estimated size: a table of wide rows (large
// TOASTed values) in chunks of chunkRows rows would be one or two huge
// chunks that a single worker copies while the others idle.
const maxChunkBytes = 16 << 20

// ChunkCount is how many chunks PlanChunks splits t into for chunkRows
// (1: the table is copied whole), with the table's estimated rows, without
// asking the source anything.
func ChunkCount(t *Table, chunkRows int64) (n int, est int64) {
	if chunkRows < 1 {
		chunkRows = 1
	}
	est = t.EstRows
	if est < 0 { // never analyzed: guess from the size
		est = t.Pages * 60
	}
	if est > 0 && t.Bytes > 0 {
		if rows := maxChunkBytes / max(1, t.Bytes/est); rows < chunkRows {
			chunkRows = max(1, rows)
		}
	}
	if t.Partitioned || est <= chunkRows+chunkRows/2 || max(t.Pages, t.Bytes/8192) < 16 {
		return 1, est
	}
	return int((est + chunkRows - 1) / chunkRows), est
}

// PlanChunks splits a table into chunks of about chunkRows rows: by key
// ranges chosen from a sample of the keys, by block ranges when it has no
// key, or as a single chunk when it is small.
func PlanChunks(ctx context.Context, conn *pgx.Conn, t *Table, chunkRows int64) (*Plan, error) {
	n, est := ChunkCount(t, chunkRows)
	whole := &Plan{Method: MethodWhole, Chunks: []Chunk{{ID: 0, EstRows: est}}}
	if n <= 1 {
		return whole, nil
	}
	if len(t.Key) == 0 {
		return planCTID(t, n, est), nil
	}
	// TABLESAMPLE SYSTEM picks whole pages, so size the sample in pages
	// (samplePagesPerChunk distinct pages behind each boundary) and let the
	// server pick the boundaries: the first key of each of n equal buckets
	// of the sorted sample. Only the boundaries cross the wire.
	pct := 100.0
	if t.Pages > 0 {
		pct = math.Min(100, math.Max(0.0001, 100*float64(n*samplePagesPerChunk)/float64(t.Pages)))
	}
	cols := make([]string, len(t.Key))
	for i, k := range t.Key {
		cols[i] = record.QuoteIdent(k)
	}
	list := strings.Join(cols, ", ")
	sql := fmt.Sprintf(`SELECT DISTINCT ON (sluice_bucket) %[1]s FROM (
		SELECT %[1]s, ntile(%[2]d) OVER (ORDER BY %[1]s) AS sluice_bucket
		FROM ONLY %[3]s TABLESAMPLE SYSTEM (%[4]s)) s
	WHERE sluice_bucket > 1
	ORDER BY sluice_bucket, %[1]s`, list, n, t.Name.Quoted(), strconv.FormatFloat(pct, 'f', 4, 64))
	// Keys are read as text so they can be stored and bound back as text
	// parameters of the key column's type.
	rr := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, []int16{pgtype.TextFormatCode})
	var bounds [][]string
	for rr.NextRow() {
		vals := rr.Values()
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = string(v)
		}
		if len(bounds) > 0 && equalStrings(bounds[len(bounds)-1], row) {
			continue
		}
		bounds = append(bounds, row)
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("sample keys of %s: %w", t.Name, err)
	}
	if len(bounds) == 0 {
		return whole, nil
	}
	plan := &Plan{Method: MethodKey, Key: append([]string(nil), t.Key...)}
	per := est / int64(len(bounds)+1)
	var lo []string
	for i := 0; i <= len(bounds); i++ {
		var hi []string
		if i < len(bounds) {
			hi = bounds[i]
		}
		plan.Chunks = append(plan.Chunks, Chunk{ID: i, Lo: lo, Hi: hi, EstRows: per})
		lo = hi
	}
	return plan, nil
}

func planCTID(t *Table, n int, est int64) *Plan {
	per := (t.Pages + int64(n) - 1) / int64(n)
	if per < 1 {
		per = 1
	}
	plan := &Plan{Method: MethodCTID}
	var id int
	for lo := int64(0); lo < t.Pages; lo += per {
		c := Chunk{ID: id, Lo: []string{strconv.FormatInt(lo, 10)}, EstRows: est / int64(n)}
		if lo+per < t.Pages {
			c.Hi = []string{strconv.FormatInt(lo+per, 10)}
		}
		if lo == 0 {
			c.Lo = nil
		}
		plan.Chunks = append(plan.Chunks, c)
		id++
	}
	return plan
}

// ScanPlan is the MethodScan plan of a table of about est rows in shares
// shares: each share's writer takes about est/shares rows, the last one
// whatever is left.
func ScanPlan(est int64, shares int) *Plan {
	shares = max(1, shares)
	plan := &Plan{Method: MethodScan}
	per := max(1, (est+int64(shares)-1)/int64(shares))
	for i := range shares {
		plan.Chunks = append(plan.Chunks, Chunk{ID: i, EstRows: per})
	}
	return plan
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// boundValue renders one bound value of a chunk condition: v (text) for
// column col (nil for a block's ctid) as a parameter reference or the
// like. The SQL never holds the value itself.
type boundValue func(col *Column, v string) string

// chunkConds returns the conditions that select chunk c of t (its key or
// ctid range, and the table's where filter), with every value rendered
// by value.
func chunkConds(t *Table, method string, key []string, c Chunk, value boundValue) ([]string, error) {
	var conds []string
	switch method {
	case MethodWhole, MethodScan, "":
	case MethodCTID:
		if c.Lo != nil {
			conds = append(conds, "ctid >= "+value(nil, "("+c.Lo[0]+",0)"))
		}
		if c.Hi != nil {
			conds = append(conds, "ctid < "+value(nil, "("+c.Hi[0]+",0)"))
		}
	case MethodKey:
		keyCols := make([]*Column, len(key))
		keyNames := make([]string, len(key))
		for i, k := range key {
			for j := range t.Columns {
				if t.Columns[j].Name == k {
					keyCols[i] = &t.Columns[j]
				}
			}
			if keyCols[i] == nil {
				return nil, fmt.Errorf("table %s: key column %s of the saved copy plan no longer exists (run `sluice drop` and start over)", t.Name, record.QuoteIdent(k))
			}
			keyNames[i] = record.QuoteIdent(k)
		}
		bound := func(vals []string, op string) error {
			if len(vals) != len(key) {
				return fmt.Errorf("table %s: chunk %d bound has %d values for %d key columns", t.Name, c.ID, len(vals), len(key))
			}
			exprs := make([]string, len(vals))
			for i, v := range vals {
				exprs[i] = value(keyCols[i], v)
			}
			if len(key) == 1 {
				conds = append(conds, keyNames[0]+" "+op+" "+exprs[0])
			} else {
				conds = append(conds, "("+strings.Join(keyNames, ", ")+") "+op+" ("+strings.Join(exprs, ", ")+")")
			}
			return nil
		}
		if c.Lo != nil {
			if err := bound(c.Lo, ">="); err != nil {
				return nil, err
			}
		}
		if c.Hi != nil {
			if err := bound(c.Hi, "<"); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("table %s: unknown chunk method %q", t.Name, method)
	}
	if t.Filter != "" {
		conds = append(conds, "("+t.Filter+")")
	}
	return conds, nil
}

// chunkQuery builds the SELECT that reads one chunk, with its bounds as
// parameters (text values bound with the key column types' OIDs).
func chunkQuery(t *Table, method string, key []string, c Chunk) (sql string, params [][]byte, oids []uint32, err error) {
	cols := t.CopyColumns()
	names := make([]string, len(cols))
	for i, col := range cols {
		names[i] = record.QuoteIdent(col.Name)
	}
	sql = "SELECT " + strings.Join(names, ", ") + " FROM ONLY " + t.Name.Quoted()
	conds, err := chunkConds(t, method, key, c, func(col *Column, v string) string {
		params = append(params, []byte(v))
		oid := uint32(27) // tid
		if col != nil {
			oid = col.TypeOID
		}
		oids = append(oids, oid)
		return fmt.Sprintf("$%d", len(params))
	})
	if err != nil {
		return "", nil, nil, err
	}
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	return sql, params, oids, nil
}
