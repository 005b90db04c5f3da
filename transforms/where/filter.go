package where

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/sluicehq/sluice/engine/record"
)

// Column describes one column of the filtered table as the source's
// catalog has it.
type Column struct {
	Name string
	// TypeOID is the column's type (pg_attribute.atttypid). Pass the base
	// type of a domain: the filter compares a domain's values as its base
	// type does.
	TypeOID uint32
	// Collation is the column's collation name (pg_collation.collname);
	// "" or "default" mean the database default, which the filter treats
	// as a locale. Pass "C" for the default when the database's
	// datcollate and datctype are both C or POSIX, and for any collation
	// whose collcollate and collctype are: only those order strings by
	// bytes and change case in ASCII only, as the engine does.
	Collation string
	// Nondeterministic is true for a nondeterministic collation
	// (pg_collation.collisdeterministic false): equal strings may differ
	// in bytes, so the filter refuses to compare them.
	Nondeterministic bool
	// TypeName is the type's name for messages (optional).
	TypeName string
}

// Error is a problem with a WHERE expression, found at compile time: the
// position (1-based character offset in the expression, 0 for the
// expression as a whole) and what is wrong. Its text is
// "where: position N: reason".
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string {
	if e.Pos > 0 {
		return fmt.Sprintf("where: position %d: %s", e.Pos, e.Msg)
	}
	return "where: " + e.Msg
}

// Filter is a compiled WHERE condition for one table: the same condition
// as SQL for the full copy's query and as a program for streamed rows.
// A Filter is safe for concurrent use.
type Filter struct {
	src     string
	sql     string
	program string // the expr-lang source, for tests and debugging
	prog    *vm.Program
	refs    []ref // the columns the expression reads, in order of first use
	consts  []any
	lists   [][]any
	likes   []*likePattern
	cache   atomic.Pointer[relIndex]
}

// ref is a column the expression reads.
type ref struct {
	name string
	typ  typ
	oid  uint32
}

// relIndex caches where the referenced columns are in a relation.
type relIndex struct {
	rel *record.Relation
	idx []int
	err error
}

// Compile parses a SQL boolean expression over the columns cols and
// compiles it, once, for a table. It refuses, with an *Error naming the
// position and the reason, anything it cannot evaluate on streamed
// changes exactly as PostgreSQL evaluates it in the full copy: unknown
// columns, unsupported syntax, functions or types, volatile functions,
// ordering or case mapping of text under a locale collation.
//
// The supported subset: column references (unquoted names fold to lower
// case), literals (integers, decimals, 'strings' with ” and E” escapes,
// TRUE, FALSE, NULL, typed literals such as DATE '2024-01-01' and
// '1.5'::real), = <> != < <= > >=, AND, OR, NOT, IS [NOT] NULL, IS [NOT]
// TRUE/FALSE/UNKNOWN, IS [NOT] DISTINCT FROM, [NOT] IN (list), [NOT]
// BETWEEN, [NOT] LIKE and ILIKE (with ESCAPE), + - * / % on numbers,
// widening casts, COLLATE "C", AT TIME ZONE 'UTC', and the functions
// lower, upper, length, coalesce and abs.
func Compile(expression string, cols []Column) (*Filter, error) {
	n, err := parse(expression)
	if err != nil {
		return nil, err
	}
	r := newResolver(cols)
	root, err := r.resolve(n)
	if err != nil {
		return nil, err
	}
	if root, err = r.toBool(root, "the WHERE condition"); err != nil {
		return nil, err
	}
	f := &Filter{src: expression}
	names := make([]string, len(r.refs))
	for i, c := range r.refs {
		col := cols[c]
		names[i] = col.Name
		f.refs = append(f.refs, ref{name: col.Name, typ: typeOfOID(col.TypeOID), oid: col.TypeOID})
	}
	f.sql = renderSQL(root, names)
	if f.prog, err = f.compileProgram(root); err != nil {
		return nil, &Error{Msg: err.Error()}
	}
	return f, nil
}

// Parse checks an expression without knowing the table: syntax, and the
// functions, operators and constructs refused whatever the columns (now(),
// subqueries, ||, ...). It is what a pipeline file's loader can check;
// Compile, with the table's columns from the source's catalog, checks the
// rest (columns, types, collations). The error is an *Error.
func Parse(expression string) error {
	_, err := parse(expression)
	return err
}

// String returns the expression as given to Compile.
func (f *Filter) String() string { return f.src }

// SQL returns the expression as SQL for the full copy's query, to be used
// as WHERE (...): every identifier quoted, every literal typed, every
// conversion explicit, so that PostgreSQL evaluates exactly what Match
// evaluates. It re-parses with Compile to the same SQL.
func (f *Filter) SQL() string { return f.sql }

// Columns returns the names of the columns the expression reads, in the
// order they first appear.
func (f *Filter) Columns() []string {
	names := make([]string, len(f.refs))
	for i, r := range f.refs {
		names[i] = r.name
	}
	return names
}

// Match evaluates the condition on one streamed row whose values, in
// PostgreSQL's text format, line up with rel's columns. It reports
// whether the condition is TRUE (NULL and FALSE drop the row, as WHERE
// does).
//
// An error means the row cannot be decided: a referenced value is
// Unchanged (a TOASTed value the source did not send), a referenced
// column is missing from rel or changed type, a value does not decode, or
// the expression fails on it as it would in PostgreSQL (an overflow, a
// division by zero; *EvalError). The row must not be skipped then.
func (f *Filter) Match(rel *record.Relation, vals []record.Value) (bool, error) {
	idx, err := f.indexes(rel)
	if err != nil {
		return false, err
	}
	env := make(map[string]any, len(f.refs))
	for i, r := range f.refs {
		j := idx[i]
		if j >= len(vals) {
			return false, fmt.Errorf("where: the row of %s has %d values, but column %s is number %d", rel.Table, len(vals), quoteIdent(r.name), j+1)
		}
		v, err := f.value(r, vals[j])
		if err != nil {
			return false, fmt.Errorf("where: column %s of %s: %w", quoteIdent(r.name), rel.Table, err)
		}
		env[envName(i)] = v
	}
	out, err := expr.Run(f.prog, env)
	if err != nil {
		var ee *EvalError
		if errors.As(err, &ee) {
			return false, ee
		}
		return false, fmt.Errorf("where: internal error evaluating %q: %w", f.src, err)
	}
	return out.(Tri) == True, nil
}

// ErrUnchanged is the cause of Match's error for an unchanged TOASTed
// value: the source did not send it, so the row cannot be evaluated.
var ErrUnchanged = errors.New("the value was not sent because it did not change (a TOASTed value): the filter cannot evaluate the row; set REPLICA IDENTITY FULL on the table so that the old row carries it")

func (f *Filter) value(r ref, v record.Value) (any, error) {
	switch {
	case v.Unchanged:
		return nil, ErrUnchanged
	case v.Null:
		return nullOf(r.typ), nil
	}
	return decode(r.typ, v.Data)
}

var envNames = func() []string {
	s := make([]string, 64)
	for i := range s {
		s[i] = fmt.Sprintf("c%d", i)
	}
	return s
}()

func envName(i int) string {
	if i < len(envNames) {
		return envNames[i]
	}
	return fmt.Sprintf("c%d", i)
}

// Fits reports whether rel has the columns the condition was compiled
// for: each one it reads, under its name and with its type (a column of a
// type the filter does not decode, such as a domain, is not checked).
// Match fails on a relation that does not fit, with this error.
func (f *Filter) Fits(rel *record.Relation) error {
	_, err := f.indexes(rel)
	return err
}

// indexes finds the referenced columns in rel (cached for the last
// relation seen).
func (f *Filter) indexes(rel *record.Relation) ([]int, error) {
	if c := f.cache.Load(); c != nil && c.rel == rel {
		return c.idx, c.err
	}
	c := &relIndex{rel: rel, idx: make([]int, len(f.refs))}
	for i, r := range f.refs {
		j := rel.ColumnIndex(r.name)
		if j < 0 {
			c.err = fmt.Errorf("where: column %s of the condition %q is no longer in %s; change the condition", quoteIdent(r.name), f.src, rel.Table)
			break
		}
		if oid := rel.Columns[j].TypeOID; oid != r.oid && typeOfOID(oid) != tyOther {
			c.err = fmt.Errorf("where: column %s of %s changed type (type OID %d, was %d); the condition %q must be compiled again", quoteIdent(r.name), rel.Table, oid, r.oid, f.src)
			break
		}
		c.idx[i] = j
	}
	f.cache.Store(c)
	return c.idx, c.err
}
