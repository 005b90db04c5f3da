package verify

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/engine/record"
)

// side is one table as one database sees it: its name there, the compared
// columns (in the source's order, under their names at that side) and the
// key columns. Every query of a comparison is built from a side, so the two
// databases run the same SQL text but for the names.
type side struct {
	name record.TableName
	cols []string
	key  []string
	// where is a row filter in SQL (the pipeline's, validated by the
	// source): set for the source side only, since the sink only ever
	// received the rows that pass it.
	where string
}

// Row hashing. A row's text form (ROW(...)::text, rendered identically on
// both sides because every session has the same DateStyle, TimeZone,
// extra_float_digits, bytea_output...) is hashed with md5. The first 64 bits
// of the hash, summed as bigint (PostgreSQL sums bigint exactly, as
// numeric), give an aggregate that does not depend on row order but counts
// duplicates. Bits 65 to 92 of the md5 of the row (no key) or of the key
// pick a row's hash bucket.
const (
	hash64    = `('x' || substr(%s, 1, 16))::bit(64)::bigint`
	bucketOf  = `(('x' || substr(%s, 17, 7))::bit(28)::int %% %d)`
	cCollated = ` COLLATE pg_catalog."C"`
)

func quoteAll(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = record.QuoteIdent(n)
	}
	return out
}

func rowOf(cols []string) string {
	return "ROW(" + strings.Join(quoteAll(cols), ", ") + ")::text"
}

// rowText is the text form of the compared columns of a row.
func (s *side) rowText() string { return rowOf(s.cols) }

// bucketSource is what decides a row's bucket: its key, or the whole row
// for a table without a key.
func (s *side) bucketSource() string {
	if len(s.key) > 0 {
		return "md5(" + rowOf(s.key) + ")"
	}
	return "md5(" + s.rowText() + ")"
}

// scope is the rows of one comparison: a key range (lo inclusive, hi
// exclusive, nil unbounded) or, with buckets > 0, the hash buckets in ids
// (all buckets when ids is nil).
type scope struct {
	lo, hi  []string
	buckets int
	ids     []int
}

// conds turns a scope into WHERE conditions and their parameters. Key
// bounds travel in text form without a type: each database infers the key
// column's own type, so user types (whose OIDs differ between the two
// databases) work too.
func (s *side) conds(sc scope) (conds []string, params [][]byte, err error) {
	if sc.buckets > 0 {
		if sc.ids != nil {
			params = append(params, []byte(intArray(sc.ids)))
			conds = append(conds, fmt.Sprintf(bucketOf, s.bucketSource(), sc.buckets)+" = ANY ($1::int[])")
		}
		return conds, params, nil
	}
	keys := quoteAll(s.key)
	bound := func(vals []string, op string) error {
		if len(vals) != len(keys) {
			return fmt.Errorf("chunk bound has %d values for %d key columns", len(vals), len(keys))
		}
		ph := make([]string, len(vals))
		for i, v := range vals {
			params = append(params, []byte(v))
			ph[i] = "$" + strconv.Itoa(len(params))
		}
		if len(keys) == 1 {
			conds = append(conds, keys[0]+" "+op+" "+ph[0])
		} else {
			conds = append(conds, "("+strings.Join(keys, ", ")+") "+op+" ("+strings.Join(ph, ", ")+")")
		}
		return nil
	}
	if sc.lo != nil {
		if err := bound(sc.lo, ">="); err != nil {
			return nil, nil, err
		}
	}
	if sc.hi != nil {
		if err := bound(sc.hi, "<"); err != nil {
			return nil, nil, err
		}
	}
	return conds, params, nil
}

// from is the FROM clause with the conditions (and the side's filter).
func (s *side) from(conds []string) string {
	if s.where != "" {
		conds = append(conds, "("+s.where+")")
	}
	sql := " FROM ONLY " + s.name.Quoted()
	if len(conds) > 0 {
		sql += " WHERE " + strings.Join(conds, " AND ")
	}
	return sql
}

// rangeSum counts and hashes the rows of one key range: one row of
// (count, sum as text).
func (s *side) rangeSum(sc scope) (string, [][]byte, error) {
	conds, params, err := s.conds(sc)
	if err != nil {
		return "", nil, err
	}
	sql := "SELECT count(*), COALESCE(sum(" + fmt.Sprintf(hash64, "md5("+s.rowText()+")") + "), 0)::text" + s.from(conds)
	return sql, params, nil
}

// bucketSums counts and hashes the rows of a table per hash bucket, in one
// scan: rows of (bucket, count, sum as text), empty buckets absent.
func (s *side) bucketSums(buckets int) string {
	inner, b := "md5("+s.rowText()+") AS h", "h"
	if len(s.key) > 0 {
		inner, b = inner+", "+s.bucketSource()+" AS b", "b"
	}
	return "SELECT " + fmt.Sprintf(bucketOf, b, buckets) + ", count(*), sum(" + fmt.Sprintf(hash64, "h") + ")::text" +
		" FROM (SELECT " + inner + s.from(nil) + ") s GROUP BY 1"
}

// keyHashes lists the key (in text form) and row hash of every row in
// scope, ordered by the keys' text in byte order: an order both databases
// and Go agree on, whatever the collations.
func (s *side) keyHashes(sc scope) (string, [][]byte, error) {
	conds, params, err := s.conds(sc)
	if err != nil {
		return "", nil, err
	}
	keys := quoteAll(s.key)
	order := make([]string, len(keys))
	for i, k := range keys {
		order[i] = k + "::text" + cCollated
	}
	sql := "SELECT " + strings.Join(keys, ", ") + ", md5(" + s.rowText() + ")" + s.from(conds) + " ORDER BY " + strings.Join(order, ", ")
	return sql, params, nil
}

// maxRowText is how much of a keyless row's text a difference shows.
const maxRowText = 200

// bucketRows lists the distinct rows of the given buckets of a table
// without a key: (hash, copies, row text cut to maxRowText characters),
// ordered by hash.
func (s *side) bucketRows(buckets int, ids []int) (string, [][]byte) {
	sql := "SELECT h, count(*), left(min(r), " + strconv.Itoa(maxRowText) + ") FROM (SELECT r, md5(r) AS h FROM (SELECT " +
		s.rowText() + " AS r" + s.from(nil) + ") x) s WHERE " + fmt.Sprintf(bucketOf, "h", buckets) + " = ANY ($1::int[])" +
		" GROUP BY h ORDER BY h" + cCollated
	return sql, [][]byte{[]byte(intArray(ids))}
}

// rowByKey reads the compared columns of the row with the given key ($1...,
// untyped text parameters).
func (s *side) rowByKey() string {
	conds := make([]string, len(s.key))
	for i, k := range quoteAll(s.key) {
		conds[i] = k + " = $" + strconv.Itoa(i+1)
	}
	return "SELECT " + strings.Join(quoteAll(s.cols), ", ") + " FROM ONLY " + s.name.Quoted() + " WHERE " + strings.Join(conds, " AND ") + " LIMIT 1"
}

// intArray renders ints as a PostgreSQL array literal.
func intArray(v []int) string {
	parts := make([]string, len(v))
	for i, n := range v {
		parts[i] = strconv.Itoa(n)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// collationSQL describes the effective collation of a table's columns
// ($1: the quoted table name, $2: column names), resolving the database
// default, so that two databases can tell whether they order a column's
// values alike: provider/collate/ctype/locale, or "" for a type without
// collation. pg_database and pg_collation are read through to_jsonb
// because their locale columns are named differently across versions.
const collationSQL = `SELECT a.attname::text,
	CASE WHEN a.attcollation = 0 THEN ''
	WHEN a.attcollation = 100 THEN (SELECT concat_ws('/', j->>'datlocprovider', j->>'datcollate', j->>'datctype', COALESCE(j->>'daticulocale', j->>'datlocale'))
		FROM (SELECT to_jsonb(d) AS j FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()) x)
	ELSE (SELECT concat_ws('/', j->>'collprovider', j->>'collcollate', j->>'collctype', COALESCE(j->>'colliculocale', j->>'colllocale'))
		FROM (SELECT to_jsonb(co) AS j FROM pg_catalog.pg_collation co WHERE co.oid = a.attcollation) y)
	END
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attname::text = ANY ($2::text[]) AND NOT a.attisdropped`
